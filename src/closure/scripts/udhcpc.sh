#!@BUSYBOX@ sh
# busybox udhcpc event script: applies a DHCP lease to the interface.
case "$1" in
    deconfig)
        ip addr flush dev "$interface"
        ip link set "$interface" up ;;
    bound|renew)
        ip addr flush dev "$interface"
        ip addr add "$ip/${mask:-24}" dev "$interface"
        if [ -n "${router:-}" ]; then
            set -- $router
            ip route replace default via "$1" dev "$interface"
        fi
        : > /run/resolv.conf.tmp
        for d in ${dns:-}; do echo "nameserver $d" >> /run/resolv.conf.tmp; done
        mv -f /run/resolv.conf.tmp /run/resolv.conf
        echo "pideploy: $interface has $ip (dhcp)" ;;
esac
exit 0
