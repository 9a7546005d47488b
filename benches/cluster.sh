#!/usr/bin/env bash
# One node (local journal, --durability sync) against three nodes on a
# 3-server NATS JetStream cluster (R3, sync_interval: always), in one run
# on this machine: Check, reserving Check and CreateInteraction, each
# closed loop at 32 in flight, with throughput, p50 and p99 from the load
# generator, and the CPU time of every process (guards and NATS servers,
# user + system) per request. The cluster's read barrier and how far the
# nodes trail the stream are scraped from the nodes' metrics. Not part of
# CI.
#
#   benches/cluster.sh                 # about 3 minutes
#   DUR=5s REPS=1 benches/cluster.sh
#
# Knobs (environment): DUR (10s), WARM (2s), BORROWERS (2000), K (6),
# N (32), REPS (2), SEED (1), OUT (a file to keep the JSON lines in),
# NATS_SERVER (default target/nats/bin/nats-server, as .ci/run installs).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
WARM=${WARM:-2s}
BORROWERS=${BORROWERS:-2000}
K=${K:-6}
N=${N:-32}
REPS=${REPS:-2}
SEED=${SEED:-1}
NATS=${NATS_SERVER:-target/nats/bin/nats-server}

cargo build --release --quiet --bin compliance-guard --example loadgen
BIN=target/release/compliance-guard
LG=target/release/examples/loadgen

WORK=$(mktemp -d /tmp/cg-cluster.XXXXXX)
OUT=${OUT:-$WORK/results.jsonl}
: >"$OUT"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
TCK=$(getconf CLK_TCK)
# CPU ticks (user + system) of the processes whose pids are given.
ticks() { local t=0; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }

echo "machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(uptime | sed 's/.*load/load/')"
echo "code: $(git rev-parse --short HEAD)$(git status --porcelain src Cargo.toml | grep -q . && echo ' plus uncommitted changes in src/'); nats: $($NATS --version)"

wait_serving() {
    for _ in $(seq 300); do
        grep -q SERVING "$1" 2>/dev/null && return
        sleep 0.1
    done
    cat "$1"
    exit 1
}

# lg LABEL ADDRS PIDS... -- LOADGEN ARGS...
lg() {
    local label=$1 addrs=$2
    shift 2
    local pids=()
    while [[ $1 != -- ]]; do pids+=("$1"); shift; done
    shift
    local before after t0 t1
    before=$(ticks "${pids[@]}")
    t0=$(date +%s.%N)
    "$LG" --addr "$addrs" --key any --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END" \
        --connections "$K" --concurrency "$N" --duration "$DUR" --warmup "$WARM" \
        --json --no-seed --label "$label" "$@" >"$WORK/run.txt"
    after=$(ticks "${pids[@]}")
    t1=$(date +%s.%N)
    grep -v '^JSON ' "$WORK/run.txt" | sed -n '1,3p'
    grep '^JSON ' "$WORK/run.txt" | sed 's/^JSON //' |
        jq -c --argjson t "$((after - before))" --argjson hz "$TCK" \
            '. + {cpu_us_per_req_all_processes: (if .requests > 0 then ($t / $hz * 1e6 / (.requests + .warmup_requests)) else null end)}' >>"$OUT"
}

HIST_END=$(date -u +%Y-%m-%dT%H:00:00Z)

# ---- one node, local journal ------------------------------------------------
PORT=$(free_port)
"$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/single" --rules rules --insecure-no-auth \
    --no-reload --no-decision-log --durability sync >"$WORK/single.log" 2>&1 &
SINGLE=$!
PIDS+=("$SINGLE")
wait_serving "$WORK/single.log"
"$LG" --addr "127.0.0.1:$PORT" --key any --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END" \
    --connections "$K" --duration 1s --warmup 0s --mix baseline --concurrency 1 >/dev/null

# ---- three nodes on a 3-server JetStream cluster -----------------------------
# shellcheck source=benches/nats_cluster.sh
source benches/nats_cluster.sh
start_nats_cluster
NODE_PIDS=()
ADDRS=()
MPORTS=()
for i in 0 1 2; do
    P=$(free_port)
    MP=$(free_port)
    "$BIN" serve --listen "127.0.0.1:$P" --data-dir "$WORK/node$i" --rules rules --insecure-no-auth \
        --no-reload --no-decision-log --cluster "$CLUSTER" --node-id "n$i" \
        --metrics-listen "127.0.0.1:$MP" >"$WORK/node$i.log" 2>&1 &
    NODE_PIDS+=("$!")
    PIDS+=("$!")
    ADDRS+=("127.0.0.1:$P")
    MPORTS+=("$MP")
    wait_serving "$WORK/node$i.log"
