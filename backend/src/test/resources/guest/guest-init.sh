#!/bin/busybox sh
# /init of the e2e guest. Reads its part from the kernel command line:
#   e2e.role=sender|receiver  e2e.ip=A.B.C.D  e2e.peer=A.B.C.D
#   optional: e2e.prefix=24 e2e.port=5001 e2e.mib=8 e2e.wait=240 (seconds to wait for the peer)
# and reports progress as "E2E:<WORD>[=value]" lines on the console, which the
# Java harness (QemuGuest) waits for. The guest always ends with E2E:DONE or
# E2E:FAIL=<reason>, then powers off.

/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=64m tmpfs /tmp
# The kernel may have found no /dev/console before devtmpfs was mounted, leaving
# init without stdio; point everything at the console now.
exec < /dev/console > /dev/console 2>&1

# Markers go to the console device directly so they are seen even from
# background jobs whose stdout is a socket.
mark() { echo "E2E:$*" > /dev/console; }
finish() {
    mark "$1"
    sync
    poweroff -f
    sleep 5  # poweroff -f does not return; if it ever does, panic ends QEMU via -no-reboot
    exit 1
}
fail() { finish "FAIL=$*"; }

role= ip= peer= prefix=24 port=5001 mib=8 wait_s=240
for kv in $(cat /proc/cmdline); do
    case "$kv" in
        e2e.role=*)   role=${kv#*=} ;;
        e2e.ip=*)     ip=${kv#*=} ;;
        e2e.peer=*)   peer=${kv#*=} ;;
        e2e.prefix=*) prefix=${kv#*=} ;;
        e2e.port=*)   port=${kv#*=} ;;
        e2e.mib=*)    mib=${kv#*=} ;;
        e2e.wait=*)   wait_s=${kv#*=} ;;
    esac
done
mark "BOOTED role=$role ip=$ip peer=$peer"
[ -n "$role" ] && [ -n "$ip" ] && [ -n "$peer" ] || fail "missing e2e.role/e2e.ip/e2e.peer"

for m in $(cat /lib/modules/load-order); do
    # Already loaded (e.g. pulled in earlier) is fine; anything else is reported by insmod.
    grep -q "^$m " /proc/modules || insmod "/lib/modules/$m.ko" || fail "insmod $m"
done

i=0
while [ ! -e /sys/class/net/eth0 ]; do
    i=$((i + 1)); [ $i -gt 30 ] && fail "no eth0 after virtio_net loaded"
    sleep 1
done
ip link set lo up
ip link set eth0 up || fail "eth0 up"
ip addr add "$ip/$prefix" dev eth0 || fail "ip addr add"
mark "NET_UP mac=$(cat /sys/class/net/eth0/address)"

# From here on keep kernel chatter off the console so marker lines stay whole.
dmesg -n 1

# e2e.mode=soak (reconnection and migration tests) replaces the one-shot scenario below: the
# guests never stop by themselves. Both ping each other once a second, forever, printing
# "PONG=<replies> lost=<misses>" per reply; the receiver serves every connection on $port
# (RECV_MD5=<md5> bytes=<n>, md5 sent back); the sender pushes the payload every e2e.every
# seconds (default 3): "XFER_BEGIN=<round>", then "XFER_OK=<round>:<receiver's md5>" or
# "XFER_RETRY=<round>" when that round got no answer (e.g. the back-end was away too long).
case " $(cat /proc/cmdline) " in *" e2e.mode=soak "*)
    every=$(sed -n 's/.* e2e\.every=\([0-9]*\).*/\1/p' /proc/cmdline); every=${every:-3}
    (
        n=0 lost=0
        while true; do
            if ping -c 1 -W 1 "$peer" > /dev/null 2>&1; then
                n=$((n + 1)); mark "PONG=$n lost=$lost"; sleep 1
            else
                lost=$((lost + 1))
            fi
        done
    ) &
    if [ "$role" = receiver ]; then
        cat > /bin/e2e-soak-recv <<'EOS'
