#!@BUSYBOX@ sh
# Shutdown tasks (busybox init, shutdown action): stop everything, flush, and leave the root
# filesystem read-only so its journal is clean.
echo "pideploy: shutting down"
kill -TERM -1 2>/dev/null
sleep 1
kill -KILL -1 2>/dev/null
sync
umount /boot/firmware 2>/dev/null
mount -o remount,ro / && echo "pideploy: root is read-only"
sync
# A reboot with an argument (`0 tryboot` makes the Pi firmware boot tryboot.txt once): busybox's
# reboot cannot pass one, so reboot(2) is called here, after the root is read-only. 142 is
# __NR_reboot on arm64; the magic numbers and LINUX_REBOOT_CMD_RESTART2 are from linux/reboot.h.
arg=$(cat /run/pideploy/reboot-arg 2>/dev/null)
if [ -n "$arg" ]; then
    echo "pideploy: rebooting with argument '$arg'"
    perl -e 'syscall(142, 0xfee1dead, 0x28121969, 0xa1b2c3d4, $ARGV[0]); print STDERR "pideploy: reboot($ARGV[0]) failed: $!\n"' "$arg"
fi
