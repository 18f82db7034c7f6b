#!@BUSYBOX@ sh
# Prints the ssh host key line (written by the boot tasks) on the login terminal $1, before its
# getty starts (pideploy-hostkey@.service). /dev/console, where the boot tasks printed it already,
# is skipped: the line appears once on every terminal.
tty=$1
active=$(@BUSYBOX@ awk '{ print $NF }' /sys/class/tty/console/active 2>/dev/null)
[ "$tty" != "$active" ] || exit 0
[ -s /run/pideploy/ssh-host-key ] || exit 0
@BUSYBOX@ cat /run/pideploy/ssh-host-key > "/dev/$tty"
