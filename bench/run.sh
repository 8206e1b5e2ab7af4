#!/usr/bin/env bash
# One command for every comparison in BENCHMARKS.md, side by side in one run:
#   - the demo greeter without auth vs behind the auth layer (warm cache / no cache) per algorithm;
#   - auth-server Validate, Refresh (PostgreSQL and SQLite) and Login vs the argon2id limit, plus Login
#     at 4x that limit (open loop) to show load shedding;
#   - the seed tutorials' stack (Flask + PyJWT + argon2-cffi under gunicorn, in a throw-away venv) under
#     the same load generator;
#   - the criterion micro-benchmarks (verify/issue per algorithm, layer cold/warm, extraction).
# Writes bench/results/{results.jsonl,results.md,criterion.txt,summary.md}.
#
# Settings (environment): DURATION (s, default 8), WARMUP (s, 2), CONCURRENCY (64), CONNECTIONS (4),
# BENCH_PG_URL (postgres://postgres@127.0.0.1:5432/postgres), CRITERION (1 to run the criterion
# benches, default 1), SEED (1 to run the Flask comparison, default 1), OUT (bench/results).
# Needs: a Rust toolchain, python3 with venv, PostgreSQL reachable at BENCH_PG_URL. Linux (/proc).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-64}
CONNECTIONS=${CONNECTIONS:-4}
export BENCH_PG_URL=${BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/postgres}
CRITERION=${CRITERION:-1}
SEED=${SEED:-1}
OUT=${OUT:-bench/results}
VENV=target/bench-venv

mkdir -p "$OUT"
RES="$OUT/results.jsonl"
: > "$RES"
L=target/release/loadgen
COMMON=(--duration "$DURATION" --warmup "$WARMUP" --connections "$CONNECTIONS" --json-out "$RES")

log() { printf '\n== %s  [%s]\n' "$*" "$(uptime | sed 's/.*load average/load average/')"; }

log "machine"
{
  echo "date: $(date -u +%FT%TZ)"
  echo "kernel: $(uname -sr)"
  echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //') x $(nproc)"
  echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "rustc: $(rustc --version)"
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/machine.txt"

log "build (release)"
cargo build --release -q -p auth-server -p auth-bench

log "argon2id limit"
$L argon2-limit --json-out "$RES"
LIMIT=$(tail -n1 "$RES" | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["ok_per_sec"]))')
OVERLOAD=$((LIMIT * 4))

log "demo greeter: no auth vs auth layer (same requests, bearer header included)"
$L greeter --protection none --alg EdDSA --concurrency "$CONCURRENCY" "${COMMON[@]}" \
  --label "greeter WhoAmI, no auth layer"
for alg in HS256 EdDSA ES256 RS256; do
  $L greeter --protection layer --alg "$alg" --concurrency "$CONCURRENCY" "${COMMON[@]}" \
    --label "greeter WhoAmI, auth layer $alg, warm cache"
  $L greeter --protection layer-no-cache --alg "$alg" --concurrency "$CONCURRENCY" "${COMMON[@]}" \
    --label "greeter WhoAmI, auth layer $alg, no cache (verify every call)"
done
# The baseline again: summarize.py compares with the mean of both, which halves the effect of a burst of
# outside load on one of them.
$L greeter --protection none --alg EdDSA --concurrency "$CONCURRENCY" "${COMMON[@]}" \
  --label "greeter WhoAmI, no auth layer (again, after the layer runs)"

log "auth-server Validate / Refresh"
for db in postgres sqlite; do
  $L auth --scenario validate --db "$db" --concurrency "$CONCURRENCY" "${COMMON[@]}"
  $L auth --scenario refresh --db "$db" --concurrency "$CONCURRENCY" "${COMMON[@]}"
done

log "auth-server Login: saturation (8 in flight) and 4x overload (open loop ${OVERLOAD}/s)"
$L auth --scenario login --db postgres --concurrency 8 "${COMMON[@]}" \
  --label "auth-server Login (PostgreSQL), saturated" --note "argon2 limit ${LIMIT}/s"
