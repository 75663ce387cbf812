#!/usr/bin/env bash
# Sets up everything the tests need (Java 17, Flink 2.3 from PyPI, the example job) and
# runs the whole test suite: unit tests, the manifest corpus, plan on real Git histories,
# and the agent against real Flink processes and real Git remotes.
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh --print-env | sed 's/^/export /')"
# Real Flink clusters are heavy (~300 MB and 4-6 s per JVM on two cores): the suite bounds
# how many run at once itself; cargo's own test threads stay at two.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
cargo test --locked "$@"
