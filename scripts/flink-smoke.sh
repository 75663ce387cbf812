#!/usr/bin/env bash
# End-to-end smoke test of the local Flink 2.3 recipe and the stateful-counter job:
#   session cluster (JM + TM, own conf dir, REST localhost:28081, RPC 26123)
#   -> upload jar -> run v1 (fixed job id) -> wait for output
#   -> stop-with-savepoint -> run v2 from the savepoint
#   -> assert: first line per key of v2 has count = last count of v1 + 1 (state restored),
#      first seq of v2 = last seq of v1 + 1, count == seq / keys + 1 on every line
#   -> stop-with-savepoint v2 -> run v3 with --failAfter 3 from it -> assert job FAILED
#      with the injected exception and counts still continuing.
# Every process started here is killed on exit (also on failure). Exit 0 only if all checks pass.
#
# Env: SMOKE_BREAK_RESTORE=1 (negative test: v2 starts fresh, the check must fail, exit 1),
#      SMOKE_REST_PORT (28081), SMOKE_RPC_PORT (26123), SMOKE_WORK (default: mktemp dir;
#      removed on success unless SMOKE_KEEP=1), FLINK_GITOPS_CACHE (see setup.sh).
set -euo pipefail

T0=$(date +%s.%N)
HERE="$(cd "$(dirname "$0")" && pwd)"
REST_PORT="${SMOKE_REST_PORT:-28081}"
RPC_PORT="${SMOKE_RPC_PORT:-26123}"
URL="http://localhost:$REST_PORT"
KEYS=3

