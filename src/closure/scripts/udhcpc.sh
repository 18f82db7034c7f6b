#!@BUSYBOX@ sh
# busybox udhcpc event script: applies a DHCP lease to the interface. The unit may set METRIC for the
# default route (wlan0 600, so a wired default route, metric 0, wins while both are up), and the
# name servers of every interface are merged, eth0's first. The static wlan0 unit calls it too.
# shellcheck disable=SC2154 # interface, ip, router, dns, ...: udhcpc sets them for this script
resolv() {
    mkdir -p /run/pideploy/resolv.d
    : > "/run/pideploy/resolv.d/$interface.tmp"
    for d in ${dns:-}; do echo "nameserver $d" >> "/run/pideploy/resolv.d/$interface.tmp"; done
    mv -f "/run/pideploy/resolv.d/$interface.tmp" "/run/pideploy/resolv.d/$interface"
    cat /run/pideploy/resolv.d/eth0 2>/dev/null > /run/resolv.conf.tmp
    for f in /run/pideploy/resolv.d/*; do
        case $f in */eth0|*.tmp|*"/*") ;; *) cat "$f" >> /run/resolv.conf.tmp ;; esac
    done
    mv -f /run/resolv.conf.tmp /run/resolv.conf
}
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "${router:-}" ]; then
            set -- $router
            ip route replace default via "$1" dev "$interface" metric "${METRIC:-0}"
        fi
        resolv
        echo "pideploy: $interface has $ip (${how:-dhcp})" ;;
esac
exit 0
