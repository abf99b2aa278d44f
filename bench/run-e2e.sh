#!/bin/sh
# Builds the bench module (and what it depends on) and runs the DPDK virtio_user loop benchmark.
# Arguments go to DpdkLoopBenchmark, e.g.: bench/run-e2e.sh --runs 3 --seconds 20 --configs split-64
set -eu
cd "$(dirname "$0")/.."
mvn -B -q -pl bench -am package -DskipTests
exec java -De2e.logDir=bench/target/e2e-logs \
    -cp "bench/target/vhost-user-net-bench-0.1.0-SNAPSHOT.jar:bench/target/lib/*" \
    dev.vhostnet.bench.e2e.DpdkLoopBenchmark "$@"