elapsed() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN { printf "%.1f", a - b }'; }
log() { printf 'smoke [%6ss] %s\n' "$(elapsed)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

command -v jq >/dev/null || fail "jq is required"
command -v curl >/dev/null || fail "curl is required"

eval "$("$HERE/setup.sh" --print-env | sed 's/^/export /')"
export PATH="$JAVA_HOME/bin:$PATH"

if [ -n "${SMOKE_WORK:-}" ]; then
    WORK="$SMOKE_WORK"; mkdir -p "$WORK"
else
    WORK="$(mktemp -d /tmp/flink-smoke.XXXXXX)"
fi
WORK="$(cd "$WORK" && pwd)"
mkdir -p "$WORK"/{conf,log,run,data/web-upload,data/tmp,data/checkpoints,data/savepoints}
OUT="$WORK/out.log"
: >"$OUT"

JM_PID=""; TM_PID=""; OK=0
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    for p in "$TM_PID" "$JM_PID"; do   # TM first, then JM
        [ -n "$p" ] || continue
        if kill -0 "$p" 2>/dev/null; then
            # setsid made $p a process-group leader: signal the group (JVM + any helper JVM still
            # running from the launch scripts), fall back to the pid
            kill -TERM -- "-$p" 2>/dev/null || kill -TERM "$p" 2>/dev/null || true
            for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
            if kill -0 "$p" 2>/dev/null; then
                log "pid $p did not stop, SIGKILL"
                kill -KILL -- "-$p" 2>/dev/null || kill -KILL "$p" 2>/dev/null || true
            fi
        fi
        wait "$p" 2>/dev/null || true
    done
    if [ "$OK" -eq 1 ] && [ "${SMOKE_KEEP:-0}" != 1 ] && [ -z "${SMOKE_WORK:-}" ]; then
        rm -rf "$WORK"
    else
        log "work dir kept: $WORK (logs in $WORK/log)"
    fi
    log "total $(elapsed) s, exit $rc"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- config
if curl -s -o /dev/null --max-time 1 "$URL/overview"; then
    fail "something already answers on $URL; set SMOKE_REST_PORT/SMOKE_RPC_PORT"
fi

# env.java.opts.all from the distribution's config.yaml (nested or flat keys), required on Java 17
JAVA_OPTS_ALL="$(awk '
    /^[[:space:]]*(#|$)/ { next }
    {
        match($0, /^ */); ind = RLENGTH; line = substr($0, ind + 1)
        c = index(line, ":"); if (c == 0) next
        k = substr(line, 1, c - 1); v = substr(line, c + 1); sub(/^[[:space:]]+/, "", v)
        while (n > 0 && inds[n] >= ind) n--
        n++; inds[n] = ind; keys[n] = k
        path = keys[1]; for (i = 2; i <= n; i++) path = path "." keys[i]
        if (path == "env.java.opts.all" && v != "") { print v; exit }
    }' "$FLINK_HOME/conf/config.yaml")"
[ -n "$JAVA_OPTS_ALL" ] || fail "env.java.opts.all not found in $FLINK_HOME/conf/config.yaml"

cat >"$WORK/conf/config.yaml" <<EOF
env.java.opts.all: '${JAVA_OPTS_ALL//\'/\'\'}'
jobmanager:
  bind-host: localhost
  rpc: {address: localhost, port: $RPC_PORT}
  memory.process.size: 1g
taskmanager:
  bind-host: localhost
  host: localhost
  numberOfTaskSlots: 2
  memory: {process.size: 1g, managed.size: 64m}
rest:
  address: localhost
  bind-address: localhost
  port: $REST_PORT
  cache.execution-graph.timeout: 200 ms
cluster.registration: {error-delay: 1 s, refused-registration-delay: 1 s}
web.upload.dir: $WORK/data/web-upload
io.tmp.dirs: $WORK/data/tmp
execution.checkpointing:
  dir: file://$WORK/data/checkpoints
  savepoint-dir: file://$WORK/data/savepoints
  externalized-checkpoint-retention: RETAIN_ON_CANCELLATION
  num-retained: 3
state.backend.type: hashmap
EOF
cp "$FLINK_HOME/conf/log4j-console.properties" "$FLINK_HOME/conf/log4j.properties" "$WORK/conf/"

# ---------------------------------------------------------------- cluster
export FLINK_CONF_DIR="$WORK/conf" FLINK_LOG_DIR="$WORK/log" FLINK_PID_DIR="$WORK/run" \
       FLINK_IDENT_STRING=smoke STD_REDIRECT_TO_FILE=true
DOPTS=(-D "rest.port=$REST_PORT" -D "jobmanager.rpc.port=$RPC_PORT")
log "starting JM + TM (FLINK_HOME=$FLINK_HOME, work=$WORK)"
setsid "$FLINK_HOME/bin/jobmanager.sh" start-foreground "${DOPTS[@]}" >"$WORK/log/jm.launch" 2>&1 </dev/null &
JM_PID=$!
setsid "$FLINK_HOME/bin/taskmanager.sh" start-foreground "${DOPTS[@]}" >"$WORK/log/tm.launch" 2>&1 </dev/null &
TM_PID=$!

# wait_for <timeout s> <description> <command...>: poll every 0.1 s
wait_for() {
    local timeout=$1 what=$2; shift 2
    local end; end=$(( $(date +%s) + timeout ))
    until "$@"; do
        kill -0 "$JM_PID" 2>/dev/null || fail "JobManager died while waiting for: $what (see $WORK/log)"
        kill -0 "$TM_PID" 2>/dev/null || fail "TaskManager died while waiting for: $what (see $WORK/log)"
        [ "$(date +%s)" -lt "$end" ] || fail "timeout (${timeout}s) waiting for: $what"
        sleep 0.1
    done
}
tm_registered() { [ "$(curl -sf --max-time 2 "$URL/overview" | jq -r '.taskmanagers // 0' 2>/dev/null)" -ge 1 ] 2>/dev/null; }
wait_for 90 "REST ready + TM registered" tm_registered
log "cluster up: $(curl -sf "$URL/overview" | jq -c '{taskmanagers, "slots-total", "flink-version"}')"

# ---------------------------------------------------------------- helpers
post() { # post <path> <json> -> body on stdout; fails on HTTP >= 400
    local body code
    body="$(curl -sS --max-time 30 -X POST -H 'Content-Type: application/json' -d "$2" -w '\n%{http_code}' "$URL$1")"
    code="${body##*$'\n'}"; body="${body%$'\n'*}"
    [ "$code" -lt 400 ] || fail "POST $1 -> HTTP $code: $(echo "$body" | head -c 2000)"
    echo "$body"
}
job_status() { curl -sf --max-time 5 "$URL/jobs/$1/status" | jq -r .status; }
job_in_state() { [ "$(job_status "$1" 2>/dev/null)" = "$2" ]; }
all_running() { # all tasks of the job RUNNING (P9)
    curl -sf --max-time 5 "$URL/jobs/overview" |
        jq -e --arg j "$1" '.jobs[] | select(.jid == $j) | .tasks.total > 0 and .tasks.running == .tasks.total' >/dev/null
}
lines_of() { grep -F " version=$1 " "$OUT" || true; }
has_keys() { # has_keys <version> <min count per key>
    local v=$1 min=$2
    [ "$(lines_of "$v" | awk -v min="$min" '{
            for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["count"] + 0 >= c[f["key"]]) c[f["key"]] = f["count"] + 0
         } END { n = 0; for (k in c) if (c[k] >= min) n++; print n }')" -ge "$KEYS" ]
}
run_job() { # run_job <jarid> <jobid> <savepoint or ""> <extra flinkConfiguration json> args...
    local jarid=$1 jid=$2 sp=$3 fc=$4; shift 4
    local req
    req="$(jq -nc --arg jid "$jid" --arg sp "$sp" --argjson fc "$fc" '$ARGS.positional as $a |
        {entryClass: "lab.StatefulCounterJob", programArgsList: $a, parallelism: 1, jobId: $jid,
         flinkConfiguration: $fc}
        + (if $sp == "" then {} else {savepointPath: $sp, allowNonRestoredState: false, claimMode: "NO_CLAIM"} end)' \
        --args -- "$@")"
    post "/jars/$jarid/run" "$req" >/dev/null
}
stop_with_savepoint() { # -> savepoint location on stdout
    local jid=$1 trig st loc end
    trig="$(post "/jobs/$jid/stop" '{"drain":false}' | jq -r '."request-id"')"
    end=$(( $(date +%s) + 60 ))
    while :; do
        st="$(curl -sf --max-time 5 "$URL/jobs/$jid/savepoints/$trig")"
        if [ "$(echo "$st" | jq -r .status.id)" = COMPLETED ]; then
            loc="$(echo "$st" | jq -r '.operation.location // empty')"
            [ -n "$loc" ] || fail "stop-with-savepoint of $jid failed: $(echo "$st" | jq -r '.operation."failure-cause"."stack-trace" // .' | head -20)"
            echo "$loc"; return 0
        fi
        [ "$(date +%s)" -lt "$end" ] || fail "timeout waiting for stop-with-savepoint of $jid"
        sleep 0.05
    done
}
check_invariant() { # count == seq / keys + 1 on every line of a version (parallelism 1, one lineage)
    lines_of "$1" | awk -v keys="$KEYS" '{
            for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
            if (f["count"] != int(f["seq"] / keys) + 1) { print "invariant broken: " $0; bad = 1 }
        } END { exit bad }' >&2 || fail "count == seq/keys+1 violated for $1"
}

