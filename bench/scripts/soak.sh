#!/bin/bash
# Soak: our back-end in peer mode with DPDK's virtio_user io loop at full rate for N minutes (default 10).
#
#   bench/scripts/soak.sh [minutes]
#
# Every SOAK_SAMPLE seconds (default 30) the back-end's RSS (VmRSS), open fds (/proc/PID/fd), thread count,
# the load average and its own counters are appended to samples.csv; at the end the script prints start, end
# and max of each and whether they are stable, and exits non-zero if they are not or if traffic stopped.
#
# Environment: SOAK_SAMPLE (seconds between samples, 30), SOAK_STATS (the back-end's --stats-interval, 10),
# SOAK_OUT (output directory, bench/results/soak-<date>), SOAK_SKIP_BUILD=1 (use the jars already built),
# BACKEND_CORE (0) / FRONTEND_CORE (1), VHOST_USER_NET_JAVA_OPTS (JVM options of bin/vhost-user-net).
#
# Stable means: open fds and threads identical in every sample; RSS at the end no more than 2 % + 1 MiB above
# the first sample after the warm-up (a fifth of the run, at least one sample in); the dataplane threads'
# allocated bytes (printed by the back-end) not growing after the warm-up; packets moving both ways in every
# sampling interval.
set -euo pipefail

MINUTES=${1:-10}
SAMPLE=${SOAK_SAMPLE:-30}
STATS=${SOAK_STATS:-10}
BACKEND_CORE=${BACKEND_CORE:-0}
FRONTEND_CORE=${FRONTEND_CORE:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${SOAK_OUT:-$ROOT/bench/results/soak-$(date +%Y%m%d-%H%M%S)}
case $MINUTES in ''|*[!0-9]*) echo "usage: $0 [minutes]" >&2; exit 2 ;; esac
[ "$MINUTES" -ge 1 ] || { echo "minutes must be >= 1" >&2; exit 2; }
for tool in dpdk-testpmd taskset stdbuf; do
    command -v "$tool" >/dev/null || { echo "soak: $tool not found" >&2; exit 2; }
done

cd "$ROOT"
if [ "${SOAK_SKIP_BUILD:-0}" != 1 ]; then
    echo "soak: building the back-end (mvn package -DskipTests)"
    mvn -B -q -pl backend -am package -DskipTests -DskipFuzz
fi
mkdir -p "$OUT"
SOCKDIR=$(mktemp -d /tmp/vhn-soak-XXXXXX)
A=$SOCKDIR/a.sock
B=$SOCKDIR/b.sock
PREFIX=vhn-soak-$$
if [ "$(id -u)" = 0 ]; then RUNTIME=/var/run; else RUNTIME=${XDG_RUNTIME_DIR:-/tmp}; fi
BACKEND_PID=
TESTPMD_PID=

