#!@BUSYBOX@ sh
# First-boot root grow: the image is built at minimal size; on the card it was flashed to (or a QEMU
# image enlarged with truncate), the root partition is grown to the end of the disk and then its ext4
# filesystem, once. The outcome is recorded in /pideploy/var/root-grown; while that file exists this
# only says so. Run by stage 2 before activation, before systemd, services or the boot partition.
#   grow-root        (pideploy.growroot=0 on the kernel command line turns it off without recording)
#
# Decision (measured on the Debian bookworm arm64 closures, Installed-Size of the packages each choice
# adds to the qemu-aarch64 base closure of ~28 MiB):
#   - e2fsprogs (resize2fs, dumpe2fs): 7 packages, 3.5 MiB. Needed by every option: the filesystem grow.
#   - telling the running kernel about the bigger partition needs the BLKPG ioctl (BLKRRPART is refused
#     while the root is mounted). Debian ships it only in big closures: util-linux (resizepart, partx)
#     22 packages / 15.9 MiB (libsystemd0, libgcrypt20, ...), parted (partprobe) 19 / 15.4 MiB, fdisk
#     19 / 16.2 MiB (and its sfdisk only tries BLKRRPART).
#   - stage 1 (initramfs, nothing mounted, `blockdev --rereadpt` works) exists only on qemu-aarch64:
#     the rpi5 board boots without an initramfs, so it cannot be the one path both boards share.
# So: the partition table is rewritten here in sh (MBR: one 32-bit field; GPT: backup header and
# entries moved to the new end, both headers' CRC32 recomputed through gzip's CRC32 trailer), the
# machine reboots once so the kernel reads the new table (a few seconds, once per card), and the next
# boot grows ext4 online with resize2fs. Cost: +3.5 MiB of closure and one extra boot on first boot.
#
# Safety: nothing is written before every check passed (root is the disk's last partition, the table
# agrees with the kernel, 512-byte sectors, ext4, the tools are there). The partition only grows at its
# end, so no data moves. GPT: the new backup (at the new end, outside every partition) is written and
# synced before the primary, in one 33-sector write, replaces the old. A reboot that does not show the
# new size, or a failed resize2fs, is recorded as a failure and never retried in a loop: the system
# boots at its old size and says so.
set -u
state=/pideploy/var/root-grown
pending=/pideploy/var/root-grow.pending
tmp=/run/pideploy-grow-root

say() { echo "pideploy: grow-root: $*"; }

# Records the outcome durably (temp + rename + sync) so it is never attempted again.
record() { # TEXT
    printf '%s\n' "$1" > "$state.tmp" && mv -f "$state.tmp" "$state"
    rm -f "$pending"
    sync
}

# A failure before or after the table change: say it, record it, leave the system as it is.
give_up() { # REASON
    say "FAILED: $1; the root stays as it is and the system boots normally (delete $state to try again)"
    record "result=failed
reason=$1"
    rm -rf "$tmp"
    exit 0
}

# Little-endian unsigned integer of BYTES bytes at OFFSET of FILE.
rd() { # FILE OFFSET BYTES
    od -An -tu"$3" -j "$2" -N "$3" "$1" | tr -d ' \n'
}

# VALUE as BYTES raw little-endian bytes.
le() { # VALUE BYTES
    v=$1 n=$2 fmt=
    while [ "$n" -gt 0 ]; do
        fmt="$fmt\\$(printf %03o $((v & 255)))"
        v=$((v >> 8))
        n=$((n - 1))
    done
    # shellcheck disable=SC2059 # the format is nothing but the octal escapes built above
    printf "$fmt"
}