# ---------------------------------------------------------------- upload + v1
JAR_ID="$(curl -sf --max-time 30 -X POST -F "jarfile=@$FLINK_GITOPS_JOB_JAR" "$URL/jars/upload" | jq -r '.filename' | xargs basename)"
[ -n "$JAR_ID" ] && [ "$JAR_ID" != null ] || fail "jar upload failed"
log "uploaded jar: $JAR_ID"

JID1=5a0ce5a0ce000000000000000000a001
JID2=5a0ce5a0ce000000000000000000a002
JID3=5a0ce5a0ce000000000000000000a003

run_job "$JAR_ID" "$JID1" "" '{}' --version v1 --out "$OUT" --keys "$KEYS"
wait_for 60 "v1 all tasks RUNNING" all_running "$JID1"
log "v1 running (job $JID1)"
wait_for 60 "v1 output: count >= 3 for all $KEYS keys" has_keys v1 3
CP1="$(curl -sf "$URL/jobs/$JID1/checkpoints/config" | jq -r .interval)"
[ "$CP1" = 2000 ] || fail "v1 checkpoint interval = $CP1, expected the job default 2000"

# ---------------------------------------------------------------- stop-with-savepoint, v2
SP1="$(stop_with_savepoint "$JID1")"
log "v1 stopped with savepoint $SP1"
wait_for 30 "v1 FINISHED" job_in_state "$JID1" FINISHED
# v2 with a checkpoint interval set by the submission: the job must keep it
V2_FROM="$SP1"
if [ "${SMOKE_BREAK_RESTORE:-0}" = 1 ]; then log "SMOKE_BREAK_RESTORE=1: starting v2 WITHOUT the savepoint (check must fail)"; V2_FROM=""; fi
run_job "$JAR_ID" "$JID2" "$V2_FROM" '{"execution.checkpointing.interval":"3 s"}' --version v2 --out "$OUT" --keys "$KEYS"
wait_for 60 "v2 all tasks RUNNING" all_running "$JID2"
log "v2 running from savepoint (job $JID2)"
wait_for 60 "v2 output: a line for every key" has_keys v2 1
CP2="$(curl -sf "$URL/jobs/$JID2/checkpoints/config" | jq -r .interval)"
[ "$CP2" = 3000 ] || fail "v2 checkpoint interval = $CP2, expected 3000 from flinkConfiguration"

