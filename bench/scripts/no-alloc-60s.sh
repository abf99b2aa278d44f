#!/usr/bin/env bash
# No allocation / no GC on the dataplane during a full-rate run.
#
# Our back-end (bin/vhost-user-net, peer mode, --poll busy --cpu-affinity 0, --stats-interval 5) with a
# GC log (and optionally JFR), fed by dpdk-testpmd's virtio_user io loop (--tx-first: a fixed set of
# packets circulates A -> B -> A as fast as the back-end moves it) for WARMUP + SECONDS seconds.
# Afterwards: GCs inside the measurement window (expected: 0), the dataplane thread's allocated-bytes
# series (HotSpot per-thread counter, printed by the back-end every 5 s: expected flat), packet rates.
#
# Usage: bench/scripts/no-alloc-60s.sh [--no-build] [--jfr] [--seconds N] [--warmup N]
#        (EXTRA_JAVA_OPTS=... adds back-end JVM options, e.g. -Xlog:deoptimization=debug:file=/tmp/deopt.log:time)
# Output: bench/results/noalloc-<timestamp>.json (+ -gc.log.txt), all logs in bench/target/no-alloc-<timestamp>/
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=1
JFR=0
SECS=60
WARMUP=15
TESTPMD=${TESTPMD:-dpdk-testpmd}
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=0 ;;
        --jfr) JFR=1 ;;
        --seconds) SECS=$2; shift ;;
        --warmup) WARMUP=$2; shift ;;
        -h|--help) sed -n 2,14p "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    mvn -B -q -pl bench -am package -DskipTests
fi

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$ROOT/bench/target/no-alloc-$STAMP
mkdir -p "$OUT" "$ROOT/bench/results"
SOCK=$(mktemp -d /tmp/vhnet-noalloc-XXXXXX)
PREFIX=vhnet-noalloc-$$
BACKEND_PID=
TESTPMD_PID=

cleanup() {
    [ -n "$TESTPMD_PID" ] && kill -INT "$TESTPMD_PID" 2>/dev/null && sleep 2 && kill -KILL "$TESTPMD_PID" 2>/dev/null || true
    [ -n "$BACKEND_PID" ] && kill -TERM "$BACKEND_PID" 2>/dev/null || true
    rm -rf "$SOCK" "/var/run/dpdk/$PREFIX"
}
trap cleanup EXIT

# Timestamp every back-end output line with the wall clock (bash's EPOCHREALTIME: no fork per line).
stamp() {
    while IFS= read -r line; do
        printf '%s %s\n' "$EPOCHREALTIME" "$line"
    done
}

JAVA_OPTS="-XX:+UseSerialGC -Xmx256m -Xlog:gc*,safepoint:file=$OUT/gc.log:time,uptime,level,tags ${EXTRA_JAVA_OPTS:-}"
if [ "$JFR" = 1 ]; then
    JAVA_OPTS="$JAVA_OPTS -XX:StartFlightRecording=filename=$OUT/backend.jfr,settings=profile,dumponexit=true"
fi
echo "no-alloc: load average $(cut -d' ' -f1-3 /proc/loadavg); logs in $OUT"
echo "no-alloc: VHOST_USER_NET_JAVA_OPTS=\"$JAVA_OPTS\""
VHOST_USER_NET_JAVA_OPTS="$JAVA_OPTS" "$ROOT/bin/vhost-user-net" \
    --socket-path "$SOCK/a.sock" --peer-socket-path "$SOCK/b.sock" \
    --unsealed-memory allow --poll busy --cpu-affinity 0 --stats-interval 5 > >(stamp > "$OUT/backend.log") 2>&1 &
BACKEND_PID=$!
for _ in $(seq 300); do
    [ -S "$SOCK/a.sock" ] && [ -S "$SOCK/b.sock" ] && break
    kill -0 "$BACKEND_PID" 2>/dev/null || { echo "back-end exited:"; cat "$OUT/backend.log"; exit 1; }
    sleep 0.1
done
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

stdbuf -oL "$TESTPMD" -l 0,1 --main-lcore 0 --no-pci --no-huge -m 1024 --file-prefix="$PREFIX" \
    --vdev "net_virtio_user0,path=$SOCK/a.sock,queues=1" --vdev "net_virtio_user1,path=$SOCK/b.sock,queues=1" \
    -- --total-num-mbufs=16384 --stats-period=5 --forward-mode=io --tx-first \
    < /dev/null > >(stamp > "$OUT/testpmd.log") 2>&1 &
