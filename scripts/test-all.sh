#!/bin/sh
# Install the test dependencies (apt) when missing, then run every test: unit, integration and the
# end-to-end tests with real QEMU guests and DPDK front-ends (Maven profile e2e).
set -eu
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test
mvn -B -Pe2e verify "$@"
