#!/usr/bin/env bash
# bench-scale: every target scenario of the performance issue, announce and
# (when Debian's nginx-light + libnginx-mod-nchan are installed) nginx+nchan
# in the same run, each figure printed next to its target, then 100,000
# WebSocket observers across 6 nodes on one Redis (scripts/bench-nodes.sh,
# SCALE_NODES=0 skips it). `make bench-scale`.
#
# Sizes fit this machine class (2 cores, a 20,000 open-files cap per process,
# server and load generator on one box) and finish in about ten minutes.
# Override with the variables below; JSON lines of every run go to $OUT.
set -u
BIN=${BIN:-bin/announce}
OUT=${OUT:-/tmp/announce-bench-scale}
IDLE_N=${IDLE_N:-10000}
IDLE_N2=${IDLE_N2:-19000} # one process's file limit here; announce only
FANOUT_N=${FANOUT_N:-10000}
FANOUT_MSGS=${FANOUT_MSGS:-200}
THRU_N=${THRU_N:-1000}
THRU_MSGS=${THRU_MSGS:-2000}
POLL_N=${POLL_N:-2000}
POLL_MSGS=${POLL_MSGS:-500}
PUB_MSGS=${PUB_MSGS:-40000}
PUB_PUBLISHERS=${PUB_PUBLISHERS:-64 256} # concurrent publishers of the publish scenario, one run each
PUBLISHERS=${PUBLISHERS:-16}
ANNOUNCE_ADDR=${ANNOUNCE_ADDR:-127.0.0.1:18200}
NCHAN_ADDR=127.0.0.1:18300 # as in docs/nchan.conf
NCHAN=${NCHAN:-auto}       # auto: when nginx and the nchan module are installed; 0: never
SCALE_NODES=${SCALE_NODES:-6} # scripts/bench-nodes.sh: 100K ws observers across this many nodes on Redis (~2 min); 0: skip

