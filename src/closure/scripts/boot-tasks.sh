#!@BUSYBOX@ sh
# Boot tasks of a pideploy system, run by stage 2 after activation and before systemd starts (so
# before the network and the ssh server): a static address, the boot partition at /boot/firmware,
# a deploy left pending, and the ssh host key (printed to the console so the first connection can
# be checked against it). systemd sets the host name and brings up lo; udev loads the modules
# devices ask for, systemd-modules-load the config's.
set -u
. /etc/pideploy/system.env

main() {
    ip link set "$NET_IFACE" up 2>/dev/null || echo "pideploy: warning: no network interface $NET_IFACE"
    if [ "$NET_MODE" = static ]; then
        ip addr add "$NET_ADDRESS" dev "$NET_IFACE"
        [ -z "$NET_GATEWAY" ] || ip route add default via "$NET_GATEWAY" dev "$NET_IFACE"
        # Where the udhcpc script merges every interface's name servers from (eth0's first).
        mkdir -p /run/pideploy/resolv.d
        : > /run/resolv.conf.tmp
        for d in $NET_DNS; do echo "nameserver $d" >> /run/resolv.conf.tmp; done
        cp /run/resolv.conf.tmp /run/pideploy/resolv.d/eth0
        mv -f /run/resolv.conf.tmp /run/resolv.conf
        echo "pideploy: $NET_IFACE has $NET_ADDRESS"
    fi

    # The boot partition is partition 1 of the disk that holds /.
    majmin=$(awk '$5 == "/" { print $3; exit }' /proc/self/mountinfo)
    part=$(readlink -f "/sys/dev/block/$majmin")
    bootdev=
    for p in "$(dirname "$part")"/*/partition; do
        [ "$(cat "$p" 2>/dev/null)" = 1 ] && bootdev=/dev/$(basename "$(dirname "$p")")
    done
    # The boot FAT is checked and repaired before it is mounted writable: a power cut while a deploy
    # wrote a boot entry leaves lost clusters or a dirty bit that the kernel's vfat neither repairs nor
    # clears, and a later write could spread the damage (the FAT is mounted here, not from fstab, so
    # systemd-fsck never sees it). fsck.fat exits 0 when it found nothing, 1 when it found (and
    # with -a repaired) errors, 2 on a usage error (dosfstools' fsck.fat(8), EXIT STATUS).
    fsck_boot() {
        out=$(fsck.fat -a "$1" 2>&1)
        rc=$?
        # Its first line is the version and its last the summary; what is between are the findings
        # (without -a's "Auto-correcting." and "*** Filesystem was changed ***" chatter).
        found=$(echo "$out" | sed '1d;$d;s/^ *//;/^Auto-correcting/d;/^\*\*\*/d;/^Writing changes/d;/^Performing changes/d' | tr '\n' ' ' | sed 's/ *$//')
        case "$rc" in
            0) echo "pideploy: boot FAT on $1 checked: clean" ;;
            1) echo "pideploy: boot FAT on $1 repaired by fsck.fat -a: $found" ;;
            *) echo "pideploy: warning: fsck.fat -a $1 failed (exit $rc): $(echo "$out" | tail -n1); mounting it unrepaired" ;;
        esac
    }
    [ -z "$bootdev" ] || fsck_boot "$bootdev"
    if [ -n "$bootdev" ] && mount -t vfat -o rw,noatime "$bootdev" /boot/firmware; then
        echo "pideploy: boot partition $bootdev on /boot/firmware"
    else
        echo "pideploy: warning: boot partition not mounted (generations cannot add boot entries)"
    fi

    # Settled before anyone can log in: a lock from the last boot is stale, and a generation that was
    # waiting for its confirmation (power lost during a deploy, or on trial through tryboot) is kept,
    # finished or dropped by what the firmware booted (the deploying agent's boot-check).
    rm -rf /pideploy/var/lock
    if [ -f /pideploy/var/pending ]; then
        agent=$(sed -n 's/^agent //p' /pideploy/var/pending)
        if [ -f "$agent" ]; then
            sh "$agent" boot-check ""
        else
            echo "pideploy: warning: a deploy was pending but its agent $agent is gone; run pideploy generations"
        fi
    fi

    if [ "$SSH_ENABLE" = 1 ]; then
        key=/etc/dropbear/dropbear_ed25519_host_key
        [ -s "$key" ] || dropbearkey -t ed25519 -f "$key" >/dev/null 2>&1
        line="pideploy: ssh host key: $(dropbearkey -y -f "$key" | grep '^ssh-')"
        echo "$line"
        # The other login terminals show it before their prompt (pideploy-hostkey@.service).
        echo "$line" > /run/pideploy/ssh-host-key.tmp && mv -f /run/pideploy/ssh-host-key.tmp /run/pideploy/ssh-host-key
    fi
}
# The lines go to the console (stage 2's output) and, through pideploy-boot-log.service, into the
# journal once journald runs.
mkdir -p /run/pideploy
main 2>&1 | tee /run/pideploy/boot-tasks.log
