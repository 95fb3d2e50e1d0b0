#!/bin/bash
# Runs tcp-srtt.bt, tcp-connect.bt and tcp-retrans.bt with -f json against
# real traffic (loopback and the netns-up.sh veth pair) and leaves their
# output, the clients' results and `ss -tie` of the idle ping-pong sockets in
# OUT (default /tmp/npcd-bpf-capture). This is how bpf/samples/*.json were
# made. Needs root, bpftrace, curl, python3 and a mounted tracefs.
set -u
HERE=$(cd "$(dirname "$0")" && pwd); B=$(dirname "$HERE")
OUT=${1:-/tmp/npcd-bpf-capture}; rm -rf "$OUT"; mkdir -p "$OUT/www"; cd "$OUT"
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing
"$HERE/netns-down.sh"; "$HERE/netns-up.sh"
head -c 2000000 /dev/urandom > www/blob
PIDS=()
python3 -m http.server 18080 --bind 127.0.0.1 -d www > http-v4.log 2>&1 & PIDS+=($!)
python3 -m http.server 18081 --bind ::1 -d www > http-v6.log 2>&1 & PIDS+=($!)
ip netns exec npcdbpf-b python3 -m http.server 8080 --bind :: -d www > http-ns.log 2>&1 & PIDS+=($!)
ip netns exec npcdbpf-b python3 "$HERE/echo_server.py" 9090 > echo.log 2>&1 & PIDS+=($!)
sleep 1
start() { local n=$1; shift; bpftrace -f json -q "$@" > $n.json 2> $n.err & echo $! > $n.pid; }
start srtt "$B/tcp-srtt.bt" 5 1 0 8080 9090
start connect "$B/tcp-connect.bt" 5 0 0 8080 9090 9999 18080 18081
start retrans "$B/tcp-retrans.bt" 5 0 0 8080 9090
# the BEGIN printf comes after the probes are attached
for f in srtt connect retrans; do while ! grep -q printf $f.json 2>/dev/null; do sleep 0.05; done; done
# loopback: v4 + v6 successes, v4 + v6 refused
curl -s -o /dev/null http://127.0.0.1:18080/; curl -s -o /dev/null 'http://[::1]:18081/'
python3 "$HERE/connfail.py" 127.0.0.1 9999 >> clients.txt; python3 "$HERE/connfail.py" ::1 9999 >> clients.txt
# veth: SYNs vanish (ETIMEDOUT after one retry), the client gives up while connecting (errno 0)
ip netns exec npcdbpf-a python3 "$HERE/connfail.py" 10.231.0.77 9090 >> clients.txt & W1=$!
ip netns exec npcdbpf-a python3 "$HERE/connfail.py" 10.231.0.77 9999 0.5 >> clients.txt & W2=$!
# veth: bulk download through the tbf, then a ping-pong and an IPv6 request under load
ip netns exec npcdbpf-a curl -s -o /dev/null -w 'bulk %{http_code} connect=%{time_connect} total=%{time_total}\n' http://10.231.0.2:8080/blob >> clients.txt & C=$!
sleep 3
ip netns exec npcdbpf-a python3 "$HERE/pingpong.py" 10.231.0.2 9090 30 0.1 4 > pingpong.txt & Q=$!
sleep 1
ip netns exec npcdbpf-a curl -s -o /dev/null -w 'small-v6 %{http_code} connect=%{time_connect} total=%{time_total}\n' 'http://[fd31:231::2]:8080/' >> clients.txt
sleep 4.5
{ echo "== $(date +%s.%N) ns b (server)"; ip netns exec npcdbpf-b ss -tieHn 'sport = :9090'
  echo "== ns a (client)"; ip netns exec npcdbpf-a ss -tieHn 'dport = :9090'; } > ss-idle.txt 2>/dev/null
wait $Q $C $W1 $W2
sleep 1
for n in srtt connect retrans; do kill -INT "$(cat $n.pid)"; done
for n in srtt connect retrans; do while kill -0 "$(cat $n.pid)" 2>/dev/null; do sleep 0.1; done; done
kill "${PIDS[@]}" 2>/dev/null; wait
"$HERE/netns-down.sh"
echo "output in $OUT"