# Overwrites BYTES bytes at OFFSET of FILE with VALUE (little-endian).
put() { # FILE OFFSET BYTES VALUE
    le "$4" "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# CRC32 (the one GPT uses) of LEN bytes of FILE at OFFSET: gzip's trailer carries exactly that.
crc32() { # FILE OFFSET LEN
    dd if="$1" bs=1 skip="$2" count="$3" status=none | gzip -c | tail -c 8 | od -An -tu4 -N4 | tr -d ' \n'
}

mib() { echo $(($1 / 2048)); }

read -r cmdline < /proc/cmdline
for arg in $cmdline; do
    [ "$arg" = pideploy.growroot=0 ] && { say "off (pideploy.growroot=0 on the kernel command line)"; exit 0; }
done

if [ -e "$state" ]; then
    # Said in one line without a process per step (this runs on every boot).
    done_as=
    while read -r l; do done_as="$done_as${done_as:+ }$l"; done < "$state"
    say "already done on first boot ($done_as); nothing grown"
    exit 0
fi

# --- Where the root is, as the kernel sees it.
majmin=$(awk '$5 == "/" { print $3; exit }' /proc/self/mountinfo)
fstype=$(awk '$5 == "/" { for (i = 7; i <= NF; i++) if ($i == "-") { print $(i + 1); exit } }' /proc/self/mountinfo)
sysp=$(readlink -f "/sys/dev/block/$majmin" 2>/dev/null)
[ -n "$sysp" ] && [ -f "$sysp/partition" ] || give_up "the root ($majmin) is not a partition"
part=${sysp##*/}
disk=${sysp%/*}
disk=${disk##*/}
sysd=/sys/class/block/$disk
[ -f "$sysd/size" ] || give_up "no whole disk for $part"
dev=/dev/$part
ddev=/dev/$disk
read -r partno < "$sysp/partition"
read -r start < "$sysp/start"
read -r size < "$sysp/size"
read -r total < "$sysd/size"
sector=
read -r sector 2>/dev/null < "$sysd/queue/logical_block_size"
[ "$fstype" = ext4 ] || give_up "the root is $fstype, not ext4"
[ "$sector" = 512 ] || give_up "$disk does not have 512-byte sectors"
[ -b "$dev" ] && [ -b "$ddev" ] || give_up "no device node $dev or $ddev"
for t in resize2fs dumpe2fs gzip od dd; do
    command -v "$t" >/dev/null 2>&1 || give_up "$t is missing (the board's base_packages need e2fsprogs)"
done

# The ext4 size in 512-byte sectors, from its superblock.
fs_sectors() {
    dumpe2fs -h "$dev" 2>/dev/null | awk -F: '
        /^Block count:/ { c = $2 + 0 } /^Block size:/ { s = $2 + 0 }
        END { if (c > 0 && s > 0) printf "%d\n", c * (s / 512); else exit 1 }'
}

# --- Second boot after a table change, or nothing left for the table: grow the filesystem.
grow_fs() {
    fs=$(fs_sectors) || give_up "cannot read the ext4 superblock of $dev"
    if [ $((size - fs)) -lt 2048 ]; then
        say "ext4 on $dev already fills its $(mib "$size") MiB partition"
        record "result=nothing-to-grow
partition=$part
partition_mib=$(mib "$size")"
        exit 0
    fi
    say "growing ext4 on $dev from $(mib "$fs") MiB to $(mib "$size") MiB (online, resize2fs)"
    if ! out=$(resize2fs "$dev" 2>&1); then
        echo "$out" | sed 's/^/pideploy: grow-root: resize2fs: /'
        give_up "resize2fs $dev failed (the filesystem keeps its $(mib "$fs") MiB)"
    fi
    echo "$out" | sed 's/^/pideploy: grow-root: resize2fs: /'
    new=$(fs_sectors) || give_up "cannot read the ext4 superblock of $dev after resize2fs"
    say "done: root is $(mib "$new") MiB (was $(mib "$fs") MiB); recorded in $state"
    record "result=grown
partition=$part
table=${table:-unchanged}
partition_mib_before=${before_mib:-$(mib "$size")}
partition_mib=$(mib "$size")
fs_mib_before=$(mib "$fs")
fs_mib=$(mib "$new")"
    exit 0
}

table=
before_mib=
if [ -e "$pending" ]; then
    read -r table want before_mib < "$pending"
    [ "$size" = "$want" ] || give_up "after the reboot the kernel still sees $part at $(mib "$size") MiB, not $(mib "$want") MiB"
    say "the kernel sees $part at its new $(mib "$size") MiB"
    grow_fs
fi

# No room at the end of the disk for even 8 MiB more (a card of the image's size, or QEMU's disk as
# built): whatever the table, the partition cannot grow, so it is not read.
if [ $((total - start - size)) -lt $((16384 + 34)) ]; then
    say "$part already reaches the end of $disk (less than 8 MiB to gain)"
    grow_fs
fi

# --- First boot: read the table from the disk.
rm -rf "$tmp"
mkdir -p "$tmp" || give_up "cannot create $tmp"
# LBA 0..33: the MBR, and for GPT the primary header and (usually) its 128 entries.
dd if="$ddev" of="$tmp/head" bs=512 count=34 status=none || give_up "cannot read $ddev"
[ "$(rd "$tmp/head" 510 2)" = 43605 ] || give_up "$disk has no partition table signature"

# Everything else must end before the root's start, or growing the root would overlap it.
if [ "$(rd "$tmp/head" 450 1)" = 238 ]; then
    table=gpt
    [ "$(dd if="$tmp/head" bs=1 skip=512 count=8 status=none)" = "EFI PART" ] || give_up "$disk: protective MBR without a GPT header"
    hsize=$(rd "$tmp/head" 524 4)
    [ "$(rd "$tmp/head" 536 8)" = 1 ] || give_up "$disk: primary GPT header not at LBA 1"
    elba=$(rd "$tmp/head" 584 8)
    nent=$(rd "$tmp/head" 592 4)
    esz=$(rd "$tmp/head" 596 4)
    [ "$elba" = 2 ] && [ $((nent * esz)) -eq 16384 ] || give_up "$disk: GPT entries are not the usual 128 x 128 bytes at LBA 2"
    # Both CRCs must check out before anything is rewritten from these bytes.
    cp "$tmp/head" "$tmp/hdr" && put "$tmp/hdr" 528 4 0
    [ "$(crc32 "$tmp/hdr" 512 "$hsize")" = "$(rd "$tmp/head" 528 4)" ] || give_up "$disk: primary GPT header CRC mismatch"
    [ "$(crc32 "$tmp/head" 1024 16384)" = "$(rd "$tmp/head" 600 4)" ] || give_up "$disk: GPT entries CRC mismatch"
    ent=$((1024 + (partno - 1) * esz))
    first=$(rd "$tmp/head" $((ent + 32)) 8)
    last=$(rd "$tmp/head" $((ent + 40)) 8)
    [ "$first" = "$start" ] && [ $((last - first + 1)) = "$size" ] || give_up "$disk: GPT entry $partno ($first..$last) disagrees with the kernel ($start+$size)"
    i=0
    while [ $i -lt "$nent" ]; do
        o=$((1024 + i * esz))
        if [ $i -ne $((partno - 1)) ] && [ "$(rd "$tmp/head" $((o + 32)) 8)" -gt "$first" ]; then
            give_up "$disk: partition $((i + 1)) lies after the root; not growing over it"
        fi
        i=$((i + 1))
    done
    # New layout: entries in the 32 sectors before the last one, the backup header in the last.
    bent=$((total - 1 - 32))
    lastusable=$((bent - 1))
    # The root ends on a 1 MiB boundary (gives up < 1 MiB; partitioning tools expect it).
    newlast=$((((lastusable + 1) / 2048) * 2048 - 1))
    newsize=$((newlast - first + 1))
else
    table=mbr
    ent=$((446 + (partno - 1) * 16))
    [ "$partno" -le 4 ] || give_up "$part is a logical partition; only primary ones are grown"
    first=$(rd "$tmp/head" $((ent + 8)) 4)
    [ "$first" = "$start" ] && [ "$(rd "$tmp/head" $((ent + 12)) 4)" = "$size" ] || give_up "$disk: MBR entry $partno disagrees with the kernel ($start+$size)"
    for i in 1 2 3 4; do
        o=$((446 + (i - 1) * 16))
        if [ "$i" -ne "$partno" ] && [ "$(rd "$tmp/head" $((o + 4)) 1)" != 0 ] && [ "$(rd "$tmp/head" $((o + 8)) 4)" -gt "$first" ]; then
            give_up "$disk: partition $i lies after the root; not growing over it"
        fi
    done
    # MBR sizes are 32-bit: on a card over 2 TiB the root ends at 2 TiB.
    end=$total
    [ "$end" -le 4294967295 ] || end=4294967295
    end=$(((end / 2048) * 2048))
    newsize=$((end - first))
fi

gain=$((newsize - size))
if [ "$gain" -lt 16384 ]; then
    # Less than 8 MiB is not worth a reboot; the filesystem may still be smaller than its partition.
    say "$part already reaches the end of $disk (less than 8 MiB to gain)"
    rm -rf "$tmp"
    grow_fs
fi

say "growing partition $partno of $disk ($table) from $(mib "$size") MiB to $(mib "$newsize") MiB"
if [ "$table" = gpt ]; then
    # Entries with the root's new last LBA; primary header pointing at the new backup.
    dd if="$tmp/head" of="$tmp/ents" bs=512 skip=2 count=32 status=none
    put "$tmp/ents" $(((partno - 1) * esz + 40)) 8 "$newlast"
    ecrc=$(crc32 "$tmp/ents" 0 16384)
    dd if="$tmp/head" of="$tmp/prim" bs=512 skip=1 count=1 status=none
    put "$tmp/prim" 32 8 $((total - 1))
    put "$tmp/prim" 48 8 "$lastusable"
    put "$tmp/prim" 88 4 "$ecrc"
    put "$tmp/prim" 16 4 0
    put "$tmp/prim" 16 4 "$(crc32 "$tmp/prim" 0 "$hsize")"
    cp "$tmp/prim" "$tmp/back"
    put "$tmp/back" 24 8 $((total - 1))
    put "$tmp/back" 32 8 1
    put "$tmp/back" 72 8 "$bent"
    put "$tmp/back" 16 4 0
    put "$tmp/back" 16 4 "$(crc32 "$tmp/back" 0 "$hsize")"
    cat "$tmp/ents" "$tmp/back" > "$tmp/tail"
    cat "$tmp/prim" "$tmp/ents" > "$tmp/front"
    # The protective MBR covers the whole disk (capped at 32 bits).
    pm=$((total - 1))
    [ "$pm" -le 4294967295 ] || pm=4294967295
    dd if="$tmp/head" of="$tmp/mbr" bs=512 count=1 status=none
    put "$tmp/mbr" 458 4 "$pm"
    oldback=$(rd "$tmp/head" 544 8)
    dd if="$tmp/tail" of="$ddev" bs=512 seek="$bent" conv=notrunc,fsync status=none ||
        give_up "writing the backup GPT at the end of $disk failed (the primary table is untouched)"
    dd if="$tmp/front" of="$ddev" bs=512 seek=1 conv=notrunc,fsync status=none ||
        give_up "writing the primary GPT of $disk failed; the backup GPT at the end holds the new table: if the root is not found on the next boot, rebuild the primary from it on another machine (gdisk recovery menu: b and c, then w)"
    dd if="$tmp/mbr" of="$ddev" bs=512 count=1 conv=notrunc,fsync status=none ||
        say "warning: the protective MBR of $disk still has the old size (harmless)"
    # The old backup header now lies in the grown root, past the end of its filesystem: clear it so
    # no tool mistakes it for a table.
    if [ "$oldback" -gt "$last" ] && [ "$oldback" -lt "$bent" ]; then
        dd if=/dev/zero of="$ddev" bs=512 seek="$oldback" count=1 conv=notrunc,fsync status=none
    fi
else
    dd if="$tmp/head" of="$tmp/mbr" bs=512 count=1 status=none
    put "$tmp/mbr" $((ent + 12)) 4 "$newsize"
    # The CHS fields stay as they are: nothing reads them for LBA partitions (pideploy writes zeros).
    dd if="$tmp/mbr" of="$ddev" bs=512 count=1 conv=notrunc,fsync status=none ||
        give_up "writing the MBR of $disk failed"
fi
sync
rm -rf "$tmp"
printf '%s %s %s\n' "$table" "$newsize" "$(mib "$size")" > "$pending.tmp" && mv -f "$pending.tmp" "$pending"
sync
say "partition table written; rebooting once so the kernel reads it (the filesystem grows on the next boot)"
mount -o remount,ro / 2>/dev/null
sync
reboot -f
sleep 30
give_up "reboot -f did not reboot"
