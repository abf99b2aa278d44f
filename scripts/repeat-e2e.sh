#!/bin/sh
# repeat-e2e.sh N TEST [MAVEN ARGS...]
# Runs one e2e test (surefire -Dtest syntax, e.g. 'DpdkLoopVhostPciE2ETest#killing*') N times in a row and stops
# at the first failure, to count consecutive passes of a case that once failed intermittently. Each run goes
# through the machine's heavy-job lock when there is one (/work/shared/tools/exclusive), so other jobs can run
# in between (LOCK=none: the caller already holds it, e.g. 'exclusive scripts/repeat-e2e.sh ...'). Every run's logs stay in backend/target/e2e-logs/; the Maven output of run i is
# target/repeat-e2e/run-i.log. SPIN=1 keeps one CPU-spinning process running during each run (a loaded machine).
set -eu
[ $# -ge 2 ] || { echo "usage: $0 N TEST [MAVEN ARGS...]" >&2; exit 2; }
n=$1; test=$2; shift 2
cd "$(dirname "$0")/.."
out=target/repeat-e2e; mkdir -p "$out"
lock=/work/shared/tools/exclusive; [ -x "$lock" ] && [ "${LOCK:-}" != none ] || lock=
mvn -B -q -o test-compile -pl backend -am "$@" >"$out/compile.log" 2>&1 || { cat "$out/compile.log"; exit 1; }
i=1
while [ "$i" -le "$n" ]; do
    spin=
    if [ "${SPIN:-0}" = 1 ]; then
        sh -c 'while :; do :; done' & spin=$!
    fi
    start=$(date +%s)
    if $lock mvn -B -o -Pe2e -pl backend -am test -DskipFuzz "-Dtest=$test" -Dsurefire.failIfNoSpecifiedTests=false \
        "$@" >"$out/run-$i.log" 2>&1; then rc=0; else rc=$?; fi
    [ -n "$spin" ] && kill "$spin"
    if [ $rc -ne 0 ] || ! grep -q "Tests run: [1-9]" "$out/run-$i.log"; then
        echo "run $i FAILED after $((i - 1)) consecutive passes ($(($(date +%s) - start)) s); see $out/run-$i.log"
        grep -E "Tests run:|FAIL|AssertionError" "$out/run-$i.log" | head -20
        exit 1
    fi
    echo "run $i passed ($(($(date +%s) - start)) s)"
    i=$((i + 1))
done
echo "$n consecutive passes of $test"
