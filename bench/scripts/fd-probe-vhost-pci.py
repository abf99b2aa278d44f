#!/usr/bin/env python3
# Usage: fd-probe-vhost-pci.py PCI_SOCKET DEVICE_SIDE_PID 10,61,200,253   (issue 10: the fd counts must not grow)
# Connect to a vhost-pci device side as a client, complete HELLO, send one MEMORY_INFO ADD (one region) carrying
# N memfds, close; print the device process's open fds before and after each (as in issue 10).
import os, socket, struct, sys, time, array, uuid
path, pid = sys.argv[1], int(sys.argv[2])
counts = [int(x) for x in sys.argv[3].split(",")]
def fds(): return len(os.listdir(f"/proc/{pid}/fd"))
def recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c: raise EOFError
        b += c
    return b
def frame(s):
    h = recv_exact(s, 32)
    t, v, ln, seq = struct.unpack("<HHIQ", h[:16])
    return t, seq, recv_exact(s, ln)
def header(t, ln, seq, me): return struct.pack("<HHIQ", t, 1, ln, seq) + me
print("start", fds())
for n in counts:
    me = uuid.uuid4().bytes
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    t, their_hello, _ = frame(s)
    hello = struct.pack("<BBHHHQIIII", 2, 0, 1, 1, 0, 0, 1000, 5000, 32, 64)
    s.sendall(header(1, 32, 1, me) + hello)
    ack = struct.pack("<QHHIQII", their_hello, 1, 5, 0, 1, 0, 0)
    s.sendall(header(8, 32, 2, me) + ack)
    t, _, _ = frame(s)  # the ACK of our HELLO
    mem = [os.memfd_create(f"m{i}") for i in range(n)]
    for fd in mem: os.ftruncate(fd, 4096)
    info = struct.pack("<HHI", 0, 0, 1) + struct.pack("<QQQQ", 0, 4096, 0x7f0000000000, 0)
    try:
        s.sendmsg([header(2, len(info), 3, me) + info], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", mem))])
    except OSError as e:
        print(n, "send failed:", e)
    time.sleep(0.5)
    s.close()
    for fd in mem: os.close(fd)
    time.sleep(1.0)
    print(f"after {n} memfds:", fds())
