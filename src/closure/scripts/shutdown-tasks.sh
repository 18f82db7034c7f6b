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
