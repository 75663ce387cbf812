#!/usr/bin/env bash
# Build the lab's Flink image without a registry or a container builder, and load it into
# the lab's containerd when the cluster runs (start.sh loads it otherwise):
#   layer 1: Debian bookworm (debootstrap, minbase) with openjdk-17-jre-headless; built once
#            and kept in $KUBE_LAB/images/layers/base.tar (REBUILD_BASE=1 redoes it)
#   layer 2: Flink 2.3.0 at /opt/flink (the distribution scripts/setup.sh installs into the
#            cache), the stateful test job at /opt/flink/usrlib/stateful-counter.jar, and
#            /docker-entrypoint.sh (flink-entrypoint.sh)
# Output: $KUBE_LAB/images/flink.tar, tagged $KUBE_LAB_FLINK_IMAGE (flink-gitops.local/flink:2.3).
# Needs root (debootstrap). Skips everything when the output is newer than its inputs.
source "$(dirname "$0")/lib.sh"

FLINK_VERSION=2.3.0
LAYERS="$LAB_IMAGES/layers"
OUT="$LAB_IMAGES/flink.tar"
JOB_JAR="$KUBE_LAB_CACHE/jobs/stateful-counter.jar"
FLINK_DIST=$(ls -d "$KUBE_LAB_CACHE/flink-$FLINK_VERSION"/lib/python3*/site-packages/pyflink 2>/dev/null | head -1)
[ -n "$FLINK_DIST" ] && [ -f "$FLINK_DIST/lib/flink-dist-$FLINK_VERSION.jar" ] ||
    lab_die "Flink $FLINK_VERSION is not in the cache; run scripts/setup.sh first"
[ -f "$JOB_JAR" ] || lab_die "$JOB_JAR missing; run scripts/setup.sh first"

up_to_date() {
    [ -f "$OUT" ] && [ -f "$LAYERS/base.tar" ] && [ "$OUT" -nt "$JOB_JAR" ] &&
        [ "$OUT" -nt "$KUBE_LAB_SCRIPTS/flink-entrypoint.sh" ] && [ "$OUT" -nt "$FLINK_DIST/lib/flink-dist-$FLINK_VERSION.jar" ]
}

build_base() {
    local root="$LAYERS/rootfs" mirror t0
    mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
    mirror=${mirror:-http://deb.debian.org/debian}
    command -v debootstrap >/dev/null || as_root_install debootstrap
    t0=$(lab_now)
    rm -rf "$root"
    nice -n 10 debootstrap --variant=minbase --include=openjdk-17-jre-headless bookworm "$root" "$mirror" \
        >"$LAB_LOG/debootstrap.log" 2>&1 || { tail -20 "$LAB_LOG/debootstrap.log" >&2; lab_die "debootstrap failed"; }
    [ -x "$root/usr/lib/jvm/java-17-openjdk-amd64/bin/java" ] || lab_die "no Java 17 in the base layer"
    # Package caches, lists, documentation: not needed at run time.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
        "$root"/var/log/* "$root"/tmp/*
    : >"$root/etc/resolv.conf"
    : >"$root/etc/hostname"
    (cd "$root" && tar --numeric-owner -cf "$LAYERS/base.tar.tmp" --exclude='./proc/*' --exclude='./sys/*' \
        --exclude='./dev/*' .)
    mv -f "$LAYERS/base.tar.tmp" "$LAYERS/base.tar"
    rm -rf "$root"
    lab_log "base layer ($(du -m "$LAYERS/base.tar" | cut -f1) MB) in $(lab_since "$t0")s"
}

as_root_install() {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$@" \
        >"$LAB_LOG/apt.log" 2>&1 || { tail -20 "$LAB_LOG/apt.log" >&2; lab_die "apt-get install $* failed"; }
}

build_image() {
    local stage="$LAYERS/stage" t0 d java_home=/usr/lib/jvm/java-17-openjdk-amd64 config
    t0=$(lab_now)
    rm -rf "$stage"
    mkdir -p "$stage/opt/flink/usrlib" "$stage/opt/flink/log"
    for d in bin conf lib plugins licenses; do cp -a "$FLINK_DIST/$d" "$stage/opt/flink/"; done
    rm -f "$stage"/opt/flink/bin/*.bat "$stage"/opt/flink/bin/pyflink-*
    cp "$JOB_JAR" "$stage/opt/flink/usrlib/stateful-counter.jar"
    install -m 0755 "$KUBE_LAB_SCRIPTS/flink-entrypoint.sh" "$stage/docker-entrypoint.sh"
    (cd "$stage" && tar --numeric-owner --owner=0 --group=0 -cf "$LAYERS/flink.tar" ./opt ./docker-entrypoint.sh)
    rm -rf "$stage"
    config=$(printf '{"Entrypoint":["/docker-entrypoint.sh"],"Cmd":["help"],"WorkingDir":"/opt/flink","Env":["PATH=/opt/flink/bin:%s/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","FLINK_HOME=/opt/flink","JAVA_HOME=%s","LANG=C.UTF-8"]}' "$java_home" "$java_home")
    "$KUBE_LAB_SCRIPTS/image.py" assemble "$OUT.tmp" "$KUBE_LAB_FLINK_IMAGE" "$config" "$LAYERS/base.tar" "$LAYERS/flink.tar" >/dev/null
    mv -f "$OUT.tmp" "$OUT"
    rm -f "$LAYERS/flink.tar"
    lab_log "image $KUBE_LAB_FLINK_IMAGE ($(du -m "$OUT" | cut -f1) MB) in $(lab_since "$t0")s"
}

main() {
    mkdir -p "$LAYERS" "$LAB_LOG"
    if up_to_date && [ "${REBUILD_BASE:-0}" != 1 ]; then
        lab_log "image $OUT is up to date"
    else
        [ -f "$LAYERS/base.tar" ] && [ "${REBUILD_BASE:-0}" != 1 ] || build_base
        build_image
    fi
    if [ -S "$LAB_SOCK" ]; then
        lab_load_image "$OUT"
    fi
}

exec 8>"$KUBE_LAB/.image.lock"
flock -w 1800 8 || lab_die "timeout waiting for $KUBE_LAB/.image.lock"
main
