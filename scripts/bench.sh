#!/usr/bin/env bash
# Benchmarks against the running binary (HTTP) plus the in-process criterion benches.
# Usage: [BIN=… LOADGEN=…] bash scripts/bench.sh [intake|rate|orders|orders-steady|keys|tls|startup|scheduler|alert|supervise|venue|dashboard|deploy|anchor|criterion|all]
# Needs wrk (apt-get install wrk). Talks only to 127.0.0.1. Figures go to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
[[ ${1:-all} == alert || ${1:-all} == startup || ${1:-all} == supervise || ${1:-all} == venue || ${1:-all} == deploy ]] || command -v wrk >/dev/null || { echo "wrk is not installed: apt-get install -y wrk" >&2; exit 1; }

# BIN and LOADGEN may name other builds (an A/B run against an older commit's binaries).
if [[ -z ${BIN:-} ]]; then
  cargo build --release -p sovereign --bin sovereign --example loadgen
fi
BIN=${BIN:-target/release/sovereign}
LOADGEN=${LOADGEN:-target/release/examples/loadgen}
PORT=${PORT:-18999}
URL=http://127.0.0.1:$PORT
DATA=$(mktemp -d)
PID=

start() {
  rm -rf "$DATA"; mkdir -p "$DATA"
  launch "$@"
}
launch() {
  LOG_LEVEL=WARN "$BIN" up --port "$PORT" --data-dir "$DATA" "$@" >"$DATA.out" 2>"$DATA.err" &
  PID=$!
  for _ in $(seq 1 200); do curl -skf "$URL/health" >/dev/null && return; sleep 0.05; done
  echo "engine did not start" >&2; cat "$DATA.err" >&2; exit 1
}
# keys mode: every request carries a trader key (made offline before the start); the webhook
# source authenticates with its own secret header, as a sender on the internet would.
start_keys() {
  rm -rf "$DATA"; mkdir -p "$DATA"
  KEY=$("$BIN" keys create bench --role trader --data-dir "$DATA")
  printf '[access]\nmode = "keys"\n[webhooks.sources.bench]\nsecret = "bench-secret-0123"\n%s' "${EXTRA_CONFIG:-}" > "$DATA.toml"
  launch --config "$DATA.toml"
  sed "s|^wrk.body|wrk.headers[\"Authorization\"] = \"Bearer $KEY\"\nwrk.body|" "$DATA.order.lua" > "$DATA.order-key.lua"
  sed 's|^wrk.body|wrk.headers["X-Webhook-Secret"] = "bench-secret-0123"\nwrk.body|' "$DATA.lua" > "$DATA.hook-key.lua"
}
stop() { [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true; PID=; }
trap 'stop; rm -rf "$DATA" "$DATA".*' EXIT

cat > "$DATA.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":"bench","event":"tick","data":{"symbol":"ES","price":"5000.25"}}'
LUA
cat > "$DATA.trigger.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"source":"bench","event":"tick","data":{"trigger":"sig","symbol":"ES"}}'
LUA

if [[ $what == intake || $what == all ]]; then
  echo "== durable /webhook intake, peak (wrk, 1 thread, 64 connections, 15 s)"
  start
  wrk -t1 -c64 -d15s --latency -s "$DATA.lua" "$URL/webhook" | sed -n '1,20p'
  curl -s "$URL/status" | python3 -c 'import json,sys; s=json.load(sys.stdin)["store"]; print("store: %d writes in %d commits (%.1f writes per fsync)" % (s["writes"], s["commits"], s["writes"]/max(1,s["commits"])))'
  stop
  echo "== /webhook that also runs a log_signal task (intake + run result, 2 durable writes each)"
  start
  curl -sf -XPOST "$URL/register" -H 'Content-Type: application/json' -d '{"task_id":"sig","name":"sig","handler":"log_signal","overlap":"allow"}' >/dev/null
  wrk -t1 -c64 -d15s --latency -s "$DATA.trigger.lua" "$URL/webhook" | sed -n '1,20p'
  stop
fi

cat > "$DATA.order.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"symbol":"ES","side":"buy","qty":"1","type":"market"}'
LUA

if [[ $what == orders || $what == all ]]; then
  echo "== POST /api/orders, durable ack, peak (wrk, 1 thread, 128 connections, 15 s)"
  start
  wrk -t1 -c128 -d15s --latency -s "$DATA.order.lua" "$URL/api/orders" | sed -n "1,20p"
  stop
