#!/usr/bin/env bash
# The peer a lender would otherwise build: PostgreSQL holding the same
# synthetic history as benches/load.sh (loadgen --emit-csv, same seed and
# history end), indexed for the check, and loadgen --target postgres
# running the same closed and open loops, one SQL round trip per check
# (7 calls in 7 local days, a conversation in those days, the local hour;
# the days and hour computed in SQL with AT TIME ZONE). Its own cluster
# (initdb, pg_ctl) in a temp dir on 127.0.0.1 and a free port; installs
# PostgreSQL if missing. Not part of CI. benches/load.sh calls it.
#
#   benches/pg-peer.sh                    # standalone
#
# Knobs (environment) as benches/load.sh: DUR, WARM, BORROWERS, NS, SEED,
# REPS (1), PIN, OUT, HIST_END, RATE (open loop; default half the SQL saturation).
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10s}
WARM=${WARM:-2s}
BORROWERS=${BORROWERS:-50000}
NS=${NS:-"8 32 128"}
SEED=${SEED:-1}
PIN=${PIN:-1}
HIST_END=${HIST_END:-$(date -u +%Y-%m-%dT%H:00:00Z)}

SUDO=()
[[ $(id -u) == 0 ]] || SUDO=(sudo)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    "${SUDO[@]}" apt-get update
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

cargo build --release --quiet --example loadgen
LG=$PWD/target/release/examples/loadgen

WORK=$(mktemp -d /tmp/cg-pg.XXXXXX)
chmod 755 "$WORK"
OUT=${OUT:-$WORK/results.jsonl}
touch "$OUT"
# initdb refuses root: run the cluster as the postgres user then.
AS=()
if [[ $(id -u) == 0 ]]; then
    AS=(runuser -u postgres --)
    chown postgres "$WORK"
fi
PGDATA=$WORK/pgdata
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cleanup() {
    "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$WORK/pgdata" "$WORK"/history.*
}
trap cleanup EXIT

if [[ $PIN == 1 ]]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    THREADS=1
else
    SERVER_CPU=()
    CLIENT_CPU=()
    THREADS=2
fi

"${AS[@]}" "$PGBIN/initdb" -D "$PGDATA" --auth=trust -U postgres >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$WORK'
max_connections = 200
shared_buffers = 512MB
effective_cache_size = 4GB
EOF
# Pinned: the postmaster and every backend it forks run on cpu 0.
"${SERVER_CPU[@]}" "${AS[@]}" "$PGBIN/pg_ctl" -D "$PGDATA" -l "$WORK/pg.log" -w start >/dev/null
PM=$(head -1 "$PGDATA/postmaster.pid")
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT (postmaster $PM, pin=$PIN)"

"$LG" --emit-csv "$WORK/history.csv" --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END"
chmod 644 "$WORK"/history.*
t0=$(date +%s.%N)
psql -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1 -f "$WORK/history.sql" >/dev/null
echo "loaded and indexed in $(echo "$(date +%s.%N) - $t0" | bc) s: $(psql -Atq -h 127.0.0.1 -p "$PORT" -U postgres -c "SELECT count(*) || ' rows, table ' || pg_size_pretty(pg_relation_size('interactions')) || ', indexes ' || pg_size_pretty(pg_indexes_size('interactions')) FROM interactions")"
echo "the check's plan for one borrower:"
psql -Atq -h 127.0.0.1 -p "$PORT" -U postgres -f "$WORK/history.explain.sql" | sed 's/^/    /'
URL="host=127.0.0.1 port=$PORT user=postgres dbname=postgres"

# CPU of the postmaster and its reaped backends, in clock ticks.
pg_ticks() { awk '{print $14 + $15 + $16 + $17}' "/proc/$PM/stat"; }
TCK=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# pg LABEL ARGS...
pg() {
    local label=$1
    shift
    local before after mbefore mafter t0 t1
    before=$(pg_ticks)
    mbefore=$(busy_ticks)
    t0=$(date +%s.%N)
    "${CLIENT_CPU[@]}" "$LG" --target postgres --pg-url "$URL" \
        --borrowers "$BORROWERS" --seed "$SEED" --history-end "$HIST_END" \
        --threads "$THREADS" --duration "$DUR" --warmup "$WARM" \
        --json --label "$label" "$@" >"$WORK/run.txt"
    sleep 0.5 # the backends exit and are reaped
    after=$(pg_ticks)
    mafter=$(busy_ticks)
    t1=$(date +%s.%N)
    grep -v '^JSON ' "$WORK/run.txt"
    grep '^JSON ' "$WORK/run.txt" | sed 's/^JSON //' |
        jq -c --argjson t "$((after - before))" --argjson hz "$TCK" --argjson m "$((mafter - mbefore))" \
            --argjson wall "$(echo "$t1 - $t0" | bc)" \
            '. + {rest_cores: (($m - $t) / $hz / $wall), server_cpu_us_per_req: (if .requests > 0 then ($t / $hz * 1e6 / (.requests + .warmup_requests)) else null end)}' >>"$OUT"
    echo
}

# One connection per client as pgbench does, at most 32 (then pipelined).
for _ in $(seq "${REPS:-1}"); do
    for n in $NS; do
        pg "sql N=$n" --mix check --concurrency "$n" --connections "$((n < 32 ? n : 32))"
    done
done
if [[ -z ${RATE:-} ]]; then
    SAT=$(jq -s '[group_by(.label)[] | select(.[0].label | startswith("sql N=")) | (map(.throughput) | add / length)] | max' "$OUT")
    RATE=$(jq -n --argjson s "$SAT" '($s / 2) | floor')
fi
pg "open sql R=$RATE" --mix check --rate "$RATE" --connections 32
pg "sql insert N=32" --mix create --concurrency 32 --connections 32
echo "results: $OUT"
