#!/usr/bin/env bash
# perf-flamegraph.sh — a Linux perf flamegraph of npcd under load, with
# JavaScript and native frames (node, V8, libuv, libc, uWS, npcd's Rust
# module, the kernel when perf may see it) in the same stacks.
#
# npcd runs as `node --perf-basic-prof --interpreted-frames-native-stack
# dist/cli.js serve --model mock …`: V8 then writes /tmp/perf-PID.map, which
# names its JIT code for perf, and gives interpreted functions their own
# native frames. `perf record -F 99 -g` samples every thread of the process
# while scripts/load-mix.mjs drives it (WebSocket turns from
# bench/ws-load.mjs, HTTP JSON/SSE/OpenAI turns, /metrics scrapes); `perf
# script` prints the stacks and scripts/flamegraph.mjs folds them and draws
# the SVG. See docs/profiling.md.
#
# Usage: scripts/perf-flamegraph.sh [--duration S] [--connections N]
#          [--port P] [--out DIR] [--frequency HZ] [--no-build] [-- npcd serve flags]
# Needs: perf (Debian: linux-perf), and root or kernel.perf_event_paranoid <= 1.
# Output (last line): flamegraph: perf-flamegraph/npcd-flamegraph.svg
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
duration=10
connections=200
port=18091
out="$root/perf-flamegraph"
frequency=99
build=1
extra=()

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration="$2"; shift 2 ;;
    --connections) connections="$2"; shift 2 ;;
    --port) port="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --frequency) frequency="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "perf-flamegraph: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in duration connections port frequency; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || [ "${!v}" -lt 1 ]; then
    echo "perf-flamegraph: --$v must be a positive integer, not '${!v}'" >&2
    exit 2
  fi
done
if ! command -v perf >/dev/null; then
  echo "perf-flamegraph: perf is not installed (Debian: apt-get install linux-perf)" >&2
  exit 2
fi

cd "$root"
if [ "$build" = 1 ]; then
  echo "building (npm run build) ..." >&2
  npm run build --silent
fi
mkdir -p "$out"

server_pid=""
load_pid=""
cleanup() {
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null || true
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -INT "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  [ -n "$server_pid" ] && rm -f "/tmp/perf-$server_pid.map"
}
trap cleanup EXIT

node --perf-basic-prof --interpreted-frames-native-stack dist/cli.js serve \
  --host 127.0.0.1 --port "$port" --model mock --mock-tokens 32 --mock-token-delay 5ms --mock-ttft 20ms \
  --log-level warn "${extra[@]}" >"$out/npcd.log" 2>&1 &
server_pid=$!
echo "npcd pid $server_pid on 127.0.0.1:$port; waiting for /readyz ..." >&2

# load-mix waits for /readyz, then runs for $duration s; perf records the same
# span (started once npcd answers, plus a second so the ramp-up is in it).
node scripts/load-mix.mjs --url "http://127.0.0.1:$port" --duration "$duration" --connections "$connections" >"$out/load.txt" 2>&1 &
load_pid=$!
for _ in $(seq 1 150); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "perf-flamegraph: npcd exited; see $out/npcd.log" >&2; cat "$out/npcd.log" >&2; exit 1; }
  sleep 0.2
done
echo "recording $duration s at $frequency Hz ..." >&2
perf record -F "$frequency" -g -p "$server_pid" -o "$out/perf.data" -- sleep "$duration" 2>"$out/perf-record.log" || {
  echo "perf-flamegraph: perf record failed (root, or sysctl kernel.perf_event_paranoid=1, is needed):" >&2
  cat "$out/perf-record.log" >&2
  exit 1
}
wait "$load_pid" || echo "perf-flamegraph: the load generator exited with $? (see $out/load.txt)" >&2
load_pid=""
grep -E '^(turns|http )' "$out/load.txt" >&2 || true

# perf script reads /tmp/perf-PID.map for the JavaScript names: before npcd's
# exit, which leaves it behind (cleanup removes it).
perf script -i "$out/perf.data" 2>"$out/perf-script.log" >"$out/perf.stacks"
kill -INT "$server_pid" 2>/dev/null || true
wait "$server_pid" 2>/dev/null || true

samples=$(grep -c -E '^\S' "$out/perf.stacks" || true)
node scripts/flamegraph.mjs --input "$out/perf.stacks" --folded "$out/npcd.folded" \
  --title "npcd under load (perf, $frequency Hz, $duration s)" \
  --subtitle "$samples samples; $(grep -E '^turns' "$out/load.txt" | head -1 | cut -c15-)" \
  >"$out/npcd-flamegraph.svg"
echo "flamegraph: $out/npcd-flamegraph.svg"
