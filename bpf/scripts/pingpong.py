# Test helper for capture.sh: pingpong.py HOST PORT N GAP_S IDLE_S -- N 100-byte echo round trips, then stay connected IDLE_S.
import socket, sys, time
host, port, n, gap, idle = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
c = socket.create_connection((host, port))
c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
print("local", c.getsockname(), flush=True)
for i in range(n):
    c.sendall(b"x" * 100); c.recv(4096); time.sleep(gap)
print("idle", time.time(), flush=True)
time.sleep(idle)
c.close()