fi

if [[ $what == keys || $what == all ]]; then
  echo "== keys mode: POST /api/orders with a trader key, durable ack (wrk, 1 thread, 128 connections, 15 s)"
  start_keys
  wrk -t1 -c128 -d15s --latency -s "$DATA.order-key.lua" "$URL/api/orders" | sed -n "1,20p"
  stop
  echo "== keys mode: durable /webhook intake with the source's secret (wrk, 1 thread, 64 connections, 15 s)"
  start_keys
  wrk -t1 -c64 -d15s --latency -s "$DATA.hook-key.lua" "$URL/webhook" | sed -n '1,20p'
  stop
fi

if [[ $what == tls || $what == all ]]; then
  command -v openssl >/dev/null || { echo "openssl is not installed" >&2; exit 1; }
  certs=$(mktemp -d)
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=bench \
    -addext subjectAltName=IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE \
    -keyout "$certs/key.pem" -out "$certs/cert.pem" 2>/dev/null
  EXTRA_CONFIG=$(printf '[server.tls]\ncert = "%s"\nkey = "%s"\n' "$certs/cert.pem" "$certs/key.pem")
  URL=https://127.0.0.1:$PORT
  echo "== TLS, keys mode: POST /api/orders with a trader key (wrk, 1 thread, 128 connections, 15 s)"
  EXTRA_CONFIG=$EXTRA_CONFIG start_keys
  wrk -t1 -c128 -d15s --latency -s "$DATA.order-key.lua" "$URL/api/orders" | sed -n "1,20p"
  stop
  echo "== TLS, keys mode: durable /webhook intake (wrk, 1 thread, 64 connections, 15 s)"
  EXTRA_CONFIG=$EXTRA_CONFIG start_keys
  wrk -t1 -c64 -d15s --latency -s "$DATA.hook-key.lua" "$URL/webhook" | sed -n '1,20p'
  echo "== TLS handshakes: GET /health with Connection: close, a new TLS 1.3 session each (wrk, 1 thread, 16 connections, 10 s)"
  wrk -t1 -c16 -d10s -H "Connection: close" "$URL/health" | sed -n '1,12p'
  stop
  URL=http://127.0.0.1:$PORT
  echo "== the same without TLS: GET /health with Connection: close"
  start
  wrk -t1 -c16 -d10s -H "Connection: close" "$URL/health" | sed -n '1,12p'
  stop
  rm -rf "$certs"
fi

if [[ $what == orders-steady || $what == all ]]; then
  secs=${ORDER_SECS:-300}
  echo "== POST /api/orders at a steady 1,000 orders/s for $secs s (open loop)"
  start
  "$LOADGEN" rate "$URL/api/orders" --rate 1000 --secs "$secs" --body '{"symbol":"ES","side":"buy","qty":"1","type":"market"}'
  stop
fi

if [[ $what == rate || $what == all ]]; then
  secs=${RATE_SECS:-60}
  echo "== /webhook at a steady 1,000 requests/s for $secs s (open loop)"
  start
  "$LOADGEN" rate "$URL/webhook" --rate 1000 --secs "$secs"
  stop
fi

if [[ $what == startup || $what == all ]]; then
  echo "== start-up: spawn -> first /health 200 (10 runs), idle RSS"
  "$LOADGEN" startup "$BIN"
fi

if [[ $what == scheduler || $what == all ]]; then
  echo "== scheduler: 10,000 tasks due every second"
  start
  "$LOADGEN" scheduler "$URL" --tasks 10000 --secs "${SCHED_SECS:-30}" --pid "$PID"
  stop
fi

if [[ $what == alert || $what == all ]]; then
  echo "== P0 alert raised -> delivered to a local webhook receiver (500 alerts, one at a time)"
  "$LOADGEN" alert "$BIN" --count "${ALERT_COUNT:-500}"
fi

if [[ $what == supervise || $what == all ]]; then
  echo "== supervisor: crash -> restart, 50 services in dependency order, 20 idle services with health checks"
  "$LOADGEN" supervise "$BIN" --secs "${IDLE_SECS:-60}"
fi

