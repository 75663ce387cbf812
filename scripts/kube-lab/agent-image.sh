#!/usr/bin/env bash
# Build the flink-gitops agent image for the lab without a registry or a container builder
# (as flink-image.sh builds Flink's), and load it into the lab's containerd when the cluster
# runs. One layer, the same contents as deploy/Dockerfile's image:
#   /usr/local/bin/flink-gitops   the binary, debug info stripped: $FLINK_GITOPS_AGENT_BINARY,
#                                 default target/release/flink-gitops (`cargo build --release`)
#   exactly the shared libraries `ldd` lists for it, the dynamic loader included, at the
#   paths ldd names; /etc/ssl/certs/ca-certificates.crt; /etc/passwd and /etc/group with
#   root and nonroot (65532); /tmp, /home/nonroot, /var/cache/flink-gitops. No shell.
# The image runs as 65532:65532 with entrypoint flink-gitops and command
# `run --runtime kubernetes`.
# Output: $KUBE_LAB/images/flink-gitops.tar, tagged $KUBE_LAB_AGENT_IMAGE
# (flink-gitops.local/flink-gitops:dev). The same binary gives the same image id, so a
# second load is skipped.
source "$(dirname "$0")/lib.sh"

KUBE_LAB_AGENT_IMAGE="${KUBE_LAB_AGENT_IMAGE:-flink-gitops.local/flink-gitops:dev}"
BINARY="${FLINK_GITOPS_AGENT_BINARY:-$KUBE_LAB_ROOT/target/release/flink-gitops}"
OUT="$LAB_IMAGES/flink-gitops.tar"
CA=/etc/ssl/certs/ca-certificates.crt

[ -x "$BINARY" ] || lab_die "no agent binary at $BINARY: run \`cargo build --release\` or set FLINK_GITOPS_AGENT_BINARY"
[ -f "$CA" ] || lab_die "$CA missing (apt-get install ca-certificates)"

build_image() {
    local t0 lib real config
    local -a specs
    t0=$(lab_now)
    work=$(mktemp -d "$LAB_IMAGES/agent-image.XXXXXX")
    # Debug info stripped: the debug build shrinks several times; the code is the same.
    cp "$BINARY" "$work/flink-gitops"
    strip --strip-debug "$work/flink-gitops"
    printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
        'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >"$work/passwd"
    printf '%s\n' 'root:x:0:' 'nonroot:x:65532:' >"$work/group"
    specs=("$work/flink-gitops:/usr/local/bin/flink-gitops:0755" "$work/passwd:/etc/passwd:0644"
        "$work/group:/etc/group:0644" "$CA:$CA:0644")
    # Every library at the path the loader finds it (ldd's "=> /path"), and the loader itself
    # at the path compiled into the binary; the content of the file the path points to.
    while read -r lib; do
        real=$(readlink -f "$lib")
        specs+=("$real:$lib:0755")
    done < <(ldd "$work/flink-gitops" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
    "$KUBE_LAB_SCRIPTS/image.py" layer "$work/layer.tar" "${specs[@]}" \
        --dir tmp --dir home/nonroot --dir var/cache/flink-gitops
    config='{"Entrypoint":["/usr/local/bin/flink-gitops"],"Cmd":["run","--runtime","kubernetes"],"User":"65532:65532","WorkingDir":"/home/nonroot","Env":["PATH=/usr/local/bin","HOME=/home/nonroot","FLINK_GITOPS_CACHE=/var/cache/flink-gitops","SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"],"ExposedPorts":{"9464/tcp":{}}}'
    "$KUBE_LAB_SCRIPTS/image.py" assemble "$OUT.tmp" "$KUBE_LAB_AGENT_IMAGE" "$config" "$work/layer.tar" >/dev/null
    mv -f "$OUT.tmp" "$OUT"
    rm -rf "$work"
    lab_log "image $KUBE_LAB_AGENT_IMAGE ($(du -m "$OUT" | cut -f1) MB, ${#specs[@]} files) in $(lab_since "$t0")s"
}

main() {
    mkdir -p "$LAB_IMAGES"
    build_image
    if [ -S "$LAB_SOCK" ]; then
        lab_load_image "$OUT"
    fi
}

work=
trap '[ -z "$work" ] || rm -rf "$work"' EXIT
exec 8>"$KUBE_LAB/.agent-image.lock"
flock -w 600 8 || lab_die "timeout waiting for $KUBE_LAB/.agent-image.lock"
main
