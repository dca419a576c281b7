#!/usr/bin/env bash
# bench-nodes: NODES_N WebSocket observers (100,000) across NODES announce
# nodes (6) sharing one Redis, all on this machine over loopback, held by
# PROCS load-generator processes (6: one process holds at most ~19,000
# connections under a 20,000 open-files cap). `make bench-nodes`; also run
# by scripts/bench-scale.sh when SCALE_NODES is set.
#
#  1. idle: every process holds its share (observers round-robin over the
#     nodes) until the nodes count NODES_N observers in all
#     (--await-observers); this script reads the nodes' /metrics before and
#     while they are held: RSS per idle observer = (sum of the nodes' RSS
#     after - before) / observers, and goroutines per observer likewise.
#  2. fan-out: PROCS-1 processes --observe-only, one publishes NODES_MSGS
#     messages at NODES_RATE/s to the first node once the nodes count all
#     NODES_N observers; every process counts its own observers' deliveries
#     by id and prints a JSON line. p99 = the largest of the processes' p99s,
#     missed = their sum (the observe-only processes expect every id after the
#     channel's id they read before connecting, up to NODES_MSGS of them).
#
# Everything it starts (redis-server, the nodes, the load generators) is
# stopped on exit; each load generator is also bounded by `timeout`.
set -u
BIN=${BIN:-bin/announce}
OUT=${OUT:-/tmp/announce-bench-nodes}
NODES=${NODES:-6}
NODES_N=${NODES_N:-100000}
PROCS=${PROCS:-6}
NODES_MSGS=${NODES_MSGS:-6}   # one message every 5 s: each fan-out on its own,
NODES_RATE=${NODES_RATE:-0.2} # not behind the previous one's backlog
NODES_HOLD=${NODES_HOLD:-15}  # seconds the idle observers are held once all connected
NODES_WAIT=${NODES_WAIT:-300} # seconds to wait for every observer / the first message
NODES_SOURCES=${NODES_SOURCES:-32}
NODES_IDLE=${NODES_IDLE:-1}     # 0: skip the idle scenario
NODES_FANOUT=${NODES_FANOUT:-1} # 0: skip the fan-out scenario
LIMIT=$((NODES_WAIT + 300))     # seconds any one load generator may run

mkdir -p "$OUT"
rm -f "$OUT"/nodes-*.json "$OUT"/nodes-*.err
tmp=$(mktemp -d)
pids=() # every process this script started, stopped in reverse on exit
cleanup() {
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Redis: loopback, no persistence (as internal/testenv/redis.go starts it).
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
	--dir "$tmp" --maxclients 10000 --loglevel warning >"$OUT/nodes-redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	(exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
	sleep 0.1
done

# The nodes.
servers=
nodes=()
for i in $(seq "$NODES"); do
	port=$(free_port)
	"$BIN" serve --redis "redis://127.0.0.1:$redis_port" --listen "127.0.0.1:$port" --log-level error \
		2>"$OUT/nodes-serve-$i.log" &
	pids+=($!)
	nodes+=("http://127.0.0.1:$port")
	servers=${servers:+$servers,}http://127.0.0.1:$port
done
for n in "${nodes[@]}"; do
	for _ in $(seq 100); do
		curl -fs -o /dev/null "$n/readyz" && break
		sleep 0.1
	done
done

# metric NAME: the nodes' sum of one /metrics series.
metric() {
	local n sum=0 v
	for n in "${nodes[@]}"; do
		v=$(curl -fs "$n/metrics" | awk -v k="$1" '$1 == k { print $2 }')
		sum=$(awk -v a="$sum" -v b="${v:-0}" 'BEGIN { printf "%.0f", a + b }')
	done
	echo "$sum"
}
ws='announce_observers{transport="ws"}'

# share I: process I's observers (NODES_N split over PROCS, the rest to the first).
share() {
	local per=$((NODES_N / PROCS))
	if [ "$1" = 1 ]; then echo $((NODES_N - per * (PROCS - 1))); else echo "$per"; fi
}

# loadgen NAME bench-args...: one load-generator process in the background.
loadgen() {
	local name=$1
	shift
	timeout "$LIMIT" "$BIN" bench "$@" --server "$servers" --transport ws --sources "$NODES_SOURCES" \
		--wait "${NODES_WAIT}s" --json-only >"$OUT/nodes-$name.json" 2>"$OUT/nodes-$name.err" &
	pids+=($!)
	gens+=($!)
}

echo "== $NODES nodes on redis 127.0.0.1:$redis_port: $servers" >&2

if [ "$NODES_IDLE" != 0 ]; then
	echo "== idle: $NODES_N ws observers by $PROCS processes" >&2
	rss0=$(metric process_resident_memory_bytes)
	gor0=$(metric go_goroutines)
	gens=()
	for i in $(seq "$PROCS"); do
		loadgen "idle-$i" idle -n "$(share "$i")" --await-observers "$NODES_N" --hold "${NODES_HOLD}s"
	done
	# Wait until the nodes count every observer (or the processes gave up),
	# then measure while they are held.
	start=$SECONDS
	while :; do
		obs=$(metric "$ws")
		[ "$obs" -ge "$NODES_N" ] && break
		[ $((SECONDS - start)) -ge "$NODES_WAIT" ] && break
		alive=0
		for p in "${gens[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
		[ "$alive" = 0 ] && break
		sleep 1
	done
	echo "   nodes count $obs observers after $((SECONDS - start))s" >&2
	sleep $((NODES_HOLD / 3))
	obs=$(metric "$ws")
	rss1=$(metric process_resident_memory_bytes)
	gor1=$(metric go_goroutines)
	for p in "${gens[@]}"; do wait "$p"; done
	jq -n --argjson obs "$obs" --argjson rss0 "$rss0" --argjson rss1 "$rss1" --argjson gor0 "$gor0" --argjson gor1 "$gor1" \
		--argjson nodes "$NODES" --argjson procs "$PROCS" \
		--slurpfile gens <(cat "$OUT"/nodes-idle-*.json) \
		'{scenario: "idle-nodes", nodes: $nodes, processes: $procs, observers: $obs,
		  connected: ([$gens[].connected] | add), connect_errors: ([$gens[].connect_errors] | add),
		  reconnects: ([$gens[].reconnects] | add),
		  nodes_rss_before_bytes: $rss0, nodes_rss_after_bytes: $rss1,
		  rss_bytes_per_observer: (if $obs > 0 then ($rss1 - $rss0) / $obs else null end),
		  goroutines_per_observer: (if $obs > 0 then ($gor1 - $gor0) / $obs else null end)}' \
		>"$OUT/nodes-idle.json"