stop_pid() { # pid signal grace-seconds: signal, wait, then SIGKILL; only our own children
    local pid=$1 sig=$2 grace=$3 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    echo "soak: pid $pid did not exit within ${grace}s of SIG$sig; killing it" >&2
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    stop_pid "$TESTPMD_PID" INT 30
    stop_pid "$BACKEND_PID" TERM 20
    rm -rf "$SOCKDIR" "$RUNTIME/dpdk/$PREFIX"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "soak: $MINUTES min, sample every ${SAMPLE}s, output $OUT"
echo "soak: machine: $(nproc) CPUs, load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# The back-end as installed (bin/vhost-user-net: jars, -XX:+UseSerialGC -Xmx256m), pinned to its own core.
# bin/vhost-user-net execs java, and taskset execs it: $! is the JVM.
# --unsealed-memory allow: testpmd's virtio_user memory (memfd_create("nohuge", 0)) cannot be sealed.
taskset -c "$BACKEND_CORE" "$ROOT/bin/vhost-user-net" --socket-path "$A" --peer-socket-path "$B" \
    --unsealed-memory allow --stats-interval "$STATS" >"$OUT/backend.log" 2>&1 &
BACKEND_PID=$!
for ((i = 0; i < 600; i++)); do
    [ -S "$A" ] && [ -S "$B" ] && break
    kill -0 "$BACKEND_PID" 2>/dev/null || { echo "soak: back-end exited at start:" >&2; tail -20 "$OUT/backend.log" >&2; exit 1; }
    sleep 0.1
done
[ -S "$A" ] && [ -S "$B" ] || { echo "soak: back-end sockets not created within 60s" >&2; exit 1; }

# The front-end: two virtio_user ports in io forward mode, one burst injected per port (--tx-first).
stdbuf -oL -eL dpdk-testpmd -l "$(( BACKEND_CORE < FRONTEND_CORE ? BACKEND_CORE : FRONTEND_CORE )),$(( BACKEND_CORE > FRONTEND_CORE ? BACKEND_CORE : FRONTEND_CORE ))" \
    --main-lcore "$BACKEND_CORE" --no-pci --no-huge -m 1024 --file-prefix="$PREFIX" \
    --vdev "net_virtio_user0,path=$A,queues=1" --vdev "net_virtio_user1,path=$B,queues=1" \
    -- --total-num-mbufs=16384 --stats-period=1 --forward-mode=io --tx-first >"$OUT/testpmd.log" 2>&1 &
TESTPMD_PID=$!
for ((i = 0; i < 600; i++)); do
    grep -q 'RX-packets: *[1-9]' "$OUT/testpmd.log" 2>/dev/null && break
    kill -0 "$TESTPMD_PID" 2>/dev/null || { echo "soak: testpmd exited at start:" >&2; tail -20 "$OUT/testpmd.log" >&2; exit 1; }
    sleep 0.1
done
grep -q 'RX-packets: *[1-9]' "$OUT/testpmd.log" || { echo "soak: no traffic within 60s" >&2; exit 1; }

# Latest periodic counters of the back-end: dataplane allocated bytes, frames delivered to B (A->B) and to A.
latest_stat() { { grep -F "stats periodic $1" "$OUT/backend.log" || true; } | tail -n 1 | sed -n "s/.*$2=\([0-9-]*\).*/\1/p"; }
# The first sample once the back-end has printed counters with traffic flowing.
for ((i = 0; i < (STATS + 30) * 10; i++)); do
    [ -n "$(latest_stat dataplane-allocated-bytes dataplane-allocated-bytes)" ] && break
    sleep 0.1
done

CSV=$OUT/samples.csv
echo "elapsed_s,rss_kb,fds,threads,load1,dataplane_allocated_bytes,a_to_b_packets,b_to_a_packets" >"$CSV"
START=$(date +%s)
END=$((START + MINUTES * 60))
n=0
while :; do
    now=$(date +%s)
    kill -0 "$BACKEND_PID" 2>/dev/null || { echo "soak: back-end died at $((now - START))s" >&2; tail -20 "$OUT/backend.log" >&2; exit 1; }
    kill -0 "$TESTPMD_PID" 2>/dev/null || { echo "soak: testpmd died at $((now - START))s" >&2; tail -20 "$OUT/testpmd.log" >&2; exit 1; }
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$BACKEND_PID/status")
    threads=$(awk '/^Threads:/ {print $2}' "/proc/$BACKEND_PID/status")
    fds=$(ls "/proc/$BACKEND_PID/fd" | wc -l)
    load=$(cut -d' ' -f1 /proc/loadavg)
    alloc=$(latest_stat dataplane-allocated-bytes dataplane-allocated-bytes)
    ab=$(latest_stat "$B q0(rx)" packets)
    ba=$(latest_stat "$A q0(rx)" packets)
    echo "$((now - START)),$rss,$fds,$threads,$load,$alloc,$ab,$ba" | tee -a "$CSV"
    n=$((n + 1))
    next=$((START + n * SAMPLE))
    [ "$next" -le "$END" ] || break
    sleep $((next - $(date +%s) > 0 ? next - $(date +%s) : 0))
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# Stop: the front-end first (it prints its forward statistics), then the back-end (its final counters).
stop_pid "$TESTPMD_PID" INT 30
TESTPMD_PID=
sleep 1
stop_pid "$BACKEND_PID" TERM 20
BACKEND_PID=

echo
echo "soak: $MINUTES min, $n samples; load average at the end: $LOAD_END; files in $OUT"
awk -F, -v minutes="$MINUTES" '
NR == 1 { next }
{
    i++; t[i] = $1; rss[i] = $2; fds[i] = $3; thr[i] = $4; alloc[i] = $6; ab[i] = $7; ba[i] = $8
}
END {
    warm = int(i / 5) + 1; if (warm < 2) warm = 2; if (warm > i) warm = i
    ok = 1
    split("rss_kb fds threads", names, " ")
    for (k = 1; k <= 3; k++) {
        min = max = 0
        for (j = 1; j <= i; j++) {
            v = (k == 1 ? rss[j] : k == 2 ? fds[j] : thr[j]) + 0
            if (j == 1 || v < min) min = v
            if (j == 1 || v > max) max = v
        }
        first = (k == 1 ? rss[1] : k == 2 ? fds[1] : thr[1]); last = (k == 1 ? rss[i] : k == 2 ? fds[i] : thr[i])
        if (k == 1) {
            base = rss[warm]
            stable = (last <= base * 1.02 + 1024)
            note = sprintf("after warm-up (t=%ss) %d, growth to the end %+d kB", t[warm], base, last - base)
        } else {
            stable = (min == max); note = sprintf("min %d", min)
        }
        printf "  %-8s start %8d  end %8d  max %8d  %s: %s\n", names[k], first, last, max, note, stable ? "stable" : "NOT STABLE"
        ok = ok && stable
    }
    astable = (alloc[i] == alloc[warm])
    printf "  dataplane-allocated-bytes: start %s, after warm-up %s, end %s: %s\n", alloc[1], alloc[warm], alloc[i], astable ? "stable" : "GROWING"
    ok = ok && astable
    flowing = 1
    for (j = 2; j <= i; j++) if (ab[j] + 0 <= ab[j - 1] + 0 || ba[j] + 0 <= ba[j - 1] + 0) flowing = 0
    secs = t[i] - t[1]
    if (secs > 0) printf "  back-end delivered A->B %d, B->A %d packets between the first and last sample: %.3f / %.3f Mpps\n", ab[i] - ab[1], ba[i] - ba[1], (ab[i] - ab[1]) / secs / 1e6, (ba[i] - ba[1]) / secs / 1e6
    printf "  traffic %s\n", flowing ? "moved both ways in every interval" : "STOPPED in some interval"
    ok = ok && flowing
    print (ok ? "soak: STABLE" : "soak: NOT STABLE")
    exit ok ? 0 : 1
}' "$CSV" | tee "$OUT/summary.txt"
status=${PIPESTATUS[0]}
echo "back-end final counters:"
grep -F 'stats final' "$OUT/backend.log" | sed 's/^/  /' | tee -a "$OUT/summary.txt"
echo "front-end (testpmd) forward statistics:"
grep -A2 'Forward statistics for port' "$OUT/testpmd.log" | grep -v '^--$' | sed 's/^ */  /' | tee -a "$OUT/summary.txt"
exit "$status"
