#!/bin/busybox sh
# pideploy stage 1 (initramfs): load the board's kernel modules, find the root partition named by
# root= on the kernel command line, and hand over to the generation's init (init=).
# Every failure prints a PIDEPLOY-FAIL line and stops the machine: never a shell waiting forever.
/bin/busybox mkdir -p /proc /sys /dev /newroot
/bin/busybox --install -s /bin
export PATH=/bin

on_fail=poweroff
fail() {
    echo "PIDEPLOY-FAIL stage1: $*"
    echo "pideploy: cannot boot this generation; $on_fail in 3 s"
    sleep 3
    if [ "$on_fail" = reboot ]; then reboot -f; else poweroff -f; fi
    # If even that fails there is nothing left to do but stop.
    while :; do sleep 3600; done
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"

root=
init=
rootwait=10
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        root=*) root=${arg#root=} ;;
        init=*) init=${arg#init=} ;;
        pideploy.fail=reboot) on_fail=reboot ;;
        pideploy.rootwait=*) rootwait=${arg#pideploy.rootwait=} ;;
    esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
[ -n "$init" ] || fail "no init= on the kernel command line"
echo "pideploy: stage 1, root=$root init=$init"

for m in $(cat /lib/modules/load-order); do
    insmod "/lib/modules/$m.ko" || fail "cannot load kernel module $m"
done

# PARTUUID the way the kernel prints it: MBR "<disk signature>-<partition number>",
# GPT the partition's unique GUID in lower case.
hexbytes() { od -An -tx1 -v -j "$2" -N "$3" "$1" | tr -d ' \n'; }
partuuid() {
    part=$1
    disk=$(basename "$(dirname "$(readlink -f "/sys/class/block/$part")")")
    n=$(cat "/sys/class/block/$part/partition")
    if [ "$(hexbytes "/dev/$disk" 450 1)" = ee ]; then
        lba=$(od -An -tu8 -j 584 -N 8 "/dev/$disk" | tr -d ' ')
        esz=$(od -An -tu4 -j 596 -N 4 "/dev/$disk" | tr -d ' ')
        g=$(hexbytes "/dev/$disk" $((lba * 512 + (n - 1) * esz + 16)) 16)
        # shellcheck disable=SC2046 # one positional parameter per byte, by design
        set -- $(echo "$g" | sed 's/../& /g')
        echo "$4$3$2$1-$6$5-$8$7-$9${10}-${11}${12}${13}${14}${15}${16}"
    else
        # shellcheck disable=SC2046 # one positional parameter per byte, by design
        set -- $(hexbytes "/dev/$disk" 440 4 | sed 's/../& /g')
        printf '%s%s%s%s-%02x\n' "$4" "$3" "$2" "$1" "$n"
    fi
}
find_root() {
    case "$root" in
        PARTUUID=*)
            want=$(echo "${root#PARTUUID=}" | tr 'A-F' 'a-f')
            for p in /sys/class/block/*; do
                [ -f "$p/partition" ] || continue
                if [ "$(partuuid "$(basename "$p")")" = "$want" ]; then
                    echo "/dev/$(basename "$p")"
                    return 0
                fi
            done ;;
        LABEL=*|UUID=*) findfs "$root" 2>/dev/null && return 0 ;;
        /dev/*) [ -b "$root" ] && echo "$root" && return 0 ;;
    esac
    return 1
}
dev=
i=0
while [ $i -lt $((rootwait * 10)) ]; do
    dev=$(find_root) && break
    dev=
    usleep 100000
    i=$((i + 1))
done
[ -n "$dev" ] || fail "root device $root not found after ${rootwait}s"
echo "pideploy: root is $dev"
mount -t ext4 -o rw "$dev" /newroot || fail "cannot mount $dev as ext4"
[ -x "/newroot$init" ] || fail "generation init $init is missing on $dev"
umount /proc /sys
mount --move /dev /newroot/dev 2>/dev/null || umount /dev
# shellcheck disable=SC2093 # exec returns only when switch_root could not start
exec switch_root /newroot "$init"
fail "switch_root to $init failed"
