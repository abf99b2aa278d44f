#!/bin/sh
# Install what building and testing vhost-user-net needs on Debian 12, skipping what is already there.
# Build: JDK 17 + Maven. Tests: QEMU (two TCG guests), DPDK (testpmd with virtio_user and the vhost PMD),
# a static busybox and a distribution kernel with its modules (the guests' initramfs).
set -eu
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have java || need="$need openjdk-17-jdk-headless"
have mvn || need="$need maven"
if [ "${1:-}" = "--test" ]; then
    have qemu-system-x86_64 || need="$need qemu-system-x86"
    have dpdk-testpmd || need="$need dpdk dpdk-dev"
    [ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -q '^nc$' || need="$need busybox-static"
    ls /boot/vmlinuz-* >/dev/null 2>&1 || need="$need linux-image-amd64"
    have cpio || need="$need cpio"
fi
if [ -n "$need" ]; then
    echo "install-deps: installing$need"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $need
fi
