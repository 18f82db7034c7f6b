#!/bin/sh
# Installs what pideploy's tests and the QEMU quick start need on a Debian bookworm machine, and
# enables arm64 in apt (the qemu-aarch64 board is built from Debian's arm64 packages).
set -eu
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
need=
for pair in qemu-system-aarch64:qemu-system-arm sshd:openssh-server ssh:openssh-client sudo:sudo \
    mkfs.vfat:dosfstools fsck.fat:dosfstools mcopy:mtools mke2fs:e2fsprogs debugfs:e2fsprogs \
    sfdisk:fdisk sgdisk:gdisk xz:xz-utils zstd:zstd cpio:cpio bmaptool:bmap-tools \
    pkg-config:pkg-config rsync:rsync ar:binutils dpkg-deb:dpkg; do
    cmd=${pair%%:*}
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || need="$need ${pair#*:}"
done
dpkg -s liblzma-dev >/dev/null 2>&1 || need="$need liblzma-dev"
dpkg -s libssl-dev >/dev/null 2>&1 || need="$need libssl-dev"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    updated=0
else
    updated=1
fi
if [ -n "$need" ] || [ "$updated" = 0 ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
if [ -n "$need" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need
fi
