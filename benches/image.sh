#!/bin/sh
# Benchmark of `pideploy image` (not run by cargo test):
#   1. `pideploy image -o X.img` for the qemu-aarch64 board's default config, against a shell pipeline
#      writing the same content with the usual tools (sfdisk, mkfs.vfat + mcopy, mke2fs -d) from the same
#      staged trees (unpacked from pideploy's image, outside the timing);
#      and against genimage (Debian package `genimage`, the tool rpi-image-gen uses) on the same trees;
#   2. `pideploy image -o X.img.xz` against `pideploy image -o X.img` followed by `xz -T0` (same preset 6).
# Prints the best of RUNS wall-clock times and the ratios.
#
#   sh benches/image.sh                 # RUNS=3, release binary (built if missing)
#   PIDEPLOY=path/to/pideploy RUNS=5 sh benches/image.sh
#
# Needs what the tests need (.ci/install-deps.sh: the arm64 apt lists, fdisk, dosfstools, mtools,
# e2fsprogs, xz-utils). The shell pipeline does less than pideploy: no fixed owners/times pass
# (its output is not reproducible) and no .bmap.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=${RUNS:-3}
work=${BENCH_DIR:-$repo/target/bench-image}
pideploy=${PIDEPLOY:-$repo/target/release/pideploy}
if [ ! -x "$pideploy" ]; then
    (cd "$repo" && cargo build --release -p pideploy)
fi
export PIDEPLOY_CACHE_DIR="$work/cache" PIDEPLOY_STORE_DIR="$work/store" MTOOLS_SKIP_CHECK=1
export LC_ALL=C
mkdir -p "$work"
cd "$work"

# Inputs, untimed: lock, packages through apt, a throwaway key for the default config's user.
idx="$repo/target/debian-arm64/index"
debs="$repo/target/debian-arm64/debs"
[ -s "$idx/debian.Packages" ] || sh "$repo/qemu/debian-arm64.sh" indexes "$idx"
[ -f key.pub ] || ssh-keygen -q -t ed25519 -N '' -C bench@pideploy -f key
set -- -b qemu-aarch64 --lock "$work/pideploy.lock" --authorized-key "$work/key.pub"
"$pideploy" -q lock "$@" --index "debian=$idx/debian.Packages" \
    --index "debian-security=$idx/debian-security.Packages"
PIDEPLOY="$pideploy" sh "$repo/qemu/debian-arm64.sh" debs "$work/pideploy.lock" "$debs"
"$pideploy" -q cache import "$debs"/*.deb
# Warm-up: builds the closure into the store once, so every timed run measures image writing.
"$pideploy" -q image "$@" -o "$work/warm.img" > /dev/null

now() { date +%s.%N; }
# best_of NAME CMD...: runs CMD $runs times, prints nothing, sets BEST (seconds). $PREP, if set,
# runs untimed before each.
best_of() {
    BEST=
    i=0
    while [ "$i" -lt "$runs" ]; do
        ${PREP:-:}
        t0=$(now)
        "$@"
        t1=$(now)
        BEST=$(echo "$t0 $t1 ${BEST:-}" | awk '{d = $2 - $1; if ($3 == "" || d < $3) print d; else print $3}')
        i=$((i + 1))
    done
}

pideploy_img() { rm -f "$work/p.img"; "$pideploy" -q image "$@" -o "$work/p.img" > /dev/null; }
pideploy_xz() { rm -f "$work/p.img.xz"; "$pideploy" -q image "$@" -o "$work/p.img.xz" > /dev/null; }
pideploy_then_xz() { pideploy_img "$@"; xz -T0 -6 -c "$work/p.img" > "$work/x.img.xz"; }

# The same content staged as trees, untimed: partition layout from sfdisk, files from mtools/debugfs.
img="$work/warm.img"
layout=$(sfdisk --dump "$img")
bstart=$(sfdisk --json "$img" | awk -F'[:,]' '/"start"/ {print $2+0}' | sed -n 1p)
bsize=$(sfdisk --json "$img" | awk -F'[:,]' '/"size"/ {print $2+0}' | sed -n 1p)
rstart=$(sfdisk --json "$img" | awk -F'[:,]' '/"start"/ {print $2+0}' | sed -n 2p)
rsize=$(sfdisk --json "$img" | awk -F'[:,]' '/"size"/ {print $2+0}' | sed -n 2p)
total=$(stat -c %s "$img")
rm -rf boot.tree root.tree
mkdir boot.tree root.tree
mcopy -s -p -i "$img@@$((bstart * 512))" '::*' boot.tree/
dd if="$img" of=root.part bs=512 skip="$rstart" count="$rsize" status=none conv=sparse
debugfs -R "rdump / $work/root.tree" root.part 2> /dev/null
rm -rf root.tree/lost+found root.part

# The pipeline: partition table, FAT32 in place, copy the boot files, ext4 from the root tree in place.
shell_pipeline() {
    rm -f "$work/s.img"
    truncate -s "$total" "$work/s.img"
    echo "$layout" | sfdisk -q "$work/s.img"
    mkfs.vfat -F 32 -n BOOTFS --offset "$bstart" "$work/s.img" $((bsize / 2)) > /dev/null 2>&1
    mcopy -s -p -i "$work/s.img@@$((bstart * 512))" boot.tree/* ::
    mke2fs -q -F -t ext4 -L rootfs -d root.tree -E "offset=$((rstart * 512))" "$work/s.img" $((rsize / 2))k
}

# Check the pipeline produced what it claims before timing it.
shell_pipeline
dd if="$work/s.img" of=check.part bs=512 skip="$bstart" count="$bsize" status=none conv=sparse
fsck.fat -n check.part > /dev/null
[ "$(mtype -i check.part ::config.txt)" = "$(mtype -i "$img@@$((bstart * 512))" ::config.txt)" ]
dd if="$work/s.img" of=check.part bs=512 skip="$rstart" count="$rsize" status=none conv=sparse
e2fsck -fn check.part > /dev/null
rm -f check.part

# genimage (the image tool rpi-image-gen uses), same trees and layout: it copies the root path to
# its temp dir, then runs mkdosfs + mcopy and mke2fs -d, then assembles the disk image.
table=$(sfdisk --json "$img" | sed -n 's/.*"label": *"\([a-z]*\)".*/\1/p' | head -n1)
rm -rf genimage.root
mkdir -p genimage.root
cp -a root.tree/. genimage.root/
mkdir -p genimage.root/boot/firmware
cp -a boot.tree/. genimage.root/boot/firmware/
if [ "$table" = gpt ]; then
    btype='partition-type-uuid = "F"'
    rtype='partition-type-uuid = "L"'
    ptt=gpt
