#!/usr/bin/env bash
# Load test of the real server over gRPC on loopback, side by side in one
# run: Check vs CheckBaseline (closed loop, K connections, N = 8/32/128),
# the open loop at half of the measured Check saturation, reserving Checks
# (with the journal's group-commit batch sizes scraped from --metrics-listen),
# and the mixed lender load; then (unless PG=0) the PostgreSQL peer of
# benches/pg-peer.sh on the same history. Not part of CI.
#
#   benches/load.sh                       # about 6 minutes
#   DUR=5s PG=0 benches/load.sh           # shorter, guard only
#
# Knobs (environment): DUR (10s), WARM (2s), BORROWERS (50000), K (4),
# NS ("8 32 128"), REPS (2: each closed-loop pair repeated), SEED (1), PIN (1: server on cpu 0, generator on cpu 1
# with one runtime thread; 0: both unpinned, generator with 2 threads),
# PG (1), OUT (a file to keep the JSON lines in), SERVER_ARGS (extra flags
# for serve, e.g. --no-decision-log or --durability buffered).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
WARM=${WARM:-2s}
BORROWERS=${BORROWERS:-50000}
K=${K:-4}
NS=${NS:-"8 32 128"}
SEED=${SEED:-1}
REPS=${REPS:-2}
PIN=${PIN:-1}
PG=${PG:-1}

cargo build --release --quiet --bin compliance-guard --example loadgen
BIN=target/release/compliance-guard
LG=target/release/examples/loadgen

WORK=$(mktemp -d /tmp/cg-load.XXXXXX)
OUT=${OUT:-$WORK/results.jsonl}
: >"$OUT"
SERVER_PID=
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK/data"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
MPORT=$(free_port)

if [[ $PIN == 1 ]]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    THREADS=1
else
    SERVER_CPU=()
    CLIENT_CPU=()
    THREADS=2
fi

echo "machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uptime | sed 's/.*load/load/')"
echo "code: $(git rev-parse --short HEAD)$(git status --porcelain src Cargo.toml | grep -q . && echo ' plus uncommitted changes in src/'); server args: ${SERVER_ARGS:-none}"
echo "pinning: ${PIN} (server ${SERVER_CPU[*]:-unpinned}, loadgen ${CLIENT_CPU[*]:-unpinned}, $THREADS loadgen thread(s))"

"${SERVER_CPU[@]}" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" --rules rules \
    --metrics-listen "127.0.0.1:$MPORT" --no-reload ${SERVER_ARGS:-} >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
    grep -q SERVING "$WORK/server.log" 2>/dev/null && break
    sleep 0.1
done
grep -q SERVING "$WORK/server.log" || { cat "$WORK/server.log"; exit 1; }

HIST_END=$(date -u +%Y-%m-%dT%H:00:00Z)
export HIST_END

# Server CPU time (user + system) in clock ticks. The rest of the machine
# (loadgen, about one core when saturated, plus anything else running) is
# reported beside it: more than about 1.1 cores means something else ran.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
TCK=$(getconf CLK_TCK)
# Busy ticks of the whole machine (every core), to see what else ran.
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# lg LABEL ARGS...: one run; its JSON line gains the server's CPU µs per request.
lg() {
    local label=$1
    shift
    local before after mbefore mafter t0 t1
    before=$(cpu_ticks)
    mbefore=$(busy_ticks)
    t0=$(date +%s.%N)
    "${CLIENT_CPU[@]}" "$LG" --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" \
        --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END" \
        --connections "$K" --threads "$THREADS" --duration "$DUR" --warmup "$WARM" \
        --json --no-seed --label "$label" "$@" >"$WORK/run.txt"
    after=$(cpu_ticks)
    mafter=$(busy_ticks)
    t1=$(date +%s.%N)
    grep -v '^JSON ' "$WORK/run.txt"
    grep '^JSON ' "$WORK/run.txt" | sed 's/^JSON //' |
        jq -c --argjson t "$((after - before))" --argjson hz "$TCK" --argjson m "$((mafter - mbefore))" \
            --argjson wall "$(echo "$t1 - $t0" | bc)" \
            '. + {target: "guard", rest_cores: (($m - $t) / $hz / $wall), server_cpu_us_per_req: (if .requests > 0 then ($t / $hz * 1e6 / (.requests + .warmup_requests)) else null end)}' >>"$OUT"
    echo
}

