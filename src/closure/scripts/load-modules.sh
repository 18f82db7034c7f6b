#!@BUSYBOX@ sh
# Kernel modules at boot (run by boot-tasks): a uevent listener so devices that appear from now on
# get their module (hotplug), pi.toml's boot.kernel_modules, then a module for every device present
# (coldplug: each device's sysfs `modalias` matched against modules.alias). A module that fails is
# logged, one line each, and never stops the boot.
set -u
bb=@BUSYBOX@
sys=$($bb dirname "$0")
dir=/lib/modules/$($bb uname -r)
if [ ! -f "$dir/modules.dep" ]; then
    echo "pideploy: warning: no $dir/modules.dep (this kernel's modules are not on the root); no modules loaded"
    exit 0
fi
# First, so a device that appears while the others load (a USB device behind a controller whose
# driver coldplug loads) is not missed. A netlink listener rather than /proc/sys/kernel/hotplug:
# Debian's kernel has no uevent helper (CONFIG_UEVENT_HELPER is off). It runs the booted system's
# helper for as long as the machine runs.
$bb setsid $bb uevent /run/booted-system/hotplug < /dev/null > /dev/null 2>&1 &
while read -r m; do
    [ -n "$m" ] || continue
    if out=$($bb modprobe "$m" 2>&1); then
        echo "pideploy: kernel module $m loaded"
    else
        echo "pideploy: warning: kernel module $m (boot.kernel_modules) not loaded: ${out:-modprobe failed}"
    fi
done < "$sys/kernel-modules"
aliases=/run/pideploy-modaliases
$bb find /sys/devices -name modalias -type f 2>/dev/null | $bb xargs -r $bb cat 2>/dev/null \
    | $bb sort -u > "$aliases"
# Bounded: a driver that hangs in its probe must not hold the boot forever.
# xargs says 123 when some device has no module (most have none), which is normal.
$bb timeout 120 $bb xargs -r $bb modprobe -q -a < "$aliases"
st=$?
case $st in
    0|123) ;;
    *) echo "pideploy: warning: coldplug stopped early (status $st: timed out after 120 s, or modprobe crashed)" ;;
esac
echo "pideploy: coldplug: $($bb wc -l < "$aliases") device aliases; modules loaded:" \
    $($bb awk '{ print $1 }' /proc/modules | $bb sort)
