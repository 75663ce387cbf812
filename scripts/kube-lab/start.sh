#!/usr/bin/env bash
# Start the lab cluster built by setup.sh: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, containerd and a kubelet, as background processes of this machine (PID
# files in $KUBE_LAB/run, logs in $KUBE_LAB/log), then load the images in $KUBE_LAB/images
# into containerd (skipping those already loaded). Returns once the node is Ready. etcd
# keeps its data on tmpfs, so every start is an empty cluster.
#
# Usage: scripts/kube-lab/start.sh [--print-env]
#   --print-env  print KUBECONFIG=... and FLINK_GITOPS_KUBE_LAB=... (and nothing else) on stdout
# Starting a running cluster only checks it. On any failure everything started is stopped
# again (stop.sh). Runs under $KUBE_LAB/.run.lock, so concurrent starts and stops queue.
source "$(dirname "$0")/lib.sh"

PRINT_ENV=0
[ "${1:-}" = "--print-env" ] && PRINT_ENV=1

lab_built || lab_die "the lab is not built; run scripts/kube-lab/setup.sh (or scripts/setup.sh --kube)"
"$KUBE_LAB_SCRIPTS/pki.sh"
mkdir -p "$LAB_LOG" "$LAB_RUN" "$LAB_STATE"

cluster_ok() {
    lab_alive etcd && lab_alive kube-apiserver && lab_alive kube-controller-manager &&
        lab_alive kube-scheduler && lab_alive containerd && lab_alive kubelet &&
        node_ready
}