scrape() { curl -s "http://127.0.0.1:$MPORT/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

# Seeding (deterministic history; through CreateInteraction) on a short run.
"${CLIENT_CPU[@]}" "$LG" --addr "127.0.0.1:$PORT" --data-dir "$WORK/data" --borrowers "$BORROWERS" \
    --seed "$SEED" --history-end "$HIST_END" --connections "$K" --threads "$THREADS" \
    --duration 1s --warmup 0s --mix baseline --concurrency 1 >/dev/null
echo

for _ in $(seq "$REPS"); do
    for n in $NS; do
        lg "baseline N=$n" --mix baseline --concurrency "$n"
        lg "check N=$n" --mix check --concurrency "$n"
    done
done

# Saturation: the best mean over the repetitions of one N.
SAT=$(jq -s '[group_by(.label)[] | select(.[0].label | startswith("check N=")) | (map(.throughput) | add / length)] | max' "$OUT")
RATE=$(jq -n --argjson s "$SAT" '($s / 2) | floor')
echo "Check saturation ${SAT} req/s; open loop at ${RATE}/s"
lg "open check R=$RATE" --mix check --rate "$RATE"
lg "open baseline R=$RATE" --mix baseline --rate "$RATE"

b0=$(scrape compliance_guard_journal_batch_records_sum)
c0=$(scrape compliance_guard_journal_batch_records_count)
lg "reserve N=32" --mix reserve --concurrency 32
b1=$(scrape compliance_guard_journal_batch_records_sum)
c1=$(scrape compliance_guard_journal_batch_records_count)
if [[ -n $b1 && -n $c1 ]]; then
    BATCH=$(jq -n "(${b1} - ${b0:-0}) / ((${c1} - ${c0:-0}) | if . == 0 then 1 else . end)")
    echo "journal batches during the reserve run: $((${c1%.*} - ${c0%.*:-0})), mean $(printf %.1f "$BATCH") records per batch"
    jq -c -n --arg b "$BATCH" --argjson n "$((${c1%.*} - ${c0%.*:-0}))" \
        '{label: "reserve N=32 journal", batches: $n, mean_batch_records: ($b | tonumber)}' >>"$OUT"
else
    echo "compliance_guard_journal_batch_records is not exported by this server: no batch sizes"
fi
lg "create N=32" --mix create --concurrency 32
lg "mixed N=32" --mix mixed --concurrency 32
lg "open mixed R=$((RATE / 2))" --mix mixed --rate "$((RATE / 2))"

kill "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=

if [[ $PG == 1 ]]; then
    OUT=$OUT RATE=$RATE REPS=$REPS DUR=$DUR WARM=$WARM BORROWERS=$BORROWERS SEED=$SEED PIN=$PIN NS=$NS \
        benches/pg-peer.sh
fi

echo
echo "## Summary ($DUR measured after $WARM warm-up, K=$K, $BORROWERS borrowers, pin=$PIN)"
echo
echo "| run | target | req/s | p50 µs | p99 µs | p99.9 µs | errors | blocked % | server CPU µs/req | rest of machine, cores |"
echo "|---|---|---|---|---|---|---|---|---|---|"
jq -r 'select(.ops) | . as $r | (.ops | to_entries[]) |
  "| \($r.label) \(if ($r.ops | length) > 1 then "· " + .key else "" end) | \($r.target) | \(.value.throughput | floor) | \(.value.p50_us | floor) | \(.value.p99_us | floor) | \(.value.p999_us | floor) | \(.value.errors | add // 0)\(if $r.dropped > 0 then " +\($r.dropped) dropped" else "" end) | \(.value.blocked * 1000 / .value.requests | floor / 10) | \($r.server_cpu_us_per_req // "-" | if type == "number" then (. * 10 | floor) / 10 else . end) | \($r.rest_cores // "-" | if type == "number" then (. * 100 | floor) / 100 else . end) |"' "$OUT"
echo
echo "Ratios of throughput (same N; means over the repetitions):"
jq -s -r '
  def tp(l): (map(select(.label == l) | .throughput) | if length > 0 then add / length else null end);
  (map(select(.label | test("^check N="))) | map(.label | sub("check N="; "") | tonumber) | unique | .[] | "N=\(.)") as $n
  | "  \($n): Check/CheckBaseline = \((tp("check " + $n) / tp("baseline " + $n) * 100 | floor) / 100)"
    + (if tp("sql " + $n) then ", Check/SQL check = \((tp("check " + $n) / tp("sql " + $n) * 100 | floor) / 100)" else "" end)' "$OUT"
echo "results: $OUT"
