#!/usr/bin/env bash
# Stop the lab cluster and leave nothing behind: the processes start.sh recorded (by PID),
# pod containers and their containerd shims, mounts under the lab's folders, pod network
# namespaces, the pod bridge, the pods' cgroups, any KUBE-* iptables chains, etcd's tmpfs
# data and the runtime folder. Images stay in $KUBE_LAB/state (the next start reuses them).
# Safe to run when nothing runs, and again after a failed start.
#
# Usage: scripts/kube-lab/stop.sh   (--locked: the caller holds $KUBE_LAB/.run.lock)
source "$(dirname "$0")/lib.sh"
set +e

# stop_process NAME [GRACE]: SIGTERM, wait up to GRACE seconds (default 15), then SIGKILL.
stop_process() {
    local name=$1 grace=${2:-15} pid i
    if ! lab_alive "$name"; then
        rm -f "$LAB_RUN/$name.pid"
        return 0
    fi
    pid=$(cat "$LAB_RUN/$name.pid")
    kill "$pid" 2>/dev/null
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    rm -f "$LAB_RUN/$name.pid"
    lab_log "stopped $name ($pid)"
}

stop_all() {
    local t0 pid f m ns cg table rule chain
    t0=$(lab_now)
    # The kubelet first, so it restarts nothing; then the containers, killed through
    # containerd (a graceful pod deletion takes far longer), then containerd.
    stop_process kubelet
    if lab_alive containerd; then
        for f in $(lab_ctr tasks ls -q 2>/dev/null); do lab_ctr tasks kill -s SIGKILL "$f" >/dev/null 2>&1; done
        sleep 0.5
        for f in $(lab_ctr tasks ls -q 2>/dev/null); do lab_ctr tasks rm -f "$f" >/dev/null 2>&1; done
        for f in $(lab_ctr containers ls -q 2>/dev/null); do lab_ctr containers rm "$f" >/dev/null 2>&1; done
    fi
    stop_process containerd
    # Shims of our containerd outlive it; they name our socket on their command line.
    for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $LAB_SOCK"); do
        kill -9 "$pid" 2>/dev/null && lab_log "killed shim $pid"
    done
    # Processes left in the pods' cgroups (orphans of a killed shim).
    for f in $(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null); do
        for pid in $(cat "$f"); do kill -9 "$pid" 2>/dev/null && lab_log "killed pod process $pid"; done
    done
    stop_process kube-scheduler
    stop_process kube-controller-manager
    stop_process kube-apiserver
    stop_process etcd

    # Mounts the kubelet and containerd made under our folders, deepest first.
    for m in $(awk -v a="$LAB_STATE/" -v b="$KUBE_LAB_RUNTIME/" 'index($2, a) == 1 || index($2, b) == 1 { print $2 }' /proc/mounts | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    # Pod network namespaces (containerd's CRI names them cni-<uuid>) and the bridge.
    for ns in /run/netns/cni-*; do
        [ -e "$ns" ] || continue
        umount "$ns" 2>/dev/null
        rm -f "$ns"
    done
    rmdir /run/netns 2>/dev/null
    ip link del "$KUBE_LAB_BRIDGE" 2>/dev/null
    for cg in /sys/fs/cgroup/*/kubepods; do
        [ -d "$cg" ] && find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
    done
    # KUBE-* chains, in case a kubelet made any (start.sh asks it not to).
    for table in filter nat mangle; do
        iptables -t "$table" -S 2>/dev/null | grep -E '^-A [A-Z]+ .*-j KUBE-' | grep -v '^-A KUBE-' |
            sed 's/^-A/-D/' | while read -r rule; do eval iptables -t "$table" "$rule"; done
        for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ { print $2 }'); do
            iptables -t "$table" -F "$chain"
        done
        for chain in $(iptables -t "$table" -S 2>/dev/null | awk '/^-N KUBE-/ { print $2 }'); do
            iptables -t "$table" -X "$chain"
        done
    done
    # containerd 1.6 puts shim sockets under /run/containerd/s whatever its config says;
    # remove them only when no other containerd runs on the machine.
    if ! pgrep -x containerd >/dev/null && ! pgrep -f containerd-shim >/dev/null; then
        rm -f /run/containerd/s/*
        rmdir /run/containerd/s /run/containerd/runc/k8s.io /run/containerd/runc /run/containerd 2>/dev/null
    fi
    rm -rf "$KUBE_LAB_ETCD" "$KUBE_LAB_RUNTIME" "$LAB_RUN/apiserver-certs"
    lab_log "stopped and cleaned up in $(lab_since "$t0")s"
}

if [ "${1:-}" = "--locked" ]; then
    stop_all
else
    mkdir -p "$KUBE_LAB"
    exec 9>"$KUBE_LAB/.run.lock"
    flock -w 600 9 || lab_die "timeout waiting for $KUBE_LAB/.run.lock"
    stop_all
fi
exit 0