TESTPMD_PID=$!
T_TRAFFIC=$EPOCHREALTIME
echo "no-alloc: testpmd started; warm-up ${WARMUP} s, then a ${SECS} s window"
sleep "$WARMUP"
T0=$EPOCHREALTIME
jstat -gc "$BACKEND_PID" > "$OUT/jstat-start.txt" 2>&1 || true
sleep "$SECS"
T1=$EPOCHREALTIME
jstat -gc "$BACKEND_PID" > "$OUT/jstat-end.txt" 2>&1 || true
sleep 1
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
kill -INT "$TESTPMD_PID" 2>/dev/null || true
wait "$TESTPMD_PID" 2>/dev/null || true
TESTPMD_PID=
kill -TERM "$BACKEND_PID" 2>/dev/null || true
wait "$BACKEND_PID" 2>/dev/null || true
BACKEND_PID=
sleep 1

JFR_SUMMARY="$OUT/jfr-dataplane.txt"
if [ "$JFR" = 1 ] && [ -f "$OUT/backend.jfr" ]; then
    jfr print --json --events jdk.ObjectAllocationSample,jdk.ObjectAllocationInNewTLAB,jdk.ObjectAllocationOutsideTLAB \
        "$OUT/backend.jfr" > "$OUT/allocations.json" || true
fi

RESULT=$ROOT/bench/results/noalloc-$STAMP.json
cp "$OUT/gc.log" "$ROOT/bench/results/noalloc-$STAMP-gc.log.txt"  # *.log is git-ignored
python3 - "$OUT" "$T_TRAFFIC" "$T0" "$T1" "$LOAD_START" "$LOAD_END" "$RESULT" "$JFR" <<'EOF'
import json, os, re, subprocess, sys
from datetime import datetime
out, t_traffic, t0, t1, load_start, load_end, result, jfr = sys.argv[1:]
t_traffic, t0, t1 = float(t_traffic), float(t0), float(t1)

# GC log: "[2026-11-21T11:10:00.123+0000][1.234s][info][gc] GC(3) Pause Young (Allocation Failure) 70M->1M(247M) 1.2ms"
gcs, safepoints = [], []
for line in open(os.path.join(out, "gc.log")):
    m = re.match(r"\[([^\]]+)\]\[([\d.]+)s\]\[\w+\s*\]\[([\w,]+)\s*\] (.*)", line)
    if not m:
        continue
    t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    tags, text = m.group(3), m.group(4)
    if tags == "gc" and re.match(r"GC\(\d+\) Pause", text):
        gcs.append({"t": t, "uptime_s": float(m.group(2)), "text": text})
    if tags == "safepoint" and text.startswith("Safepoint"):
        safepoints.append({"t": t, "text": text})
def inside(t): return t0 <= t <= t1
gc_window = [g for g in gcs if inside(g["t"])]
gc_traffic = [g for g in gcs if g["t"] >= t_traffic]

# Back-end stats: "<epoch> stats periodic dataplane-allocated-bytes=N" and per-queue packet counters.
alloc, blocks, current = [], [], {}
for line in open(os.path.join(out, "backend.log")):
    parts = line.rstrip("\n").split(" ", 1)
    if len(parts) < 2:
        continue
    try:
        t = float(parts[0])
    except ValueError:
        continue
    text = parts[1]
    m = re.match(r"stats (periodic|final) (\S+) (q\d+)\((rx|tx)\) packets=(\d+)", text)
    if m:
        current[os.path.basename(m.group(2)) + ":" + m.group(3)] = int(m.group(5))
        continue
    m = re.match(r"stats (periodic|final) dataplane-allocated-bytes=(-?\d+)", text)
    if m:  # last line of a stats block
        alloc.append({"t": t, "since_traffic_s": round(t - t_traffic, 1), "label": m.group(1), "bytes": int(m.group(2))})
        blocks.append((t, current))
        current = {}

periodic = [a for a in alloc if a["label"] == "periodic"]
in_window = [a for a in periodic if inside(a["t"])]
after_traffic = [a for a in periodic if a["t"] >= t_traffic]
delta_window = in_window[-1]["bytes"] - in_window[0]["bytes"] if len(in_window) >= 2 else None

# Rate: RX packets delivered (both directions) between the first and last stats blocks in the window.
wblocks = [(t, p) for t, p in blocks if inside(t)]
rate = None
if len(wblocks) >= 2:
    (ta, pa), (tb, pb) = wblocks[0], wblocks[-1]
    rx = lambda p: sum(v for k, v in p.items() if k.endswith(":q0"))
    rate = (rx(pb) - rx(pa)) / (tb - ta) if tb > ta else None

