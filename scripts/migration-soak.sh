#!/bin/sh
# Live-migration soak: MigrationConsistencyE2ETest with many rounds. Each round migrates both guests at
# once (under traffic) to a new back-end, compares source and destination RAM page by page and the
# virtqueue state before the destinations run, then checks that the migrated guests work. The default
# test run does 2 rounds per NIC variant; this does ROUNDS (default 10, i.e. 20 migrations per variant).
#
#   scripts/migration-soak.sh [ROUNDS] [NICS] [RAM]
#
# NICS e.g. "split,mergeable;packed,mrg_rxbuf=off" (default: both). RAM: guest memory (default 262152K;
# 256M reproduces QEMU 7.2's lost guest stores under TCG, see QemuGuest.MIGRATION_MEMORY).
#
# Prints one line per migration ("e2e: round N: recv migrated in ...; RAM: 0 of 65536 pages differ;
# rings: consistent ...") and a summary per variant; the full Maven output goes to
# backend/target/migration-soak.log. Exits non-zero if any migration was not exact or a migrated guest
# stopped working.
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-10}
nics=${2:-}
ram=${3:-}
log=backend/target/migration-soak.log
mkdir -p backend/target
status=0
mvn -B -Pe2e -pl backend -am test -DskipFuzz -Dtest=MigrationConsistencyE2ETest \
    -Dsurefire.failIfNoSpecifiedTests=false -Dvhostnet.e2e.migrationRounds="$rounds" \
    ${nics:+"-Dvhostnet.e2e.migrationNics=$nics"} ${ram:+"-Dvhostnet.e2e.migrationMemory=$ram"} \
    > "$log" 2>&1 || status=$?
grep -aE '^e2e: (round|split|packed)|Tests run:|BUILD' "$log" | cut -c1-400 || true
exit $status
