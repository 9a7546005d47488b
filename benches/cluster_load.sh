#!/usr/bin/env bash
# Loading history, one node against a 3-server NATS JetStream cluster (R3,
# sync_interval: always), in one run on this machine: `import` of the same
# JSON lines into a single node's data directory and into a running
# cluster (`import --cluster`), then the single node's backup restored
# into a cluster with no history (`restore --cluster`). Prints the wall
# time and records per second of each. Not part of CI.
#
#   benches/cluster_load.sh            # about a minute at LINES=50000
#   LINES=200000 PEOPLE=20000 benches/cluster_load.sh
#
# Knobs (environment): LINES (50000), PEOPLE (5000), NATS_SERVER (default
# target/nats/bin/nats-server, as .ci/run installs).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-50000}
PEOPLE=${PEOPLE:-5000}
NATS=${NATS_SERVER:-target/nats/bin/nats-server}

cargo build --release --quiet --bin compliance-guard
BIN=$PWD/target/release/compliance-guard

WORK=$(mktemp -d /tmp/cg-load.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "machine: $(nproc) vCPU; $(uptime | sed 's/.*load/load/')"
echo "code: $(git rev-parse --short HEAD)$(git status --porcelain src Cargo.toml | grep -q . && echo ' plus uncommitted changes in src/'); nats: $($NATS --version)"

# The history: LINES interactions over PEOPLE borrowers, each with an
# externalId, spread over the last 60 days.
python3 - "$LINES" "$PEOPLE" >"$WORK/history.jsonl" <<'PY'
import datetime, random, sys
lines, people = int(sys.argv[1]), int(sys.argv[2])
random.seed(1)
end = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
kinds = [
    ('"channel":"voice","direction":"outbound","status":"attempted","statusDetails":"voiceRangNoPickup","contactKind":"placedCall"', 'voice'),
    ('"channel":"email","direction":"outbound","status":"succeeded","statusDetails":"emailDelivered","subject":"paymentDueDateReminder"', 'email'),
    ('"channel":"text","direction":"outbound","status":"succeeded"', 'text'),
]
for i in range(lines):
    at = end - datetime.timedelta(seconds=random.randrange(60 * 86400))
    body, _ = random.choice(kinds)
    person = f"BO-LOAD-{random.randrange(people):06d}"
    print(f'{{"externalId":"load-{i}","personId":"{person}",{body},"loanId":"LN-{random.randrange(3)}","startedAt":"{at.isoformat().replace("+00:00", "Z")}"}}')
PY

timed() { # LABEL COMMAND...: runs it, prints the wall time and records/s
    local label=$1
    shift
    local t0 t1
    t0=$(date +%s.%N)
    "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" || { cat "$WORK/$label.err"; exit 1; }
    t1=$(date +%s.%N)
    awk -v l="$label" -v n="$LINES" -v a="$t0" -v b="$t1" \
        'BEGIN { printf "%-30s %8.2f s  %8.0f interactions/s\n", l, b - a, n / (b - a) }'
    tail -n 1 "$WORK/$label.out" | sed 's/^/    /'
}

timed "import, single node" "$BIN" import --data-dir "$WORK/single" "$WORK/history.jsonl"
timed "backup, single node" "$BIN" backup --data-dir "$WORK/single" --to "$WORK/single.cgb"

# shellcheck source=benches/nats_cluster.sh
source benches/nats_cluster.sh
start_nats_cluster

timed "import, cluster" "$BIN" import --cluster "$CLUSTER" --node-id importer \
    --cluster-stream imported --data-dir "$WORK/importer" "$WORK/history.jsonl"
timed "restore, into a cluster" "$BIN" restore --from "$WORK/single.cgb" \
    --cluster "$CLUSTER" --node-id restorer --cluster-stream restored --data-dir "$WORK/restorer"
