#!/usr/bin/env bash
# Build the lab Kubernetes cluster once per machine into the cache (see lib.sh for the layout):
#   * Debian packages: etcd, containerd, runc, CNI plugins, busybox-static, Go 1.19 (for the build)
#   * kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kubectl v1.20.2, built
#     from Debian's `kubernetes` source package (the full upstream tree with vendor/; the newest
#     Kubernetes source these machines can reach), with one patch: the vendored reflect2 v1.0.1
#     crashes under Go >= 1.18 on the first write, so Debian's reflect2 1.0.2 replaces it
#   * the pod sandbox image (a static `pause` from the same tree) and a busybox image, made by
#     image.py without a registry
#   * certificates, tokens and kubeconfigs (pki.sh)
# Idempotent and locked: a second run, or one racing this one, finds the stamp and returns in
# seconds. The build runs under `nice -n 15` and takes about 5 minutes on two idle cores (more
# when the machine is busy); the 3 GB build tree is deleted afterwards, bin/ keeps ~390 MB.
source "$(dirname "$0")/lib.sh"

PACKAGES=(etcd-server etcd-client containerd runc containernetworking-plugins busybox-static
    iptables conntrack socat curl openssl python3 rsync gcc libc6-dev make
    golang-go golang-github-modern-go-reflect2-dev)
SRC_PACKAGE_VERSION="1.20.5+really1.20.2-1.1+deb12u1"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    lab_log "apt-get install ${missing[*]}"
    local t0
    t0=$(lab_now)
    mkdir -p "$LAB_LOG"
    # policy-rc.d (or the lack of an init system) keeps the packaged services from starting;
    # the lab runs its own etcd and containerd with private paths.
    if ! { as_root apt-get -o DPkg::Lock::Timeout=600 update -qq &&
        as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            --no-install-recommends "${missing[@]}"; } >"$LAB_LOG/apt.log" 2>&1; then
        tail -20 "$LAB_LOG/apt.log" >&2
        lab_die "apt-get install failed (log: $LAB_LOG/apt.log)"
    fi
    lab_log "packages installed in $(lab_since "$t0")s"
}

# Debian's source package, fetched with a private apt configuration (its own deb-src list, package
# lists and cache under $KUBE_LAB/apt), so the machine's apt sources and lists stay untouched.
fetch_source() {
    local src=$KUBE_LAB/src apt=$KUBE_LAB/apt
    [ -d "$src/kubernetes-$KUBE_VERSION" ] && return 0
    rm -rf "$src" "$apt"
    mkdir -p "$src" "$apt/parts" "$apt/lists/partial" "$apt/cache/archives/partial"
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources >"$apt/parts/debian-src.sources"
    local opts=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt/parts"
        -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o APT::Sandbox::User=root)
    apt-get "${opts[@]}" update -qq >&2
    (cd "$src" && apt-get "${opts[@]}" source --download-only "kubernetes=$SRC_PACKAGE_VERSION" >&2)
    tar -xzf "$src"/kubernetes_*.orig.tar.gz -C "$src"
    [ -d "$src/kubernetes-$KUBE_VERSION" ] || lab_die "source package did not unpack to $src/kubernetes-$KUBE_VERSION"
    rm -rf "$apt"
}