if [[ $what == venue || $what == all ]]; then
  echo "== NinjaTrader gateway: signal -> order file in incoming; state file in outgoing -> fill on /sse/fills"
  "$LOADGEN" venue "$BIN" --count "${VENUE_COUNT:-300}"
fi

if [[ $what == dashboard || $what == all ]]; then
  echo "== dashboard: engine CPU with 50 dashboards at 10 ticks/s, first paint (cold headless Chromium)"
  "$LOADGEN" dashboard "$BIN" --count 50 --secs 15
  # Side by side, alternating, three rounds: orders/s at peak, and the engine's own CPU per
  # 1,000 orders (utime+stime from /proc), so the readers' share of this machine's two cores
  # (on a desk they run in browsers elsewhere) is told apart from what the engine spends.
  rounds=${DASH_ROUNDS:-3} secs=${DASH_SECS:-15}
  echo "== dashboard: POST /api/orders without and with 50 dashboards open (wrk, 1 thread, 128 connections, $secs s; $rounds rounds)"
  printf '[trading]\nfeed_interval = "100ms"\n' > "$DATA.dash.toml"
  ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
  for round in $(seq 1 "$rounds"); do
    for with in 0 50; do
      start --config "$DATA.dash.toml"
      hold=
      if [[ $with -gt 0 ]]; then "$LOADGEN" hold "$URL" --count 50 --secs $((secs + 4)) >/dev/null & hold=$!; fi
      sleep 2
      t0=$(ticks "$PID"); h0=$([[ -n $hold ]] && ticks "$hold" || echo 0)
      out=$(wrk -t1 -c128 -d"${secs}s" --latency -s "$DATA.order.lua" "$URL/api/orders")
      t1=$(ticks "$PID"); h1=$([[ -n $hold ]] && ticks "$hold" || echo 0)
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
      echo "round $round, $with dashboards: $rps orders/s, P99 $p99, engine CPU $(awk -v c="$((t1 - t0))" -v r="$rps" -v s="$secs" 'BEGIN {printf "%.1f", c * 10 / (r * s) * 1000}') ms per 1,000 orders, readers $(( (h1 - h0) * 10 / secs )) ms/s"
      [[ -n $hold ]] && wait "$hold"
      stop
    done
  done
  echo "== dashboard: POST /api/orders at a steady 1,000/s for 15 s, without and with 50 dashboards open"
  for with in 0 50 0 50; do
    start --config "$DATA.dash.toml"
    hold=
    if [[ $with -gt 0 ]]; then "$LOADGEN" hold "$URL" --count 50 --secs 19 >/dev/null & hold=$!; fi
    sleep 2
    t0=$(ticks "$PID")
    out=$("$LOADGEN" rate "$URL/api/orders" --rate 1000 --secs 15 --body '{"symbol":"ES","side":"buy","qty":"1","type":"market"}' | grep latency)
    t1=$(ticks "$PID")
    echo "$with dashboards: $out; engine CPU $(( (t1 - t0) * 10 / 15 )) ms/s"
    [[ -n $hold ]] && wait "$hold"
    stop
  done
fi

if [[ $what == deploy || $what == all ]]; then
  echo "== deploy: P0 failure -> rollback running; 100 targets at parallelism 20; the controller idle"
  "$LOADGEN" deploy "$BIN" --runs "${DEPLOY_RUNS:-30}"
fi

if [[ $what == anchor || $what == all ]]; then
  echo "== anchor hashing vs sha256sum on a 1 GiB file (page cache warm)"
  big=$(mktemp); head -c 1073741824 /dev/urandom > "$big"; cat "$big" > /dev/null
  /usr/bin/time -f "sha256sum: %e s" sha256sum "$big" > /dev/null
  out=$(mktemp -d)
  /usr/bin/time -f "sovereign anchor generate: %e s" "$BIN" anchor generate "$big" -o "$out" --purpose bench > /dev/null
  rm -rf "$big" "$out"
fi

if [[ $what == criterion || $what == all ]]; then
  echo "== criterion (in-process)"
  cargo bench -p sovereign-store --bench group_commit
  cargo bench -p sovereign-core --bench schedule
  cargo bench -p sovereign-core --bench risk
  cargo bench -p sovereign-core --bench oms
  cargo bench -p sovereign-core --bench audit
  cargo bench -p sovereign-http --bench access
fi
