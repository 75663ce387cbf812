#!/usr/bin/env bash
# Fuzzes the manifest reader: `scripts/fuzz.sh [seconds]` (default 1800, the 30 minutes issue
# 7 asks for). The target (fuzz/fuzz_targets/manifest_reader.rs) reads arbitrary bytes as a
# manifest file, as validate, plan and the agent do, and fails on a panic, on plan and
# validate disagreeing, on a spec that does not survive the status branch, on an input that
# takes more than 10 s, or on more than 2 GiB of memory.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz hands rustc nightly-only flags
# (-Zsanitizer, -Cpasses=sancov-module, ...); RUSTC_BOOTSTRAP=1 lets a stable toolchain take
# them, so no nightly toolchain is needed.
#
# Seeds are in fuzz/seeds/manifest_reader (examples/repo, tests/fixtures/invalid and the YAML
# forms of tests/yaml_forms.rs). What the fuzzer finds grows fuzz/corpus/manifest_reader
# (not in Git; kept between runs); a failing input lands in fuzz/artifacts/manifest_reader/
# and is replayed with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz -s none manifest_reader <file>
# Set FUZZ_SANITIZER=address to run under AddressSanitizer (slower; the crate is safe Rust).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-1800}"
if ! command -v cargo-fuzz >/dev/null; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
export RUSTC_BOOTSTRAP=1
corpus=fuzz/corpus/manifest_reader
mkdir -p "$corpus"
exec cargo fuzz run --fuzz-dir fuzz --sanitizer "${FUZZ_SANITIZER:-none}" manifest_reader \
    "$corpus" fuzz/seeds/manifest_reader -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 -len_control=0 \
    -dict=fuzz/yaml.dict -print_final_stats=1