build_kubernetes() {
    local tree=$KUBE_LAB/src/kubernetes-$KUBE_VERSION reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
    [ -d "$reflect2" ] || lab_die "$reflect2 missing (package golang-github-modern-go-reflect2-dev)"
    rsync -a --exclude go.mod "$reflect2/" "$tree/vendor/github.com/modern-go/reflect2/"
    rm -f "$tree"/vendor/github.com/modern-go/reflect2/go_{above_17,below_17,below_19}.go
    # 1.20's code generators want the tree at $GOPATH/src/k8s.io/kubernetes (as debian/rules sets up)
    mkdir -p "$tree/.go/src/k8s.io"
    [ -L "$tree/.go/src/k8s.io/kubernetes" ] || ln -s ../../.. "$tree/.go/src/k8s.io/kubernetes"
    lab_log "building Kubernetes $KUBE_VERSION (nice 15, log $LAB_LOG/build.log)"
    local t0
    t0=$(lab_now)
    if ! (cd "$tree" && nice -n 15 env GOPATH="$tree/.go" PATH="/usr/lib/go/bin:$PATH" CGO_ENABLED=0 \
        GOFLAGS=-mod=vendor HOME="$KUBE_LAB/src/home" \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager cmd/kube-scheduler cmd/kubelet cmd/kubectl" \
        >"$LAB_LOG/build.log" 2>&1); then
        tail -30 "$LAB_LOG/build.log" >&2
        lab_die "Kubernetes build failed"
    fi
    lab_log "Kubernetes built in $(lab_since "$t0")s"
    mkdir -p "$LAB_BIN"
    local b
    for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl; do
        install -m 0755 "$tree/_output/bin/$b" "$LAB_BIN/$b.tmp"
        mv -f "$LAB_BIN/$b.tmp" "$LAB_BIN/$b"
    done
}

make_base_images() {
    local tree=$KUBE_LAB/src/kubernetes-$KUBE_VERSION work=$KUBE_LAB/images/work
    rm -rf "$work"
    mkdir -p "$work"
    gcc -Os -static -DVERSION=v3.2-flink-gitops -o "$work/pause" "$tree/build/pause/linux/pause.c"
    strip "$work/pause"
    "$KUBE_LAB_SCRIPTS/image.py" layer "$work/pause-layer.tar" "$work/pause:/pause"
    "$KUBE_LAB_SCRIPTS/image.py" assemble "$LAB_IMAGES/pause.tar" "$KUBE_LAB_PAUSE_IMAGE" \
        '{"Entrypoint":["/pause"]}' "$work/pause-layer.tar" >/dev/null
    local links=() tool
    for tool in sh sleep echo cat ls date env id ps wget nc true false printf mkdir rm touch uname hostname; do
        links+=(--link "bin/$tool=busybox")
    done
    "$KUBE_LAB_SCRIPTS/image.py" layer "$work/busybox-layer.tar" /bin/busybox:/bin/busybox "${links[@]}" --dir tmp --dir etc
    "$KUBE_LAB_SCRIPTS/image.py" assemble "$LAB_IMAGES/busybox.tar" "$KUBE_LAB_BUSYBOX_IMAGE" \
        '{"Entrypoint":["/bin/sh"],"Env":["PATH=/bin"]}' "$work/busybox-layer.tar" >/dev/null
    rm -rf "$work"
}

setup_locked() {
    if lab_built; then
        lab_log "built by a concurrent run"
        return 0
    fi
    local t0
    t0=$(lab_now)
    install_packages
    if [ ! -x "$LAB_BIN/kubelet" ] || [ ! -f "$LAB_IMAGES/busybox.tar" ]; then
        fetch_source
        [ -x "$LAB_BIN/kubelet" ] && [ -x "$LAB_BIN/kubectl" ] || build_kubernetes
        make_base_images
        # only bin/ and images/ are needed from here on (the tree with its Go cache is ~3 GB)
        rm -rf "$KUBE_LAB/src"
    fi
    "$LAB_BIN/kube-apiserver" --version >&2
    echo "$KUBE_VERSION" >"$KUBE_LAB/built"
    lab_log "set up in $(lab_since "$t0")s"
}

main() {
    mkdir -p "$KUBE_LAB" "$LAB_BIN" "$LAB_IMAGES" "$LAB_LOG"
    if ! lab_built; then
        (
            flock -w 3600 9 || lab_die "timeout waiting for $KUBE_LAB/.setup.lock"
            setup_locked
        ) 9>"$KUBE_LAB/.setup.lock"
    fi
    "$KUBE_LAB_SCRIPTS/pki.sh"
    lab_log "ready: $LAB_BIN (Kubernetes $KUBE_VERSION); start it with scripts/kube-lab/start.sh"
}
main "$@"