$L auth --scenario login --db postgres --rate "$OVERLOAD" --concurrency 1024 "${COMMON[@]}" \
  --label "auth-server Login (PostgreSQL), 4x overload" --note "offered ${OVERLOAD}/s"
# The same saturation with glibc's malloc kept from caching freed argon2 blocks per thread arena
# (see BENCHMARKS.md, "memory under login load").
$L auth --scenario login --db postgres --concurrency 8 "${COMMON[@]}" \
  --server-env MALLOC_ARENA_MAX=2 --server-env MALLOC_MMAP_THRESHOLD_=1048576 \
  --label "auth-server Login (PostgreSQL), saturated, MALLOC_ARENA_MAX=2 + mmap threshold 1 MiB"

if [ "$SEED" = 1 ]; then
  log "seed stack: Flask + PyJWT + argon2-cffi under gunicorn (2 processes x 8 threads)"
  if [ ! -x "$VENV/bin/gunicorn" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q -r bench/requirements.txt
  fi
  GPID=""
  stop_seed() {
    if [ -n "$GPID" ]; then kill "$GPID" 2>/dev/null || true; wait "$GPID" 2>/dev/null || true; GPID=""; fi
  }
  trap stop_seed EXIT
  start_seed() { # $1 = algorithm
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    SEED_ALG=$1 "$VENV/bin/gunicorn" --chdir bench -w 2 -k gthread --threads 8 --preload \
      --log-level warning -b "127.0.0.1:$PORT" flask_app:app > "$OUT/gunicorn.log" 2>&1 &
    GPID=$!
    for _ in $(seq 100); do
      curl -fs "http://127.0.0.1:$PORT/hello" > /dev/null 2>&1 && break
      sleep 0.1
    done
    sleep 0.5
    PIDS="$GPID,$(pgrep -P "$GPID" | paste -sd, -)"
  }
  start_seed HS256
  $L http --base "http://127.0.0.1:$PORT" --scenario hello --concurrency "$CONCURRENCY" \
    --server-pids "$PIDS" "${COMMON[@]}" --label "seed stack GET /hello, no auth"
  stop_seed
  for alg in HS256 EdDSA; do
    start_seed "$alg"
    $L http --base "http://127.0.0.1:$PORT" --scenario verify --concurrency "$CONCURRENCY" \
      --server-pids "$PIDS" "${COMMON[@]}" --label "seed stack GET /whoami, PyJWT $alg verify"
    stop_seed
  done
  start_seed EdDSA
  $L http --base "http://127.0.0.1:$PORT" --scenario login --concurrency 8 \
    --server-pids "$PIDS" "${COMMON[@]}" --label "seed stack POST /login, saturated"
  stop_seed
  start_seed EdDSA
  $L http --base "http://127.0.0.1:$PORT" --scenario login --rate "$OVERLOAD" --concurrency 1024 \
    --server-pids "$PIDS" "${COMMON[@]}" --label "seed stack POST /login, 4x overload" \
    --note "offered ${OVERLOAD}/s"
  stop_seed
fi

if [ "$CRITERION" = 1 ]; then
  log "criterion micro-benchmarks"
  cargo bench -q -p auth-interceptor --bench verify -- --output-format bencher 2>/dev/null | grep "^test" | tee "$OUT/criterion.txt"
  cargo bench -q -p auth-server --bench issue -- --output-format bencher 2>/dev/null | grep "^test" | tee -a "$OUT/criterion.txt"
fi

echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT/machine.txt"
$L table "$RES" > "$OUT/results.md"
python3 bench/summarize.py "$RES" ${CRITERION:+"$OUT/criterion.txt"} > "$OUT/summary.md"
log "results"
cat "$OUT/machine.txt" "$OUT/results.md" "$OUT/summary.md"
