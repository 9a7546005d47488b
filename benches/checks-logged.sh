#!/bin/bash
# 60,000 Checks logged on the history benches/steady.sh wrote, at its fake day DAY, for a what-if replay.
# usage: checks.sh BINDIR PORT DAY — Checks logged on the steady history at fake day DAY
B=$1; P=$2; DAY=$3; D=/tmp/steady-data
echo "+${DAY}d" > /tmp/ft-offset
export FAKETIME_DONT_FAKE_MONOTONIC=1 FAKETIME_TIMESTAMP_FILE=/tmp/ft-offset FAKETIME_CACHE_DURATION=1
LP=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
RUST_LOG=info env LD_PRELOAD=$LP $B/compliance-guard serve --listen 127.0.0.1:$P --data-dir $D --rules ${RULES:-rules} --no-reload > /tmp/checks-server.log 2>&1 &
for i in $(seq 1 60); do grep -q SERVING /tmp/checks-server.log && break; sleep 1; done
S=$(pgrep -n -f "compliance-guard serve --listen 127.0.0.1:$P")
env LD_PRELOAD=$LP $B/loadgen --addr 127.0.0.1:$P --data-dir $D --threads 1 --connections 2 --no-seed \
  --borrowers 50000 --mix check --rate 2000 --warmup 0s --duration 30s 2>&1 | tail -3
kill -INT $S; sleep 8; kill -9 $S 2>/dev/null
ls -la $D/decisions | tail -3
