#!@BUSYBOX@ sh
# Kicks the hardware watchdog that the Pi firmware armed for a generation on trial, from stage 2
# until the trial is settled (confirmed or reverted), then disarms it.
#
# tryboot.txt (never config.txt) carries kernel_watchdog_timeout=N: the firmware starts the
# watchdog before the kernel and puts watchdog.open_timeout=N on the command line; Linux keeps it
# alive until /dev/watchdog is opened or N seconds pass, then the OS must kick it, or the Pi resets
# (https://www.raspberrypi.com/documentation/computers/config_txt.html#kernel_watchdog_timeout),
# and a reset boots config.txt, the committed generation: "since the flag is cleared before
# starting the firmware, a crash or reset will cause the original config.txt file to be loaded"
# (https://www.raspberrypi.com/documentation/computers/raspberry-pi.html#fail-safe-os-updates-tryboot).
#
# The trial is open while /pideploy/var/pending is a tryboot record (the agent's boot-check drops
# it for a generation that is not running, its waiter removes it on commit or revert). Then 'V'
# before closing disarms the watchdog (the kernel's magic close). A trial still open after
# LIMIT seconds (pideploy.trial_limit=, default 900: far beyond a boot and the deployer's
# confirmation) is not kicked any more, so even a trial whose waiter hangs resets by itself.
# Killed at shutdown without the 'V', the watchdog stays armed and resets a machine that hangs on
# the way down.
set -u
pending=/pideploy/var/pending
limit=900
open=60
for arg in $(cat /proc/cmdline); do
    case "$arg" in
        pideploy.trial_limit=*) limit=${arg#pideploy.trial_limit=} ;;
        watchdog.open_timeout=*) open=${arg#watchdog.open_timeout=} ;;
    esac
done
case "$limit" in ''|*[!0-9]*) limit=900 ;; esac
case "$open" in ''|*[!0-9]*) open=60 ;; esac

dev=/dev/watchdog
i=0
# The driver may be a module that the boot tasks' coldplug loads after stage 2 has started; the
# kernel keeps the watchdog alive for the open timeout, so wait that long for the device.
while [ ! -c "$dev" ] && [ $i -lt $((open * 10)) ]; do usleep 100000; i=$((i + 1)); done
if [ ! -c "$dev" ]; then
    echo "pideploy: warning: the firmware armed a watchdog but there is no $dev; this trial resets when the kernel stops kicking it"
    exit 1
fi
# (A failed open ends this shell with sh's own message, with the same outcome.)
exec 3>"$dev"
echo "pideploy: watchdog: opened $dev; kicked until the trial is settled (at most ${limit}s)"

trial_open() { [ -f "$pending" ] && grep -qx 'kind tryboot' "$pending"; }
start=$(cut -d. -f1 /proc/uptime)
while trial_open; do
    if [ $(($(cut -d. -f1 /proc/uptime) - start)) -ge "$limit" ]; then
        echo "pideploy: watchdog: the trial is not settled after ${limit}s; no longer kicking the watchdog, the machine resets into the committed generation"
        # Held open without kicks until the reset.
        while :; do sleep 3600; done
    fi
    printf k >&3
    sleep 2
done
printf V >&3
exec 3>&-
echo "pideploy: watchdog: the trial is settled; watchdog disarmed"
