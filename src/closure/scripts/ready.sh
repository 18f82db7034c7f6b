#!@BUSYBOX@ sh
# Prints the readiness marker once the ssh server listens (or at once without one), so tools
# watching the console connect only when a login can succeed.
. /etc/pideploy/system.env
if [ "$SSH_ENABLE" = 1 ]; then
    i=0
    while ! netstat -ltn 2>/dev/null | grep -q ":$SSH_PORT "; do
        i=$((i + 1))
        [ $i -lt 600 ] || { echo "PIDEPLOY-FAIL ssh server did not start"; exit 1; }
        usleep 100000
    done
fi
# This boot worked: failed boots counted by stage 2 no longer count as "in a row".
if [ -e /pideploy/var/failed-boots ]; then rm -f /pideploy/var/failed-boots; sync; fi
# Straight to the console as well as to the journal (StandardOutput=journal): the journal forwards
# to the console only once journald runs, seconds later on a first boot.
line="PIDEPLOY-READY $(readlink /run/current-system)"
echo "$line"
echo "$line" > /dev/console