# testpmd's own view: last Rx-pps per port.
pps = re.findall(r"Rx-pps:\s+(\d+)", open(os.path.join(out, "testpmd.log")).read())

def jstat(name):
    try:
        lines = open(os.path.join(out, name)).read().split("\n")
        num = lambda x: float(x) if re.match(r"^-?[\d.]+$", x) else None
        return dict(zip(lines[0].split(), [num(x) for x in lines[1].split()]))
    except Exception:
        return None
js, je = jstat("jstat-start.txt"), jstat("jstat-end.txt")
heap_growth_kb = None
if js and je and je["YGC"] == js["YGC"]:
    heap_growth_kb = (je["EU"] + je["S0U"] + je["S1U"] + je["OU"]) - (js["EU"] + js["S0U"] + js["S1U"] + js["OU"])
exit_heap = [l.split("] ", 1)[1].strip() for l in open(os.path.join(out, "gc.log")) if "[gc,heap,exit" in l]

doc = {
    "benchmark": "no-alloc",
    "window": {"warmup_s": round(t0 - t_traffic, 1), "seconds": round(t1 - t0, 1),
               "traffic_start_epoch": t_traffic, "start_epoch": t0, "end_epoch": t1},
    "testpmd_rx_pps_series": [[round(float(t) - t_traffic, 1), int(v)] for t, v in
                              re.findall(r"^(\d+\.\d+)\s+Rx-pps:\s+(\d+)", open(os.path.join(out, "testpmd.log")).read(), re.M)],
    "load_average_start": load_start, "load_average_end": load_end,
    "gc_pauses_total": len(gcs),
    "gc_pauses_after_traffic_start": len(gc_traffic),
    "gc_pauses_in_window": len(gc_window),
    "gc_pauses": [{"since_traffic_s": round(g["t"] - t_traffic, 1), "text": g["text"]} for g in gcs],
    "safepoints_in_window": len([s for s in safepoints if inside(s["t"])]),
    "dataplane_allocated_bytes_in_window": delta_window,
    "dataplane_allocated_bytes_series": [{"since_traffic_s": a["since_traffic_s"], "bytes": a["bytes"], "label": a["label"]} for a in alloc],
    "backend_rx_pps_in_window_both_directions": rate,
    "jstat_gc_start": js, "jstat_gc_end": je,
    "process_heap_growth_in_window_kb": heap_growth_kb,
    "heap_at_exit": exit_heap,
    "testpmd_last_rx_pps": [int(x) for x in pps[-2:]],
    "logs": out,
}
if jfr == "1" and os.path.exists(os.path.join(out, "allocations.json")):
    events = json.load(open(os.path.join(out, "allocations.json")))["recording"]["events"]
    by_thread = {}
    for e in events:
        th = (e["values"].get("eventThread") or {}).get("javaName") or "?"
        by_thread[th] = by_thread.get(th, 0) + 1
    doc["jfr_allocation_events_by_thread"] = by_thread
    doc["jfr_allocation_events_on_dataplane"] = by_thread.get("vhost-dataplane", 0)
json.dump(doc, open(result, "w"), indent=2)

print("no-alloc: window %.0f s after %.0f s warm-up; load average %s -> %s" % (t1 - t0, t0 - t_traffic, load_start, load_end))
print("  GC pauses: %d in the window, %d after traffic started, %d in total" % (len(gc_window), len(gc_traffic), len(gcs)))
for g in gcs:
    print("    %+7.1f s  %s" % (g["t"] - t_traffic, g["text"]))
print("  dataplane-allocated-bytes (s since traffic start: bytes):")
print("    " + "  ".join("%s:%d" % (a["since_traffic_s"], a["bytes"]) for a in alloc))
print("  allocated by the dataplane thread during the window: %s bytes" % delta_window)
if js and je:
    print("  whole process (jstat): young GCs %d -> %d, full GCs %d -> %d, heap used %.0f KB -> %.0f KB (growth %s KB: all threads)" % (
        js["YGC"], je["YGC"], js["FGC"], je["FGC"], js["EU"] + js["S0U"] + js["S1U"] + js["OU"],
        je["EU"] + je["S0U"] + je["S1U"] + je["OU"], heap_growth_kb))
print("  back-end RX rate in window (both directions): %s pps; testpmd last Rx-pps: %s" % (
    "%.0f" % rate if rate else "?", ", ".join(pps[-2:])))
if "jfr_allocation_events_by_thread" in doc:
    print("  JFR allocation events by thread: %s" % doc["jfr_allocation_events_by_thread"])
print("  wrote %s" % result)
EOF
