#!/usr/bin/env bash
# Sets up everything the tests need (Java 17, Flink 2.3 from PyPI, the example job) and
# runs the whole test suite: unit tests, the manifest corpus, plan on real Git histories,
# and the agent against real Flink processes and real Git remotes.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh --print-env | sed 's/^/export /')"
# Real Flink clusters are heavy (~300 MB and 4-6 s per JVM on two cores): tests that start
# clusters take turns (tests/harness/flink.rs); other tests run beside them.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked --lib --bins --tests "$@" 2>&1 | tee "$log" || status=$?
# One closing line for the whole run, summed over the test binaries.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
