# shellcheck shell=bash
# Shared settings of the kube-lab scripts (sourced, not run). Everything the lab keeps lives under
#   $KUBE_LAB = ${FLINK_GITOPS_CACHE:-$HOME/.cache/flink-gitops}/kube-lab
#     bin/        kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kubectl (v1.20.2)
#     images/     image tarballs in `docker save` format (pause, busybox, flink)
#     pki/        CA, serving and client certificates, static tokens, kubeconfigs
#     state/      containerd's image store and the kubelet's root (kept across restarts: images stay)
#     log/, run/  one log and one PID file per process of a running cluster
# and, while a cluster runs, in $KUBE_LAB_RUNTIME (containerd's state and socket, runc's root) and
# $KUBE_LAB_ETCD (etcd's data on tmpfs: every start is a fresh, empty cluster).
set -euo pipefail

KUBE_VERSION=1.20.2
KUBE_LAB_CACHE="${FLINK_GITOPS_CACHE:-$HOME/.cache/flink-gitops}"
KUBE_LAB="${KUBE_LAB:-$KUBE_LAB_CACHE/kube-lab}"
KUBE_LAB_RUNTIME="${KUBE_LAB_RUNTIME:-/run/flink-gitops-kube-lab}"
KUBE_LAB_ETCD="${KUBE_LAB_ETCD:-/dev/shm/flink-gitops-kube-lab-etcd}"
KUBE_LAB_API_PORT="${KUBE_LAB_API_PORT:-6443}"
KUBE_LAB_NODE="${KUBE_LAB_NODE:-$(hostname)}"
KUBE_LAB_NODE_IP="${KUBE_LAB_NODE_IP:-$(hostname -I | awk '{print $1}')}"
KUBE_LAB_BRIDGE=flinkgitops0
KUBE_LAB_POD_CIDR=10.88.0.0/24
KUBE_LAB_SERVICE_CIDR=10.0.0.0/24
KUBE_LAB_PAUSE_IMAGE=flink-gitops.local/pause:3.2
KUBE_LAB_BUSYBOX_IMAGE=flink-gitops.local/busybox:1.35
KUBE_LAB_FLINK_IMAGE="${KUBE_LAB_FLINK_IMAGE:-flink-gitops.local/flink:2.3}"
KUBE_LAB_SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBE_LAB_ROOT="$(cd "$KUBE_LAB_SCRIPTS/../.." && pwd)"

LAB_BIN="$KUBE_LAB/bin"
LAB_PKI="$KUBE_LAB/pki"
LAB_IMAGES="$KUBE_LAB/images"
LAB_STATE="$KUBE_LAB/state"
LAB_LOG="$KUBE_LAB/log"
LAB_RUN="$KUBE_LAB/run"
LAB_SOCK="$KUBE_LAB_RUNTIME/containerd.sock"
export KUBECONFIG="$LAB_PKI/admin.kubeconfig"

lab_log() { echo "kube-lab: $*" >&2; }
lab_die() { echo "kube-lab: ERROR: $*" >&2; exit 1; }
lab_now() { date +%s.%N; }
lab_since() { awk -v a="$1" -v b="$(lab_now)" 'BEGIN { printf "%.1f", b - a }'; }
lab_ctr() { ctr --address "$LAB_SOCK" --namespace k8s.io "$@"; }
lab_kubectl() { "$LAB_BIN/kubectl" "$@"; }

# True when the pid file names a live process.
lab_alive() {
    local f="$LAB_RUN/$1.pid"
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

# lab_wait WHAT SECONDS CMD...: poll CMD every 0.2 s until it succeeds; say how long it took.
lab_wait() {
    local what=$1 limit=$2 t0 i
    shift 2
    t0=$(lab_now)
    for ((i = 0; i < limit * 5; i++)); do
        if "$@" >/dev/null 2>&1; then
            lab_log "$what after $(lab_since "$t0")s"
            return 0
        fi
        sleep 0.2
    done
    lab_log "$what: not within ${limit}s"
    return 1
}

# The build (and the tooling it installs) is complete when this file names the version.
lab_built() {
    [ "$(cat "$KUBE_LAB/built" 2>/dev/null)" = "$KUBE_VERSION" ] &&
        [ -x "$LAB_BIN/kubelet" ] && [ -x "$LAB_BIN/kubectl" ] &&
        [ -f "$LAB_IMAGES/pause.tar" ] && [ -f "$LAB_IMAGES/busybox.tar" ] &&
        command -v containerd >/dev/null && command -v etcd >/dev/null
}

# lab_load_image TAR: import an image tarball into the running containerd unless the same
# image (same config digest, recorded beside containerd's store) is there already.
lab_load_image() {
    local tar=$1 id ref stamp t0
    read -r id ref < <(python3 -c 'import json,sys,tarfile
m = json.load(tarfile.open(sys.argv[1]).extractfile("manifest.json"))[0]
print(m["Config"].split(".")[0], m["RepoTags"][0])' "$tar")
    stamp="$LAB_STATE/containerd/imported/$(basename "$tar").id"
    # (grep without -q: with pipefail, grep -q quitting early would fail the pipeline.)
    # The ref is checked too: the kubelet's image GC removes unused images under disk pressure.
    if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] && lab_ctr images ls -q 2>/dev/null | grep -xF "$ref" >/dev/null; then
        return 0
    fi
    t0=$(lab_now)
    lab_ctr images import --no-unpack=false "$tar" >/dev/null
    mkdir -p "$(dirname "$stamp")"
    echo "$id" >"$stamp"
    lab_log "image $ref loaded in $(lab_since "$t0")s"
}
