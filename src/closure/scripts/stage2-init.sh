#!@BUSYBOX@ sh
# pideploy stage 2: PID 1 of generation @SYSTEM@. Mount the kernel filesystems, activate this generation,
# then hand PID 1 to busybox init, which runs /etc/inittab (boot tasks, services, getty, shutdown).
bb=@BUSYBOX@
sys=$($bb dirname "$0")
fail() {
    echo "PIDEPLOY-FAIL stage2: $*"
    $bb sleep 3
    if $bb grep -q 'pideploy.fail=reboot' /proc/cmdline 2>/dev/null; then $bb reboot -f; fi
    $bb poweroff -f
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
$bb ln -sfn "$sys" /run/booted-system
$bb ln -sfn "$sys" /run/current-system
echo "pideploy: activating $sys"
"$sys/activate" --boot || fail "activation of $sys failed"
exec $bb init
fail "cannot start busybox init"
