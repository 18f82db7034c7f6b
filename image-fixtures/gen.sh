#!/bin/sh
# Regenerates image-fixtures/apt/: a tiny arm64 apt repository holding a fake Raspberry Pi kernel package
# set laid out like Raspberry Pi's real ones (linux-image-rpi-2712 -> linux-image-<ver>-rpi-2712), for
# tests that cannot reach archive.raspberrypi.com. The output is deterministic: same bytes on every run,
# whatever the umask, clock or user. Needs dpkg-deb, xz, sha256sum.
#   sh image-fixtures/gen.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=$here/apt
kver=6.6.0-fixture-rpi-2712
version=1:6.6.0-1+fixture1
pool=pool/main/l/linux-image-rpi-2712
# 2024-01-01T00:00:00Z, the same fixed time pideploy uses for images.
export SOURCE_DATE_EPOCH=1704067200
export TZ=UTC LC_ALL=C
umask 022

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Placeholder bytes: `count` lines of sha256 hex chained from `seed`, so every file differs.
filler() {
    seed=$1 count=$2 i=0
    while [ "$i" -lt "$count" ]; do
        printf '%s %d' "$seed" "$i" | sha256sum | cut -c1-64
        i=$((i + 1))
    done
}

# A flattened-device-tree lookalike: the FDT magic, then text naming the file.
fake_dtb() {
    printf '\320\015\376\355' > "$1"
    filler "$(basename "$1")" 2 >> "$1"
}

# Stamps every path of a package tree with the fixed time (dpkg-deb clamps to it; this makes it exact).
stamp() {
    find "$1" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

build() {
    root=$1 deb=$2
    find "$root" -type d -exec chmod 0755 {} +
    find "$root" -type f ! -path '*/DEBIAN/*' -exec chmod 0644 {} +
    stamp "$root"
    dpkg-deb --build --root-owner-group -Zxz -z6 --threads-max=1 "$root" "$deb" > /dev/null
}

# The real kernel package: image, device trees, overlays, modules.
k=$work/linux-image-$kver
mkdir -p "$k/DEBIAN" "$k/boot" "$k/usr/lib/linux-image-$kver/broadcom" \
    "$k/usr/lib/linux-image-$kver/overlays" "$k/lib/modules/$kver/kernel"
# An arm64 Image header is 64 bytes with "ARMd" at offset 56; a few KB of filler follow.
{
    printf 'MZ@\372'
    head -c 52 /dev/zero
    printf 'ARMd'
    filler vmlinuz 64
} > "$k/boot/vmlinuz-$kver"
# Every device tree boards/rpi5.toml lists, plus two it does not (a Pi 4 one the dtb glob must skip,
# and another bcm2712 variant the glob picks up).
for dtb in bcm2712-rpi-5-b bcm2712d0-rpi-5-b bcm2712-rpi-cm5-cm5io bcm2712-rpi-cm5-cm4io \
    bcm2712-rpi-cm5l-cm5io bcm2712-rpi-cm5l-cm4io bcm2712-rpi-500 bcm2712-rpi-cm5-extra \
    bcm2711-rpi-4-b; do
    fake_dtb "$k/usr/lib/linux-image-$kver/broadcom/$dtb.dtb"
done
for o in bcm2712d0.dtbo overlay_map.dtb vc4-kms-v3d-pi5.dtbo dwc2.dtbo disable-bt-pi5.dtbo; do
    fake_dtb "$k/usr/lib/linux-image-$kver/overlays/$o"
done
printf 'Introduction\n============\n\nFixture overlays README (placeholder for the real one).\n' \
    > "$k/usr/lib/linux-image-$kver/overlays/README"
filler fake.ko 2 > "$k/lib/modules/$kver/kernel/fake.ko"
printf 'kernel/fake.ko:\n' > "$k/lib/modules/$kver/modules.dep"
cat > "$k/DEBIAN/control" <<CTRL
Package: linux-image-$kver
Source: linux
Version: $version
Architecture: arm64
Maintainer: pideploy fixtures <fixtures@pideploy.invalid>
Installed-Size: $(du -sk --apparent-size "$k" | cut -f1)
Depends: kmod, linux-base (>= 4.3~)
Section: kernel
Priority: optional
Description: Linux $kver for Raspberry Pi 5 (pideploy test fixture)
 Placeholder bytes laid out like Raspberry Pi's kernel package; does not boot.
CTRL

# The metapackage the board names.
m=$work/linux-image-rpi-2712
mkdir -p "$m/DEBIAN" "$m/usr/share/doc/linux-image-rpi-2712"
printf 'Fixture metapackage.\n' > "$m/usr/share/doc/linux-image-rpi-2712/README"
cat > "$m/DEBIAN/control" <<CTRL
Package: linux-image-rpi-2712
Source: linux
Version: $version
Architecture: arm64
Maintainer: pideploy fixtures <fixtures@pideploy.invalid>
Installed-Size: 1
Depends: linux-image-$kver (= $version)
Section: kernel
Priority: optional
Description: Linux for Raspberry Pi 5 (metapackage, pideploy test fixture)
CTRL

rm -rf "$out"
mkdir -p "$out/$pool"
# Pool names carry no epoch, as in real archives.
file_version=${version#*:}
for pkg in linux-image-rpi-2712 "linux-image-$kver"; do
    build "$work/$pkg" "$out/$pool/${pkg}_${file_version}_arm64.deb"
done

# Packages: each control paragraph plus where the file is and what it hashes to, sorted by name.
for deb in $(cd "$out" && ls "$pool"/*.deb | sort); do
    dpkg-deb -f "$out/$deb"
    printf 'Filename: %s\nSize: %s\nSHA256: %s\n\n' "$deb" \
        "$(stat -c %s "$out/$deb")" "$(sha256sum "$out/$deb" | cut -c1-64)"
done > "$out/Packages"
xz -9 -T1 -c "$out/Packages" > "$out/Packages.xz"
find "$out" -type f -exec chmod 0644 {} +
stamp "$out"
