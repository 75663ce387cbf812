#!/usr/bin/env bash
# Sets up everything the tests need (Java 17, Flink 2.3 from PyPI, the example job, and the
# Kubernetes test cluster of scripts/kube-lab with its images) and runs the whole test
# suite: unit tests, the manifest corpus, plan on real Git histories, the agent against
# real Flink processes and real Git remotes, and the agent on the test cluster.
#
# The test cluster is built once per machine into the cache (scripts/kube-lab/setup.sh:
# about 25 minutes the first time, seconds after); FLINK_GITOPS_SKIP_KUBE=1 leaves it out
# (its tests then say SKIPPED). The cluster is started for the run and stopped after it,
# unless it was running already.
set -euo pipefail
cd "$(dirname "$0")/.."
kube=(--kube)
[ "${FLINK_GITOPS_SKIP_KUBE:-0}" = 1 ] && kube=()
eval "$(scripts/setup.sh --print-env "${kube[@]}" | sed 's/^/export /')"
log="$(mktemp)"
lab_started=0
cleanup() {
    rm -f "$log"
    if [ "$lab_started" = 1 ]; then
        scripts/kube-lab/stop.sh >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
if [ ${#kube[@]} -gt 0 ]; then
    # shellcheck disable=SC2016
    if ! bash -c 'source scripts/kube-lab/lib.sh && lab_alive kube-apiserver && lab_alive kubelet'; then
        lab_started=1
    fi
    scripts/kube-lab/start.sh
fi
# Real Flink clusters are heavy (~300 MB and 4-6 s per JVM on two cores): tests that start
# clusters on this machine take turns (tests/harness/flink.rs), tests on the test cluster
# take turns among themselves (tests/harness/kube.rs); other tests run beside them.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-3}"
status=0
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over the test binaries.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