else
    btype='partition-type = 0xC'
    rtype='partition-type = 0x83'
    ptt=mbr
fi
cat > genimage.cfg << EOF
image boot.vfat {
    vfat { label = "BOOTFS" }
    mountpoint = "/boot/firmware"
    size = $((bsize * 512))
}
image root.ext4 {
    ext4 { label = "rootfs" use-mke2fs = true }
    size = $((rsize * 512))
}
image g.img {
    hdimage { partition-table-type = "$ptt" }
    size = $total
    partition boot { $btype image = "boot.vfat" offset = $((bstart * 512)) }
    partition root { $rtype image = "root.ext4" offset = $((rstart * 512)) }
}
EOF
genimage_run() {
    rm -rf genimage.tmp genimage.out
    mkdir genimage.out
    genimage --config genimage.cfg --rootpath genimage.root --tmppath genimage.tmp \
        --outputpath genimage.out --inputpath genimage.out > genimage.log 2>&1
}
have_genimage=no
if command -v genimage > /dev/null 2>&1; then
    have_genimage=yes
    genimage_run || {
        cat genimage.log >&2
        exit 1
    }
    dd if=genimage.out/g.img of=check.part bs=512 skip="$rstart" count="$rsize" status=none conv=sparse
    e2fsck -fn check.part > /dev/null
    dd if=genimage.out/g.img of=check.part bs=512 skip="$bstart" count="$bsize" status=none conv=sparse
    fsck.fat -n check.part > /dev/null
    rm -f check.part
fi

pideploy_build() { "$pideploy" -q build "$@" > /dev/null; }
best_of pideploy_build "$@"; t_build=$BEST
best_of pideploy_img "$@"; t_pideploy=$BEST
# The first image of a closure stages all of it (later images start from the kept staging).
drop_kept() { rm -rf "$PIDEPLOY_STORE_DIR/image-store"; }
PREP=drop_kept best_of pideploy_img "$@"; t_fresh=$BEST
best_of shell_pipeline; t_shell=$BEST
t_gen=
if [ "$have_genimage" = yes ]; then
    best_of genimage_run
    t_gen=$BEST
fi
best_of pideploy_xz "$@"; t_pxz=$BEST
best_of pideploy_then_xz "$@"; t_xz=$BEST
s_pxz=$(stat -c %s "$work/p.img.xz")
s_xz=$(stat -c %s "$work/x.img.xz")
content=$(du -sk --apparent-size root.tree | cut -f1)

printf 'image: %s MiB (%s MiB root content), best of %s runs, %s cores\n' \
    $((total >> 20)) $((content >> 10)) "$runs" "$(nproc)"
printf '  pideploy image -o .img             %6.2fs\n' "$t_pideploy"
printf '    of which pideploy build (closure) %6.2fs\n' "$t_build"
printf '  the same, first image of the closure %6.2fs (stages every store path; ratio to shell %.2f)\n' \
    "$t_fresh" "$(echo "$t_fresh $t_shell" | awk '{print $1 / $2}')"
printf '  sfdisk + mkfs.vfat/mcopy + mke2fs -d %6.2fs\n' "$t_shell"
printf '  ratio pideploy / shell             %6.2f\n' "$(echo "$t_pideploy $t_shell" | awk '{print $1 / $2}')"
printf '  ratio (pideploy - build) / shell   %6.2f\n' "$(echo "$t_pideploy $t_build $t_shell" | awk '{print ($1 - $2) / $3}')"
if [ -n "$t_gen" ]; then
    printf '  genimage %s (same trees, layout)  %6.2fs\n' "$(genimage --version 2>/dev/null | head -n1)" "$t_gen"
    printf '  ratio pideploy / genimage          %6.2f\n' "$(echo "$t_pideploy $t_gen" | awk '{print $1 / $2}')"
else
    echo "  genimage: not installed (apt-get install genimage), not compared"
fi
printf '  pideploy image -o .img.xz          %6.2fs  %s bytes\n' "$t_pxz" "$s_pxz"
printf '  pideploy -o .img + xz -T0 -6       %6.2fs  %s bytes\n' "$t_xz" "$s_xz"
printf '  ratio time (pideploy .xz / +xz)    %6.2f\n' "$(echo "$t_pxz $t_xz" | awk '{print $1 / $2}')"
printf '  ratio size (pideploy .xz / xz)     %6.3f\n' "$(echo "$s_pxz $s_xz" | awk '{print $1 / $2}')"
rm -f "$work/p.img" "$work/s.img" "$work/x.img.xz" "$work/p.img.xz"
rm -rf genimage.root genimage.tmp genimage.out
