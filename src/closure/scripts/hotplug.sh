#!@BUSYBOX@ sh
# Run by busybox `uevent` (started by load-modules) for every kernel uevent, with the event's
# variables in the environment: a device that appears after boot gets its module.
[ "${ACTION:-}" = add ] && [ -n "${MODALIAS:-}" ] || exit 0
exec @BUSYBOX@ modprobe -q "$MODALIAS"