node_ready() {
    [ "$(lab_kubectl get node "$KUBE_LAB_NODE" \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# launch NAME CMD...: start CMD in the background (own session), log and PID file by NAME.
launch() {
    local name=$1
    shift
    if lab_alive "$name"; then
        lab_log "$name is running already"
        return 0
    fi
    # 9>&-: the process must not inherit (and so hold) the run lock.
    setsid "$@" >"$LAB_LOG/$name.log" 2>&1 </dev/null 9>&- &
    echo $! >"$LAB_RUN/$name.pid"
}

start_control_plane() {
    launch etcd etcd --name kube-lab --data-dir "$KUBE_LAB_ETCD" \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster kube-lab=http://127.0.0.1:2380 --log-level warn
    lab_wait "etcd healthy" 30 curl -sf http://127.0.0.1:2379/health

    # --kubelet-preferred-address-types: the host name may resolve to 127.0.0.1 while the
    # kubelet listens on the node IP, so logs and exec go to the InternalIP.
    launch kube-apiserver "$LAB_BIN/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 \
        --bind-address=127.0.0.1 --secure-port="$KUBE_LAB_API_PORT" --advertise-address="$KUBE_LAB_NODE_IP" \
        --tls-cert-file="$LAB_PKI/apiserver.crt" --tls-private-key-file="$LAB_PKI/apiserver.key" \
        --client-ca-file="$LAB_PKI/ca.crt" --token-auth-file="$LAB_PKI/tokens.csv" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --service-account-key-file="$LAB_PKI/sa.pub" --service-account-signing-key-file="$LAB_PKI/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range="$KUBE_LAB_SERVICE_CIDR" --allow-privileged=true \
        --kubelet-preferred-address-types=InternalIP,Hostname \
        --kubelet-client-certificate="$LAB_PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$LAB_PKI/apiserver-kubelet-client.key" \
        --cert-dir="$LAB_RUN/apiserver-certs" --profiling=false
    lab_wait "kube-apiserver ready" 120 curl -sf --cacert "$LAB_PKI/ca.crt" "https://127.0.0.1:$KUBE_LAB_API_PORT/readyz"

    launch kube-controller-manager "$LAB_BIN/kube-controller-manager" \
        --kubeconfig="$LAB_PKI/controller-manager.kubeconfig" \
        --authentication-kubeconfig="$LAB_PKI/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$LAB_PKI/controller-manager.kubeconfig" \
        --bind-address=127.0.0.1 --port=0 --secure-port=10257 \
        --service-account-private-key-file="$LAB_PKI/sa.key" --root-ca-file="$LAB_PKI/ca.crt" \
        --use-service-account-credentials=true --cluster-name=kube-lab --leader-elect=false \
        --allocate-node-cidrs=false
    launch kube-scheduler "$LAB_BIN/kube-scheduler" \
        --kubeconfig="$LAB_PKI/scheduler.kubeconfig" \
        --authentication-kubeconfig="$LAB_PKI/scheduler.kubeconfig" \
        --authorization-kubeconfig="$LAB_PKI/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --port=0 --secure-port=10259 --leader-elect=false
    lab_wait "kube-controller-manager healthy" 60 curl -sfk https://127.0.0.1:10257/healthz
    lab_wait "kube-scheduler healthy" 60 curl -sfk https://127.0.0.1:10259/healthz
}

start_node() {
    mkdir -p "$LAB_STATE/containerd" "$LAB_STATE/cni" "$KUBE_LAB_RUNTIME"
    # containerd with private root, state and socket. restrict_oom_score_adj: this VM keeps
    # CAP_SYS_RESOURCE even from root, and runc fails to start a pod sandbox when the kubelet
    # asks for a negative OOM score; clamping it to containerd's own makes sandboxes start.
    cat >"$LAB_STATE/containerd.toml" <<TOML
version = 2
root = "$LAB_STATE/containerd/root"
state = "$KUBE_LAB_RUNTIME/containerd"
[grpc]
  address = "$LAB_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$KUBE_LAB_PAUSE_IMAGE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$KUBE_LAB_RUNTIME/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB_STATE/cni"
TOML
    # Pod network: an isolated bridge (no gateway, no masquerading, no forwarding): pods get
    # addresses but reach nothing off the bridge. Flink pods that must talk to each other
    # or to the host use the host network (see README, "Kubernetes lab").
    cat >"$LAB_STATE/cni/10-flink-gitops.conflist" <<JSON
{ "cniVersion": "0.4.0", "name": "flink-gitops-lab",
  "plugins": [ { "type": "bridge", "bridge": "$KUBE_LAB_BRIDGE", "isGateway": false, "ipMasq": false,
                 "ipam": { "type": "host-local", "ranges": [[{ "subnet": "$KUBE_LAB_POD_CIDR" }]],
                           "dataDir": "$KUBE_LAB_RUNTIME/ipam" } } ] }
JSON
    launch containerd containerd --config "$LAB_STATE/containerd.toml"
    lab_wait "containerd up" 30 lab_ctr version
    load_images

    mkdir -p "$LAB_STATE/kubelet"
    # makeIPTablesUtilChains: false keeps the kubelet away from the host's iptables.
    cat >"$LAB_STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $KUBE_LAB_NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $LAB_PKI/ca.crt}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failSwapOn: false
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# The disk is shared with everything else on this machine, whose use comes and goes: evict
# only when it is truly full (a percentage of a large shared disk evicted test pods here
# while other processes briefly filled it), and leave disk pressure 30 s after it ends
# (the default is 5 min, during which no pod is scheduled).
evictionHard: {memory.available: 100Mi, nodefs.available: 500Mi, imagefs.available: 500Mi, nodefs.inodesFree: 1%}
evictionPressureTransitionPeriod: 30s
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
makeIPTablesUtilChains: false
YAML
    launch kubelet "$LAB_BIN/kubelet" --config="$LAB_STATE/kubelet.yaml" \
        --kubeconfig="$LAB_PKI/kubelet.kubeconfig" --root-dir="$LAB_STATE/kubelet/root" \
        --cert-dir="$LAB_STATE/kubelet/pki" --container-runtime=remote \
        --container-runtime-endpoint="unix://$LAB_SOCK" --hostname-override="$KUBE_LAB_NODE" \
        --node-ip="$KUBE_LAB_NODE_IP" --pod-infra-container-image="$KUBE_LAB_PAUSE_IMAGE" --v=1
    lab_wait "kubelet healthy" 60 curl -sf http://127.0.0.1:10248/healthz
    lab_wait "node Ready" 120 node_ready
}

# Load every image tarball of $KUBE_LAB/images (those loaded before are skipped).
load_images() {
    local tar
    for tar in "$LAB_IMAGES"/*.tar; do
        [ -f "$tar" ] && lab_load_image "$tar"
    done
    return 0
}

main() {
    local t0
    t0=$(lab_now)
    if cluster_ok; then
        lab_log "running already (node $KUBE_LAB_NODE Ready)"
        load_images
    else
        started=0
        trap '[ "$started" = 1 ] || { lab_log "start failed; stopping what was started"; "$KUBE_LAB_SCRIPTS/stop.sh" --locked >&2; }' EXIT
        start_control_plane
        start_node
        started=1
        lab_log "cluster up in $(lab_since "$t0")s: KUBECONFIG=$KUBECONFIG"
    fi
    if [ "$PRINT_ENV" -eq 1 ]; then
        printf 'KUBECONFIG=%q\n' "$KUBECONFIG"
        printf 'FLINK_GITOPS_KUBE_LAB=%q\n' "$KUBE_LAB"
    fi
}

mkdir -p "$KUBE_LAB"
exec 9>"$KUBE_LAB/.run.lock"
flock -w 600 9 || lab_die "timeout waiting for $KUBE_LAB/.run.lock"
main
