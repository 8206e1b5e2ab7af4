#!/usr/bin/env bash
# What the gRPC metrics layer costs: grpc.health.v1.Health/Check under h2load against two release
# auth-servers started side by side in one run — one with the layer (the default), one with
# AUTH_GRPC_METRICS=false — in alternating rounds (off, on, on, off, …) so drift in the machine's load
# hits both alike. Prints one line per round and the ratio of the means; afterwards checks on the
# measured server's own /metrics that every request was counted as handled with grpc_code="OK".
#
# Settings (environment): ROUNDS (default 3), DURATION (s per round, 10), WARMUP (s, 2), CLIENTS (h2load
# connections, 4), STREAMS (concurrent streams per connection, 16), OUT (bench/results).
# Needs: h2load (Debian: apt-get install -y nghttp2-client), curl, a release build (it runs one).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CLIENTS=${CLIENTS:-4}
STREAMS=${STREAMS:-16}
OUT=${OUT:-bench/results}
BIN=$(realpath -m "${CARGO_TARGET_DIR:-target}/release/auth-server")
mkdir -p "$OUT"
command -v h2load >/dev/null || { echo "h2load missing: apt-get install -y nghttp2-client" >&2; exit 1; }

cargo build --release -q -p auth-server

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME GRPC_METRICS: a zero-config SQLite server; sets PORT_<NAME> and HTTP_<NAME>.
start() {
  local name=$1 metrics=$2 grpc http
  grpc=$(free_port); http=$(free_port)
  mkdir -p "$WORK/$name"
  (cd "$WORK/$name" && exec env -i PATH="$PATH" AUTH_GRPC_ADDR="127.0.0.1:$grpc" \
    AUTH_HTTP_ADDR="127.0.0.1:$http" AUTH_GRPC_METRICS="$metrics" \
    AUTH_ARGON2_MEMORY_KIB=8192 AUTH_ARGON2_ITERATIONS=1 "$BIN" > server.log 2>&1) &
  PIDS+=($!)
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$http/healthz/ready" > /dev/null 2>&1 && break
    sleep 0.1
  done
  printf -v "PORT_$name" '%s' "$grpc"
  printf -v "HTTP_$name" '%s' "$http"
}

start on true
start off false

# The gRPC request: an uncompressed message of length 0 (HealthCheckRequest { service: "" }).
printf '\x00\x00\x00\x00\x00' > "$WORK/check.bin"

# run PORT: requests per second of one h2load window.
run() {
  h2load -D "$DURATION" --warm-up-time "$WARMUP" -c "$CLIENTS" -m "$STREAMS" -t 1 \
    -d "$WORK/check.bin" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$1/grpc.health.v1.Health/Check" > "$WORK/h2load.txt"
  grep -q ' 0 failed, 0 errored' "$WORK/h2load.txt" || { cat "$WORK/h2load.txt" >&2; exit 1; }
  awk '/^finished in/ {gsub(",", "", $4); print $4}' "$WORK/h2load.txt"
}

echo "h2load -D $DURATION --warm-up-time $WARMUP -c $CLIENTS -m $STREAMS -t 1 (Health/Check)"
sum_on=0; sum_off=0
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for which in $order; do
    port_var="PORT_$which"
    rps=$(run "${!port_var}")
    echo "round $r  metrics $which  $rps req/s"
    if [ "$which" = on ]; then sum_on=$(echo "$sum_on + $rps" | bc -l); else sum_off=$(echo "$sum_off + $rps" | bc -l); fi
  done
done
mean_on=$(echo "$sum_on / $ROUNDS" | bc -l)
mean_off=$(echo "$sum_off / $ROUNDS" | bc -l)
printf 'mean: with layer %.0f req/s, without %.0f req/s, ratio %.3f\n' \
  "$mean_on" "$mean_off" "$(echo "$mean_on / $mean_off" | bc -l)"

# Every Check answered by the measured server is in its own metrics, as OK.
curl -fs "http://127.0.0.1:$HTTP_on/metrics" | grep '^grpc_server_handled_total{.*grpc_method="Check"'
none=$(curl -fs "http://127.0.0.1:$HTTP_off/metrics" | grep -c '^grpc_server_' || true)
echo "grpc_server_* samples of the server without the layer: $none"
