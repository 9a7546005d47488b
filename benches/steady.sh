#!/bin/bash
# A steady stream of creates while the server clock runs a day every SECS_PER_DAY seconds (libfaketime, the
# FAKETIME_TIMESTAMP_FILE way: its speed-up also shortens sleeps); samples VmRSS and the metrics every 15 s.
# See docs/performance.md, "What-if in bounded memory, and a steady stream of writes".
# usage: steady.sh BINDIR PORT SECONDS RATE OUT SECS_PER_DAY
B=$1; P=$2; T=$3; R=$4; OUT=$5; SPD=${6:-10}
D=/tmp/steady-data; rm -rf $D; mkdir -p $D
echo "+0d" > /tmp/ft-offset
export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_TIMESTAMP_FILE=/tmp/ft-offset FAKETIME_CACHE_DURATION=1
RUST_LOG=info taskset -c 0 env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 $B/compliance-guard serve --listen 127.0.0.1:$P \
  --data-dir $D --rules ${RULES:-rules} --no-reload --metrics-listen 127.0.0.1:$((P+1)) > /tmp/steady-server.log 2>&1 &
sleep 1
S=$(pgrep -n -f "compliance-guard serve --listen 127.0.0.1:$P")
echo "server pid $S" > $OUT
taskset -c 1 env LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 $B/loadgen --addr 127.0.0.1:$P --data-dir $D --threads 1 --connections 2 \
  --borrowers 50000 --mix create --rate $R --warmup 0s --duration ${T}s > /tmp/steady-loadgen.log 2>&1 &
L=$!
start=$(date +%s)
echo "secs day vmrss_kb rssanon_kb interactions whole let_go_total borrowers store_mb" >> $OUT
day=0; last=$start
while kill -0 $L 2>/dev/null; do
  sleep 5
  now=$(date +%s)
  day=$(( (now - start) / SPD ))
  echo "+${day}d" > /tmp/ft-offset.tmp && mv /tmp/ft-offset.tmp /tmp/ft-offset
  if [ $((now - last)) -ge 15 ]; then
    last=$now
    m=$(curl -s http://127.0.0.1:$((P+1))/metrics)
    g() { echo "$m" | awk -v k="$1" '$1==k {print $2}'; }
    echo "$(( now - start )) $day $(awk '/VmRSS/{print $2}' /proc/$S/status) $(awk '/RssAnon/{print $2}' /proc/$S/status) $(g compliance_guard_interactions) $(g compliance_guard_interactions_whole_in_memory) $(g compliance_guard_records_let_go_total) $(g compliance_guard_borrowers) $(du -sm $D/store | cut -f1)" >> $OUT
  fi
done
kill $S; sleep 3; kill -9 $S 2>/dev/null
echo done >> $OUT