done
NODES=$(IFS=,; echo "${ADDRS[*]}")
"$LG" --addr "$NODES" --key any --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END" \
    --connections "$K" --duration 1s --warmup 0s --mix baseline --concurrency 1 >/dev/null

scrape() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }

# Replication lag, sampled every 200 ms while the cluster takes writes:
# how far each node trails the node furthest ahead (the three read within
# a few milliseconds), in messages, and in milliseconds at the stream's
# rate over the same sample. A node's own writes wait for it to apply
# them, so this is what a node behind adds to the others' Checks.
lag_sampler() {
    local prev_top="" prev_t=""
    while :; do
        local t a0 a1 a2 top
        t=$(date +%s.%N)
        a0=$(scrape "${MPORTS[0]}" compliance_guard_cluster_applied_sequence)
        a1=$(scrape "${MPORTS[1]}" compliance_guard_cluster_applied_sequence)
        a2=$(scrape "${MPORTS[2]}" compliance_guard_cluster_applied_sequence)
        top=$(printf '%s\n' "${a0%.*}" "${a1%.*}" "${a2%.*}" | sort -n | tail -1)
        if [[ -n $prev_top ]]; then
            for a in "$a0" "$a1" "$a2"; do echo "$t $top ${a%.*} $prev_t $prev_top"; done
        fi
        prev_top=$top
        prev_t=$t
        sleep 0.2
    done
}

for _ in $(seq "$REPS"); do
    for mix in check reserve create; do
        lg "1 node $mix" "127.0.0.1:$PORT" "$SINGLE" -- --mix "$mix"
        if [[ $mix == create ]]; then
            lag_sampler >>"$WORK/lag.txt" &
            SAMPLER=$!
        fi
        lg "3 nodes $mix" "$NODES" "${NODE_PIDS[@]}" "${NATS_PIDS[@]}" -- --mix "$mix"
        if [[ $mix == create ]]; then
            kill "$SAMPLER" 2>/dev/null || true
            wait "$SAMPLER" 2>/dev/null || true
        fi
    done
done
# Each line: time, the furthest node's applied, a node's applied, the
# previous time and furthest. Lag in messages = furthest - applied; in ms,
# divided by the stream's rate between the two samples.
if [[ -s $WORK/lag.txt ]]; then
    awk '{ lag = $2 - $3; if (lag < 0) lag = 0; rate = ($2 - $5) / ($1 - $4);
           if (rate > 0) print lag, lag / rate * 1000 }' "$WORK/lag.txt" | sort -n -k2 |
        awk '{ m[NR] = $1; ms[NR] = $2 } END { if (NR) printf "replication lag behind the furthest node, while writing: median %d messages, %.1f ms; p90 %.1f ms; max %.1f ms (%d samples)\n", m[int((NR+1)/2)], ms[int((NR+1)/2)], ms[int(NR*0.9)], ms[NR], NR }'
fi

# The read barrier (a round trip to the stream's leader and the wait to
# apply up to it) over everything the nodes answered, and how far behind
# the stream each node's last applied sequence is at the end.
for i in 0 1 2; do
    s=$(scrape "${MPORTS[$i]}" compliance_guard_cluster_read_barrier_seconds_sum)
    c=$(scrape "${MPORTS[$i]}" compliance_guard_cluster_read_barrier_seconds_count)
    a=$(scrape "${MPORTS[$i]}" compliance_guard_cluster_applied_sequence)
    echo "node n$i: read barrier mean $(jq -n "$s / $c * 1e6 | floor") µs over $c; applied sequence $a"
done
echo
jq -s -r '
  group_by(.label)[] | . as $g |
  "\($g[0].label): \(($g | map(.throughput) | add / length) | floor) req/s, p50 \(($g | map(.ops | to_entries[0].value.p50_us) | add / length) | floor) µs, p99 \(($g | map(.ops | to_entries[0].value.p99_us) | add / length) | floor) µs, CPU \(($g | map(.cpu_us_per_req_all_processes) | add / length) | floor) µs/req, errors \($g | map(.errors) | add)"' "$OUT"
echo "results: $OUT"
