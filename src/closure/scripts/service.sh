#!@BUSYBOX@ sh
# Service @NAME@, started by busybox init. Records its pid and definition digest so a later
# activation can tell whether it must be restarted.
mkdir -p /run/pideploy/services
echo $$ > /run/pideploy/services/@NAME@.pid
cp /etc/pideploy/services/@NAME@.digest /run/pideploy/services/@NAME@.digest
@BODY@