#!/bin/sh
cat > /tmp/recv.bin
sum=$(md5sum < /tmp/recv.bin | cut -d' ' -f1)
echo "E2E:RECV_MD5=$sum bytes=$(wc -c < /tmp/recv.bin)" > /dev/console
echo "$sum"
EOS
        chmod +x /bin/e2e-soak-recv
        while true; do nc -l -p "$port" -e /bin/e2e-soak-recv < /dev/null; done
    fi
    dd if=/dev/urandom of=/tmp/payload.bin bs=1048576 count="$mib" 2> /dev/null || fail "payload"
    mark "SENT_BYTES=$(wc -c < /tmp/payload.bin)"
    mark "SENT_MD5=$(md5sum < /tmp/payload.bin | cut -d' ' -f1)"
    round=0
    while true; do
        round=$((round + 1))
        mark "XFER_BEGIN=$round"
        rm -f /tmp/ack
        timeout 120 nc -w 10 "$peer" "$port" < /tmp/payload.bin > /tmp/ack 2> /dev/null
        if [ -s /tmp/ack ]; then mark "XFER_OK=$round:$(cat /tmp/ack)"; else mark "XFER_RETRY=$round"; fi
        sleep "$every"
    done ;;
esac

# Ping until the peer answers: the two guests boot at different times.
ping_peer() {
    deadline=$(( $(cut -d. -f1 /proc/uptime) + wait_s ))
    tries=0
    while [ "$(cut -d. -f1 /proc/uptime)" -lt $deadline ]; do
        tries=$((tries + 1))
        if ping -c 1 -W 1 "$peer" > /dev/null 2>&1; then
            mark "PING_OK tries=$tries"
            return 0
        fi
        sleep 1
    done
    return 1
}

receiver() {
    # The connection handler runs with the socket as stdin/stdout: store
    # everything until the sender's EOF, then answer with the md5 so the sender
    # knows the whole payload arrived before it powers off.
    cat > /bin/e2e-recv <<'EOS'
#!/bin/sh
cat > /tmp/recv.bin
sum=$(md5sum < /tmp/recv.bin | cut -d' ' -f1)
echo "E2E:RECV_BYTES=$(wc -c < /tmp/recv.bin)" > /dev/console
echo "E2E:RECV_MD5=$sum" > /dev/console
echo "$sum"
EOS
    chmod +x /bin/e2e-recv
    # Listen before pinging, so the sender finds the socket once it can reach us.
    nc -l -p "$port" -e /bin/e2e-recv < /dev/null &
    ncpid=$!
    mark "LISTENING port=$port"
    ping_peer || fail "no ping reply from $peer in ${wait_s}s"
    wait $ncpid || fail "nc listener exited with $?"
    [ -s /tmp/recv.bin ] || fail "nothing received"
    # The md5 reply may still sit in our send queue; powering off now would lose it and
    # leave the sender waiting. Linger until the sender has acknowledged our FIN.
    await_tcp_closed "$port" || fail "sender did not close the connection"
}

# True once no connection on local port $1 is still exchanging data or awaiting the
# ACK of our FIN (ESTABLISHED=01, FIN_WAIT1=04, CLOSE_WAIT=08, LAST_ACK=09, CLOSING=0B).
# nc listens dual-stack, so its connections show up in tcp6 as well.
await_tcp_closed() {
    hexport=$(printf '%04X' "$1")
    i=0
    while cat /proc/net/tcp /proc/net/tcp6 2> /dev/null |
          awk -v p=":$hexport" '$2 ~ p"$" && $4 ~ /^(01|04|08|09|0B)$/ { found = 1 } END { exit !found }'; do
        i=$((i + 1)); [ $i -gt 60 ] && return 1
        sleep 1
    done
    return 0
}

sender() {
    dd if=/dev/urandom of=/tmp/payload.bin bs=1048576 count="$mib" 2> /dev/null || fail "payload"
    sum=$(md5sum < /tmp/payload.bin | cut -d' ' -f1)
    mark "SENT_BYTES=$(wc -c < /tmp/payload.bin)"
    mark "SENT_MD5=$sum"
    ping_peer || fail "no ping reply from $peer in ${wait_s}s"
    # Connection refused means the receiver is not listening yet: retry. A reply
    # (the receiver's md5) means the transfer completed.
    deadline=$(( $(cut -d. -f1 /proc/uptime) + wait_s ))
    while [ "$(cut -d. -f1 /proc/uptime)" -lt $deadline ]; do
        # -w only bounds connect(); timeout bounds a transfer that stalls midway.
        timeout "$wait_s" nc -w 10 "$peer" "$port" < /tmp/payload.bin > /tmp/ack 2> /tmp/nc.err
        [ -s /tmp/ack ] && break
        sleep 1
    done
    [ -s /tmp/ack ] || fail "send: $(cat /tmp/nc.err)"
    mark "ACK_MD5=$(cat /tmp/ack)"
}

case "$role" in
    receiver) receiver ;;
    sender)   sender ;;
    *)        fail "unknown role $role" ;;
esac
finish DONE
