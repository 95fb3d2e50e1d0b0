# Test helper for capture.sh: connfail.py HOST PORT [TIMEOUT_S] -- one connect(), prints the outcome and errno.
import socket, sys, time, errno
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else None
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
if timeout: s.settimeout(timeout)
t = time.time()
try:
    s.connect((host, port)); r = "ok"
except OSError as e:
    r = "%s errno=%s" % (type(e).__name__, e.errno)
print(host, port, r, "%.3fs" % (time.time() - t), flush=True)
s.close()
