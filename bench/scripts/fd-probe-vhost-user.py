#!/usr/bin/env python3
# Usage: fd-probe-vhost-user.py SOCKET BACKEND_PID 10,61,200,253   (issue 10: the fd counts must not grow)
# Connect to a vhost-user back-end; on each connection send SET_OWNER then one SET_VRING_KICK carrying N memfds,
# then close; print the back-end's open fds before and after each (as in issue 10).
import os, socket, struct, sys, time, array
path, pid = sys.argv[1], int(sys.argv[2])
counts = [int(x) for x in sys.argv[3].split(",")]
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def msg(req, flags, payload): return struct.pack("<III", req, flags, len(payload)) + payload
time.sleep(0.5)
print("start", fds())
for n in counts:
    mem = [os.memfd_create(f"m{i}") for i in range(n)]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(msg(3, 1, b""))  # SET_OWNER
    data = msg(12, 1, struct.pack("<Q", 0))  # SET_VRING_KICK, ring 0
    try:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", mem))])
    except OSError as e:
        print(n, "send failed:", e)
    time.sleep(0.5)
    s.close()
    for fd in mem: os.close(fd)
    time.sleep(1.0)
    print(f"after {n} memfds:", fds())
