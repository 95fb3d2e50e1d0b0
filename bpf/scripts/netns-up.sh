#!/bin/sh
# Test network for the bpf programs: namespaces npcdbpf-a (client) and
# npcdbpf-b (server) joined by a veth pair, 10.231.0.0/24 and fd31:231::/64,
# with a 1 Mbit/s tbf qdisc (50 ms queue) on the server's egress for queueing
# delay and drops. Needs root. Remove with netns-down.sh.
set -e
ip netns add npcdbpf-a
ip netns add npcdbpf-b
ip link add vnpa type veth peer name vnpb
ip link set vnpa netns npcdbpf-a
ip link set vnpb netns npcdbpf-b
ip -n npcdbpf-a addr add 10.231.0.1/24 dev vnpa
ip -n npcdbpf-b addr add 10.231.0.2/24 dev vnpb
ip -n npcdbpf-a addr add fd31:231::1/64 dev vnpa nodad
ip -n npcdbpf-b addr add fd31:231::2/64 dev vnpb nodad
for ns in npcdbpf-a npcdbpf-b; do ip -n $ns link set lo up; done
ip -n npcdbpf-a link set vnpa up
ip -n npcdbpf-b link set vnpb up
tc -n npcdbpf-b qdisc add dev vnpb root tbf rate 1mbit burst 4kb latency 50ms
# 10.231.0.77 answers nothing: its SYNs vanish (connect -> ETIMEDOUT)
ip -n npcdbpf-a neigh replace 10.231.0.77 lladdr 02:00:00:00:00:77 dev vnpa nud permanent
ip netns exec npcdbpf-a sysctl -q -w net.ipv4.tcp_syn_retries=1
