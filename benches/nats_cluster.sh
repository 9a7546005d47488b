# Sourced by the cluster benchmarks: starts a 3-server NATS JetStream
# cluster on loopback (file storage under $WORK, `sync_interval: always`,
# as README's Cluster section configures it) and waits until it has a
# meta leader. Needs $WORK, $NATS, the array PIDS (each server's pid is
# added, for the caller's cleanup) and free_port. Sets CLUSTER (the client
# URLs, comma-separated), NATS_PIDS and MON (each server's monitoring
# port).
start_nats_cluster() {
    local R=("$(free_port)" "$(free_port)" "$(free_port)")
    local urls=() i j C M routes
    NATS_PIDS=()
    MON=()
    for i in 0 1 2; do
        C=$(free_port)
        M=$(free_port)
        mkdir -p "$WORK/nats$i"
        routes=""
        for j in 0 1 2; do [[ $j != "$i" ]] && routes="$routes nats://127.0.0.1:${R[$j]}"; done
        cat >"$WORK/nats$i.conf" <<EOF
server_name: s$i
listen: 127.0.0.1:$C
http: 127.0.0.1:$M
jetstream { store_dir: "$WORK/nats$i", sync_interval: always }
cluster { name: cg, listen: 127.0.0.1:${R[$i]}, routes: [$(echo $routes | sed 's/ /, /g')] }
EOF
        "$NATS" -c "$WORK/nats$i.conf" >"$WORK/nats$i.log" 2>&1 &
        NATS_PIDS+=("$!")
        PIDS+=("$!")
        urls+=("nats://127.0.0.1:$C")
        MON[$i]=$M
    done
    CLUSTER=$(IFS=,; echo "${urls[*]}")
    local ok
    for _ in $(seq 100); do
        ok=0
        for i in 0 1 2; do
            curl -s "http://127.0.0.1:${MON[$i]}/jsz" | jq -e '.meta_cluster.leader != null and .meta_cluster.cluster_size == 3' >/dev/null 2>&1 && ok=$((ok + 1))
        done
        [[ $ok == 3 ]] && return
        sleep 0.1
    done
    echo "the NATS cluster has no meta leader after 10 s; see $WORK/nats*.log" >&2
    exit 1
}
