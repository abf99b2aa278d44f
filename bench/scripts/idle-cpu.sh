#!/usr/bin/env bash
# Build (unless --no-build) and run dev.vhostnet.bench.idle.IdleCpuBenchmark from the repository root; other arguments are passed on
# (--help lists them). Results: bench/results/idle-<timestamp>.json; back-end logs: bench/target/latency-logs/.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
if [ "${1:-}" = "--no-build" ]; then
    shift
else
    mvn -B -q -pl bench -am package -DskipTests
fi
exec java -cp "bench/target/classes:bench/target/lib/*" dev.vhostnet.bench.idle.IdleCpuBenchmark "$@"