# ---------------------------------------------------------------- verify restore v1 -> v2
# compare <old version> <new version>: prints per-key evidence, fails on mismatch
compare() {
    local old=$1 new=$2
    { lines_of "$old" | sed 's/^/A /'; lines_of "$new" | sed 's/^/B /'; } | awk -v old="$old" -v new="$new" '
        { delete f; for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
          k = f["key"]
          if ($1 == "A") { last[k] = f["count"] + 0; if (f["seq"] + 0 > maxseq) maxseq = f["seq"] + 0 }
          else if (!(k in first)) { first[k] = f["count"] + 0; if (minseq == "" || f["seq"] + 0 < minseq) minseq = f["seq"] + 0 } }
        END {
          for (k in last) {
            ok = (k in first) && first[k] == last[k] + 1
            printf "key=%s last %s count=%d -> first %s count=%s  %s\n", k, old, last[k], new, (k in first) ? first[k] : "none", ok ? "OK" : "MISMATCH"
            if (!ok) bad = 1
          }
          gap = (minseq == maxseq + 1)
          printf "seq: last %s=%d -> first %s=%s  %s\n", old, maxseq, new, minseq, gap ? "OK (gapless)" : "MISMATCH"
          if (!gap) bad = 1
          exit bad }'
}
echo "== evidence: last lines of v1"; lines_of v1 | tail -n "$KEYS"
echo "== evidence: first lines of v2 (restored from $SP1)"; lines_of v2 | head -n "$KEYS"
echo "== check v1 -> v2"
compare v1 v2 || fail "state NOT restored from $SP1"
check_invariant v1
check_invariant v2
RESTORED="$(curl -sf "$URL/jobs/$JID2/checkpoints" | jq -r '.latest.restored.external_path // empty')"
log "v2 /checkpoints latest.restored.external_path = ${RESTORED:-<not yet reported>}"

# ---------------------------------------------------------------- bad version (--failAfter) from v2's savepoint
SP2="$(stop_with_savepoint "$JID2")"
log "v2 stopped with savepoint $SP2"
wait_for 30 "v2 FINISHED" job_in_state "$JID2" FINISHED
run_job "$JAR_ID" "$JID3" "$SP2" '{}' --version v3bad --out "$OUT" --keys "$KEYS" --failAfter 3
wait_for 60 "v3bad FAILED (restart-strategy none)" job_in_state "$JID3" FAILED
CAUSE="$(curl -sf "$URL/jobs/$JID3/exceptions" | jq -r '[.exceptionHistory.entries[0] | .stacktrace, (.concurrentExceptions[]?.stacktrace)] | join("\n")' | grep -m1 -o 'failing on purpose after [0-9]* records' || true)"
[ -n "$CAUSE" ] || fail "v3bad FAILED but the injected exception was not found in /jobs/$JID3/exceptions"
N3="$(lines_of v3bad | wc -l)"
[ "$N3" -eq 3 ] || fail "v3bad wrote $N3 lines, expected exactly 3 (--failAfter 3, no restarts)"
check_invariant v3bad
echo "== evidence: v3bad (--failAfter 3) from $SP2: FAILED with '$CAUSE'"; lines_of v3bad
echo "== check v2 -> v3bad"
compare v2 v3bad || fail "v3bad did not continue from $SP2"   # 3 consecutive seqs = one line per key

OK=1
echo "SMOKE PASSED"
