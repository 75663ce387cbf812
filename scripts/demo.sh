#!/usr/bin/env bash
# Sets up Flink and the example job, makes a Git repository from examples/repo (once),
# and runs the agent on it with the local runtime. Edit and commit in that repository to
# see upgrades; Ctrl-C stops the agent (the Flink clusters keep running; `flink-gitops down`
# stops them).
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh --print-env | sed 's/^/export /')"
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$PWD/target}/release/flink-gitops"
cache="${FLINK_GITOPS_CACHE:-$HOME/.cache/flink-gitops}"
repo="$cache/demo/repo"
if [ ! -d "$repo/.git" ]; then
  mkdir -p "$repo"
  cp -R examples/repo/. "$repo/"
  git -C "$repo" init -q -b main
  git -C "$repo" add -A
  git -C "$repo" -c user.name=demo -c user.email=demo@localhost commit -q -m "Example Flink jobs"
  echo "demo: created $repo from examples/repo" >&2
fi
"$bin" validate "$repo"
cat >&2 <<TXT
demo: running the agent on $repo (local runtime). In another terminal:
  $bin status --repo $repo
  cd $repo && \$EDITOR apps/payments-etl.yaml && git commit -am 'v2' # the agent upgrades it with a savepoint
  $bin down          # stop every local Flink cluster
TXT
exec "$bin" run --repo "$repo" --interval "${FLINK_GITOPS_INTERVAL:-5s}" "$@"