mkdir -p "$OUT"
rm -f "$OUT"/*.json
server=
nginx=
cleanup() {
	[ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
	[ -n "$nginx" ] && kill "$nginx" 2>/dev/null && wait "$nginx" 2>/dev/null
}
trap cleanup EXIT INT TERM

have_nchan() {
	[ "$NCHAN" != 0 ] && command -v nginx >/dev/null && [ -e /usr/lib/nginx/modules/ngx_nchan_module.so ]
}

# start_announce [serve flags]: a fresh server, so memory figures start clean.
start_announce() {
	"$BIN" serve --memory --listen "$ANNOUNCE_ADDR" --log-level error "$@" &
	server=$!
}
stop_announce() { kill "$server"; wait "$server" 2>/dev/null; server=; }

# start_nchan: a fresh nginx (one worker) with docs/nchan.conf; sets $worker.
start_nchan() {
	local prefix=$OUT/nchan
	mkdir -p "$prefix/logs"
	nginx -p "$prefix" -c "$PWD/docs/nchan.conf" 2>"$OUT/nginx.err" &
	nginx=$!
	worker=
	for _ in $(seq 50); do
		worker=$(pgrep -P "$nginx" | head -1)
		[ -n "$worker" ] && break
		sleep 0.1
	done
}
stop_nchan() { kill "$nginx"; wait "$nginx" 2>/dev/null; nginx=; }

# run NAME TARGET bench-args...: one bench run, its JSON line in $OUT/NAME.TARGET.json.
run() {
	local name=$1 target=$2
	shift 2
	echo "== $name on $target: announce bench $*" >&2
	if [ "$target" = nchan ]; then
		start_nchan
		"$BIN" bench "$@" --server "http://$NCHAN_ADDR" --target nchan --pid "$worker" --json-only >"$OUT/$name.$target.json" 2>"$OUT/$name.$target.err"
		stop_nchan
	else
		start_announce "${SERVE_ARGS[@]}"
		"$BIN" bench "$@" --server "http://$ANNOUNCE_ADDR" --json-only >"$OUT/$name.$target.json" 2>"$OUT/$name.$target.err"
		stop_announce
	fi
	tail -1 "$OUT/$name.$target.json" | cut -c1-200 >&2
}

both() {
	local name=$1
	shift
	SERVE_ARGS=()
	run "$name" announce "$@"
	if have_nchan; then run "$name" nchan "$@"; fi
}

# 1. Idle observers per transport.
for t in ws sse poll; do both "idle-$t" idle --transport "$t" -n "$IDLE_N" --hold 5s; done
for t in ws sse poll; do SERVE_ARGS=(); run "idle19-$t" announce idle --transport "$t" -n "$IDLE_N2" --hold 5s; done
# 2. Fan-out: 200 messages at 20/s to 10K observers of each transport.
for t in ws sse poll; do
	both "fanout-$t" fanout --transport "$t" -n "$FANOUT_N" --messages "$FANOUT_MSGS" --rate 20 --publishers "$PUBLISHERS" --drain 30s
done
# 3. Throughput: 1K WebSocket observers at the highest publish rate.
both throughput fanout --transport ws -n "$THRU_N" --messages "$THRU_MSGS" --rate 100000 --publishers "$PUBLISHERS" --drain 60s
# 4. Long-poll: 2K cursor observers, 500 messages at 50/s.
both longpoll fanout --transport poll -n "$POLL_N" --messages "$POLL_MSGS" --rate 50 --publishers "$PUBLISHERS" --drain 30s
# 5. Acknowledged publishes/s on the embedded (bolt) store, a fresh node per
# run, with PUB_PUBLISHERS concurrent publishers (each a keep-alive
# connection, requests written by hand as wrk's are); nchan with the same.
for p in $PUB_PUBLISHERS; do
	datadir=$(mktemp -d)
	echo "== publish-$p on announce (bolt store in $datadir): announce bench fanout --publishers $p" >&2
	"$BIN" serve --data-dir "$datadir" --listen "$ANNOUNCE_ADDR" --log-level error &
	server=$!
	"$BIN" bench fanout --server "http://$ANNOUNCE_ADDR" --transport ws -n 1 --messages "$PUB_MSGS" --rate 1000000 --publishers "$p" --json-only >"$OUT/publish-$p.announce.json" 2>"$OUT/publish-$p.announce.err"
	stop_announce
	rm -rf "$datadir"
	tail -1 "$OUT/publish-$p.announce.json" | cut -c1-200 >&2
	if have_nchan; then run "publish-$p" nchan fanout --transport ws -n 1 --messages "$PUB_MSGS" --rate 1000000 --publishers "$p"; fi
done

# The table.
get() { # get NAME TARGET JQ-EXPR
	local f=$OUT/$1.$2.json
	if [ -s "$f" ]; then tail -1 "$f" | jq -r "$3" 2>/dev/null || echo "error"; else echo "-"; fi
}
kib='(.server_bytes_per_observer/1024*10|round/10|tostring) + " KiB"'
p99='(.latency_ms.p99*10|round/10|tostring) + " ms"'
row() { printf '%-34s %-30s %-34s %-34s\n' "$1" "$2" "$3" "$4"; }
echo
row "scenario" "target" "announce" "nginx+nchan"
row "--------" "------" "--------" "-----------"
row "idle ws: RSS/observer" "<= 5 KiB (nchan/2)" "$(get idle-ws announce "$kib")" "$(get idle-ws nchan "$kib")"
row "idle sse: RSS/observer" "<= 5 KiB" "$(get idle-sse announce "$kib")" "$(get idle-sse nchan "$kib")"
row "idle poll: RSS/observer" "<= 8 KiB" "$(get idle-poll announce "$kib")" "$(get idle-poll nchan "$kib")"
for t in ws sse poll; do
	f='(.latency_ms.p99*10|round/10|tostring) + " ms, " + (.publishes_per_second*10|round/10|tostring) + "/s, missed " + (.missed|tostring)'
	row "fanout $t 200@20/s to $FANOUT_N: p99" "<= 100 ms, 20/s, 0 missed" "$(get fanout-$t announce "$f")" "$(get fanout-$t nchan "$f")"
done
f='(.deliveries_per_second|round|tostring) + "/s, p99 " + (.latency_ms.p99|round|tostring) + " ms, missed " + (.missed|tostring)'
row "throughput $THRU_N ws: deliveries/s" ">= 1.3x nchan, 0 missed" "$(get throughput announce "$f")" "$(get throughput nchan "$f")"
f='(.server_cpu_ms_per_1000_deliveries*100|round/100|tostring) + " ms"'
row "  server CPU per 1000 deliveries" "<= 4 ms" "$(get throughput announce "$f")" "$(get throughput nchan "$f")"
f='"missed " + (.missed|tostring) + ", p99 " + (.latency_ms.p99*10|round/10|tostring) + " ms"'
row "long-poll $POLL_N cursor, 500@50/s" "0 missed, p99 <= 100 ms" "$(get longpoll announce "$f")" "$(get longpoll nchan "$f")"
f='(.publishes_per_second|round|tostring) + "/s, errors " + (.publish_errors|tostring) + ", missed " + (.missed|tostring)'
for p in $PUB_PUBLISHERS; do
	row "publishes/s bolt, $p publishers" ">= 20000/s" "$(get publish-$p announce "$f")" "$(get publish-$p nchan "$f")"
done
for t in ws sse poll; do
	row "idle $t at $IDLE_N2: RSS/observer" "<= $([ $t = poll ] && echo 8 || echo 5) KiB" "$(get idle19-$t announce "$kib")" ""
done
echo
echo "JSON lines of every run: $OUT/*.json"

# 6. Many nodes: 100,000 WebSocket observers across SCALE_NODES nodes on one Redis.
if [ "$SCALE_NODES" != 0 ]; then
	echo
	NODES=$SCALE_NODES BIN=$BIN OUT=$OUT bash scripts/bench-nodes.sh
fi
