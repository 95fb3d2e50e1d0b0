#!/usr/bin/env bash
# WebSocket benchmark: echo-server ceiling vs npcd, plus idle-session memory.
# Builds nothing. Usage: bench/run-ws.sh   (environment variables below override defaults)
set -uo pipefail

cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}          # measured seconds per run
WARMUP=${WARMUP:-2}               # warmup seconds per run
CONNS=${CONNS:-"100 1000"}        # connection counts
PROCS=${PROCS:-1}                 # generator processes
TOKENS=${TOKENS:-16}              # tokens per reply (echo --stream and npcd --mock-tokens)
ECHO_PORT=${ECHO_PORT:-19001}
NPCD_PORT=${NPCD_PORT:-18080}
IDLE_SESSIONS=${IDLE_SESSIONS:-10000}
IDLE_MODES=${IDLE_MODES:-"close keep-open"}  # idle-sessions runs: close after welcome, and/or keep open
CHARACTER=${CHARACTER:-gufeng-jianke}
NPCD_ARGS=${NPCD_ARGS:-}          # extra npcd serve flags, e.g. --no-native
NPCD_LABEL=${NPCD_LABEL:-npcd}    # label of the npcd runs in the report
SKIP_ECHO=${SKIP_ECHO:-0}         # 1: skip the echo-server ceiling runs
OUT=${OUT:-bench/results/ws-$(date +%Y%m%d-%H%M%S)}

mkdir -p "$OUT"
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do
    kill "$p" 2>/dev/null
  done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$p" 2>/dev/null
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The generator and the servers each need roughly one descriptor per connection.
want=$(( IDLE_SESSIONS + 1000 ))
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$want" ]; then
    echo "warning: ulimit -n is $(ulimit -n) (< $want); idle-sessions / 1000-connection runs may fail. Raise it (e.g. ulimit -n 65536)." >&2
  fi
fi

port_busy() {
  node -e "const s=require('net').connect($1,'127.0.0.1');s.on('connect',()=>process.exit(0));s.on('error',()=>process.exit(1))"
}

wait_port() { # port pid seconds
  local i
  for i in $(seq $(( $3 * 10 ))); do
    kill -0 "$2" 2>/dev/null || return 1
    port_busy "$1" && return 0
    sleep 0.1
  done
  return 1
}

run_load() { # label port pid conns
  local f="$OUT/load-$1-$4.json"
  echo "== $1: $4 connections, ${WARMUP}s warmup + ${DURATION}s" >&2
  timeout $(( DURATION + WARMUP + 60 )) node bench/ws-load.mjs --json --mode chat \
    --url "ws://127.0.0.1:$2/v1/ws" --connections "$4" --procs "$PROCS" \
    --duration "$DURATION" --warmup "$WARMUP" --character "$CHARACTER" \
    --server-pid "$3" --label "$1" >"$f" 2>>"$OUT/ws-load.stderr" || echo "   ws-load failed (exit $?)" >&2
  FILES+=("$f")
}

FILES=()

for p in "$ECHO_PORT" "$NPCD_PORT"; do
  if port_busy "$p"; then echo "port $p is already in use; set ECHO_PORT / NPCD_PORT" >&2; exit 1; fi
done

# ---- echo server (stream mode): the uWS + generator ceiling ------------------
if [ "$SKIP_ECHO" != 1 ]; then
  node bench/echo-server.mjs --port "$ECHO_PORT" --stream "$TOKENS" >"$OUT/echo-server.log" 2>&1 &
  ECHO_PID=$!
  PIDS+=("$ECHO_PID")
  if ! wait_port "$ECHO_PORT" "$ECHO_PID" 10; then echo "echo server did not start; see $OUT/echo-server.log" >&2; exit 1; fi
  for c in $CONNS; do run_load "echo-stream$TOKENS" "$ECHO_PORT" "$ECHO_PID" "$c"; done
  cleanup
fi

# ---- npcd ------------------------------------------------------------------
# A fresh server for every run: sessions keep their history and replay log
# until their TTL, so a server that already served a run is not comparable.
start_npcd() {
  node dist/cli.js serve --port "$NPCD_PORT" --host 127.0.0.1 --model mock --mock-tokens "$TOKENS" \
    --mock-ttft 0 --mock-token-delay 0 --log-level warn $NPCD_ARGS >>"$OUT/npcd.log" 2>&1 &
  NPCD_PID=$!
  PIDS+=("$NPCD_PID")
  if ! wait_port "$NPCD_PORT" "$NPCD_PID" 20; then
    echo "npcd did not start listening on $NPCD_PORT; see $OUT/npcd.log" >&2
    return 1
  fi
}

run_idle() { # keep-open(0|1)
  local name=idle-npcd-close keep=()
  if [ "$1" = 1 ]; then name=idle-npcd-keep-open; keep=(--keep-open); fi
  echo "== npcd: $IDLE_SESSIONS idle sessions (${name#idle-npcd-})" >&2
  timeout 120 node bench/idle-sessions.mjs --json --url "ws://127.0.0.1:$NPCD_PORT/v1/ws" \
    --sessions "$IDLE_SESSIONS" --pid "$NPCD_PID" "${keep[@]}" >"$OUT/$name.json" 2>>"$OUT/idle.stderr" \
    || echo "   idle-sessions failed (exit $?)" >&2
  FILES+=("$OUT/$name.json")
}

if [ -f dist/cli.js ]; then
  for c in $CONNS; do
    start_npcd && run_load "$NPCD_LABEL" "$NPCD_PORT" "$NPCD_PID" "$c"
    cleanup
  done
  for k in $IDLE_MODES; do
    case $k in
      close) start_npcd && run_idle 0 ;;
      keep-open) start_npcd && run_idle 1 ;;
      *) echo "unknown IDLE_MODES entry: $k" >&2 ;;
    esac
    cleanup
  done
else
  echo "dist/cli.js not found: skipping npcd (build it first; this script builds nothing)" >&2
fi

echo
echo "### WebSocket results ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, node $(node --version), ${WARMUP}s warmup + ${DURATION}s, generator procs $PROCS)"
echo
node bench/lib/report.mjs "${FILES[@]}"
echo
echo "raw results: $OUT"
