#!/bin/sh
# Repeats the vIOMMU two-guest e2e test (ViommuTwoGuestE2ETest: lazy and strict invalidation, packed and
# split rings, 20 MiB both ways) ROUNDS times and prints one line per round; stops at the first failure.
# The test itself runs once in the default suite (scripts/test-all.sh); this is for hunting intermittent
# failures. Usage: scripts/viommu-rounds.sh [ROUNDS]   (default 3)
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
mvn -B -q -o package -DskipTests
i=1
while [ "$i" -le "$rounds" ]; do
    log=$(mktemp /tmp/viommu-round-XXXXXX.log)
    if mvn -B -o -Pe2e -pl backend -am test -DskipFuzz -Dtest=ViommuTwoGuestE2ETest \
        -Dsurefire.failIfNoSpecifiedTests=false > "$log" 2>&1; then
        echo "round $i: ok ($(grep -o 'e2e viommu [a-z]*: .*invalidations per device [^;]*' "$log" | tr '\n' ' '))"
    else
        echo "round $i: FAILED, see $log"
        exit 1
    fi
    rm -f "$log"
    i=$((i + 1))
done
