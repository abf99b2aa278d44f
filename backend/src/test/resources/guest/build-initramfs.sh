#!/bin/bash
# Builds the e2e guest initramfs: static busybox, the virtio-net module chain of the
# host kernel, and guest-init.sh as /init.
#
# Usage: build-initramfs.sh OUT_DIR [KERNEL_VERSION]
#   Writes OUT_DIR/initramfs.cpio.gz. Without KERNEL_VERSION the newest
#   /boot/vmlinuz-* is used (the same rule GuestImage uses to pick the kernel).
set -euo pipefail

out_dir=${1:?usage: build-initramfs.sh OUT_DIR [KERNEL_VERSION]}
kver=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
busybox=${BUSYBOX:-/bin/busybox}

if [[ -z "$kver" ]]; then
    newest=$(ls /boot/vmlinuz-* | sort -V | tail -n 1)
    kver=${newest#/boot/vmlinuz-}
fi
moddir=/lib/modules/$kver
[[ -d "$moddir" ]] || { echo "no modules for kernel $kver in $moddir" >&2; exit 1; }
# A dynamically linked busybox would need a libc in the image; refuse it early.
if command -v file >/dev/null && ! file -L "$busybox" | grep -q 'statically linked'; then
    echo "$busybox is not a static busybox (apt-get install busybox-static)" >&2; exit 1
fi

# Dependency order matters: each module only loads after the ones it uses.
modules=(virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci
         failover net_failover virtio_net)

mkdir -p "$out_dir"
root=$(mktemp -d "$out_dir/root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,lib/modules,etc}
cp "$busybox" "$root/bin/busybox"
install -m 0755 "$here/guest-init.sh" "$root/init"

: > "$root/lib/modules/load-order"
for m in "${modules[@]}"; do
    # A module missing here is assumed built into the kernel (=y), so it needs no loading.
    src=$(find "$moddir" -name "$m.ko" -o -name "$m.ko.xz" -o -name "$m.ko.zst" -o -name "$m.ko.gz" | head -n 1)
    if [[ -z "$src" ]]; then
        echo "note: $m.ko not found under $moddir, assuming built in" >&2
        continue
    fi
    dst="$root/lib/modules/$m.ko"
    # busybox insmod cannot read compressed modules, so store them plain.
    case "$src" in
        *.ko.xz)  xz -dc "$src" > "$dst" ;;
        *.ko.zst) zstd -qdc "$src" > "$dst" ;;
        *.ko.gz)  gzip -dc "$src" > "$dst" ;;
        *)        cp "$src" "$dst" ;;
    esac
    echo "$m" >> "$root/lib/modules/load-order"
done

# newc is the only cpio format the kernel unpacks; owner root so /init runs as expected.
(cd "$root" && find . -print0 | cpio --null -o -H newc -R 0:0 --quiet) | gzip -6 > "$out_dir/initramfs.cpio.gz.tmp"
mv "$out_dir/initramfs.cpio.gz.tmp" "$out_dir/initramfs.cpio.gz"
echo "$out_dir/initramfs.cpio.gz"
