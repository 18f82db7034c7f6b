#!@BUSYBOX@ sh
# pideploy stage 2: PID 1 of generation @SYSTEM@. Mount the kernel filesystems, grow the root on a
# first boot, activate this generation, run the boot tasks, then hand PID 1 to systemd, which
# starts the generation's units (ssh server, services, getty) and runs the shutdown. Activation
# comes first so systemd reads this generation's /etc from its start.
bb=@BUSYBOX@
sys=$($bb dirname "$0")
# A failed boot never waits for someone. With pideploy.fail=reboot (the rpi5 board's command line:
# a halted Pi 5 waits for its power button) the machine restarts, so a generation on trial through
# tryboot falls back to the committed one. A generation that fails 3 boots in a row halts with a
# message instead of restarting forever; the count is kept on the root when it is already writable,
# and the next boot that gets as far as `ready` clears it.
fails=/pideploy/var/failed-boots
fail() {
    echo "PIDEPLOY-FAIL stage2: $*"
    action=poweroff
    if $bb grep -q 'pideploy.fail=reboot' /proc/cmdline 2>/dev/null; then
        action=reboot
        n=$($bb cat "$fails" 2>/dev/null)
        case "$n" in ''|*[!0-9]*) n=0 ;; esac
        n=$((n + 1))
        if { echo "$n" > "$fails.tmp"; } 2>/dev/null && $bb mv -f "$fails.tmp" "$fails"; then
            $bb sync
            if [ "$n" -ge 3 ]; then
                echo "pideploy: $n boots in a row failed; halting instead of restarting again (fix the card, or power-cycle to try once more)"
                action=poweroff
            else
                echo "pideploy: failed boot $n of 3 in a row; restarting in 3 s"
            fi
        else
            echo "pideploy: restarting in 3 s (the root is read-only here, so this failure is not counted)"
        fi
    fi
    $bb sleep 3
    $bb $action -f
    while :; do $bb sleep 3600; done
}
$bb mkdir -p /proc /sys /dev /run
$bb mount -t proc proc /proc || fail "mount /proc"
$bb mount -t sysfs sysfs /sys || fail "mount /sys"
$bb grep -q ' /dev ' /proc/mounts || $bb mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run || fail "mount /run"
# setuid wrappers need a filesystem without nosuid; only activation writes there.
$bb mkdir -p /run/wrappers
$bb mount -t tmpfs -o mode=0755,nodev tmpfs /run/wrappers || fail "mount /run/wrappers"
$bb mount -o remount,rw / || fail "remount / read-write"
$bb mkdir -p /run/busybox
$bb --install -s /run/busybox
export PATH=/run/wrappers/bin:/run/current-system/sw/sbin:/run/current-system/sw/bin:/run/current-system/sw/usr/sbin:/run/current-system/sw/usr/bin:/run/busybox
# The firmware armed the hardware watchdog (tryboot.txt's kernel_watchdog_timeout, which it passes
# on as watchdog.open_timeout=): kick it from here until the trial is settled.
case " $($bb cat /proc/cmdline) " in
    *" watchdog.open_timeout="*) "$sys/watchdog-feeder" & ;;
esac
$bb ln -sfn "$sys" /run/booted-system
$bb ln -sfn "$sys" /run/current-system
# A machine id of its own, made once on the card: an empty one would make systemd treat every boot
# as the first (ConditionFirstBoot) and an id in the image would be shared by every card flashed
# from it. machine-id(5): 32 lower-case hex digits and a newline.
if ! $bb grep -qx '[0-9a-f]\{32\}' /etc/machine-id 2>/dev/null; then
    id=$($bb tr -d '-' < /proc/sys/kernel/random/uuid)
    { echo "$id" > /etc/machine-id.tmp && $bb mv -f /etc/machine-id.tmp /etc/machine-id; } 2>/dev/null \
        || echo "pideploy: warning: cannot write /etc/machine-id; systemd makes a transient one"
fi
# The clock, before anything stamps a time: never behind the last synchronised time, which
# systemd-timesyncd keeps as the mtime of its clock file (systemd-timesyncd.service(8)). A Pi whose
# RTC has no battery starts from the time it last knew, not 1970 (timesyncd would do the same, but
# only once systemd starts it, after SSH is up).
saved=$($bb stat -c %Y /var/lib/systemd/timesync/clock 2>/dev/null || echo 0)
if [ "$saved" -gt "$($bb date +%s)" ] && $bb date -u -s "@$saved" >/dev/null; then
    echo "pideploy: clock set forward to the last synchronised time, $($bb date -u '+%Y-%m-%d %H:%M:%S') UTC"
fi
# First boot on a card bigger than the image: the root grows before anything else writes to it,
# alone on the CPU (under systemd it raced every other start job), and may reboot once. Its lines
# go to the console; the outcome is kept in /pideploy/var/root-grown.
"$sys/grow-root"
echo "pideploy: activating $sys"
"$sys/activate" --boot || fail "activation of $sys failed"
# Before systemd, so before anyone can log in: the boot partition, a deploy left pending, the host
# key. A failure here is reported and the boot goes on (the system stays reachable to fix it).
# The host name first (systemd would set the same from /etc/hostname): the host key line names it.
[ ! -s /etc/hostname ] || $bb hostname -F /etc/hostname
"$sys/boot-tasks" || echo "pideploy: warning: the boot tasks failed (their lines are above)"
systemd=$sys/sw/lib/systemd/systemd
[ -x "$systemd" ] || fail "this generation has no systemd ($systemd)"
# shellcheck disable=SC2093 # exec returns only when systemd could not start
exec "$systemd"
fail "cannot start systemd"