fi

if [ "$NODES_FANOUT" != 0 ]; then
	channel=bench-nodes-$(date +%s)
	echo "== fan-out: $NODES_MSGS messages @$NODES_RATE/s on $channel to $NODES_N ws observers by $PROCS processes" >&2
	gens=()
	for i in $(seq 2 "$PROCS"); do
		loadgen "fanout-$i" fanout --observe-only --channel "$channel" -n "$(share "$i")" \
			--messages "$NODES_MSGS" --rate "$NODES_RATE" --drain 30s
	done
	loadgen fanout-1 fanout --channel "$channel" -n "$(share 1)" --await-observers "$NODES_N" \
		--messages "$NODES_MSGS" --rate "$NODES_RATE" --publishers 16 --drain 30s
	for p in "${gens[@]}"; do wait "$p"; done
	jq -n --argjson nodes "$NODES" --argjson procs "$PROCS" \
		--slurpfile gens <(cat "$OUT"/nodes-fanout-*.json) \
		--slurpfile pub <(cat "$OUT/nodes-fanout-1.json") \
		'{scenario: "fanout-nodes", nodes: $nodes, processes: $procs,
		  observers: ([$gens[].observers] | add), connected: ([$gens[].connected] | add),
		  messages: $pub[0].messages, rate: $pub[0].rate, published: $pub[0].published,
		  publish_errors: $pub[0].publish_errors, publishes_per_second: $pub[0].publishes_per_second,
		  expected_deliveries: (([$gens[].connected] | add) * $pub[0].messages), deliveries: ([$gens[].deliveries] | add),
		  missed: ([$gens[].missed] | add), duplicated: ([$gens[].duplicated] | add),
		  reordered: ([$gens[].reordered] | add), reconnects: ([$gens[].reconnects] | add),
		  p50_ms_max: ([$gens[].latency_ms.p50] | max), p99_ms: ([$gens[].latency_ms.p99] | max),
		  max_ms: ([$gens[].latency_ms.max] | max)}' \
		>"$OUT/nodes-fanout.json"
fi

# The figures.
get() { # get FILE JQ-EXPR
	if [ -s "$OUT/$1" ]; then jq -r "$2" "$OUT/$1" 2>/dev/null || echo error; else echo -; fi
}
echo
if [ "$NODES_IDLE" != 0 ]; then
	echo "idle, $NODES_N ws observers across $NODES nodes ($PROCS load-generator processes):"
	echo "  observers counted by the nodes: $(get nodes-idle.json '.observers') (connect errors $(get nodes-idle.json '.connect_errors'))"
	echo "  RSS per idle observer: $(get nodes-idle.json '(.rss_bytes_per_observer/1024*10|round/10|tostring) + " KiB"') (nodes' RSS $(get nodes-idle.json '(.nodes_rss_before_bytes/1048576|round|tostring) + " MiB before, " + (.nodes_rss_after_bytes/1048576|round|tostring) + " MiB after"'))"
	echo "  goroutines per observer: $(get nodes-idle.json '.goroutines_per_observer*100|round/100')"
fi
if [ "$NODES_FANOUT" != 0 ]; then
	echo "fan-out, $NODES_MSGS messages @$NODES_RATE/s to $NODES_N ws observers across $NODES nodes (target: p99 <= 500 ms, 0 missed):"
	echo "  connected: $(get nodes-fanout.json '.connected') of $(get nodes-fanout.json '.observers')"
	echo "  messages accepted: $(get nodes-fanout.json '.published') at $(get nodes-fanout.json '.publishes_per_second*100|round/100')/s (publish errors $(get nodes-fanout.json '.publish_errors'))"
	echo "  deliveries: $(get nodes-fanout.json '.deliveries') of $(get nodes-fanout.json '.expected_deliveries') (observers x messages; a publish that timed out may still be delivered)"
	echo "  p99: $(get nodes-fanout.json '.p99_ms|round') ms (max of the processes' p99s; worst max $(get nodes-fanout.json '.max_ms|round') ms)"
	echo "  missed: $(get nodes-fanout.json '.missed'), duplicated $(get nodes-fanout.json '.duplicated'), reordered $(get nodes-fanout.json '.reordered')"
fi
echo "JSON lines: $OUT/nodes-*.json"
