#!/bin/sh
# Try pideploy without a Pi: build a qemu-aarch64 image from Debian arm64 packages with the embedded
# default config, boot it under QEMU (boot entry chosen the way the Pi firmware would), log in over
# SSH with a throwaway key checked against the host key the guest printed, then power it off.
#   sh qemu/try.sh            (work files go to .pideploy-work/)
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)
work=$top/.pideploy-work
mkdir -p "$work"

echo "== 1/6 system packages (qemu, e2fsprogs, dosfstools, arm64 apt lists)"
sh .ci/install-deps.sh

echo "== 2/6 building pideploy"
cargo build -q --bin pideploy
export PIDEPLOY="$top/target/debug/pideploy"
export PIDEPLOY_CACHE_DIR="$work/cache" PIDEPLOY_STORE_DIR="$work/store"

echo "== 3/6 resolving and pinning Debian arm64 packages (pideploy lock)"
sh qemu/debian-arm64.sh indexes "$work/index"
"$PIDEPLOY" lock --board qemu-aarch64 --lock "$work/pideploy.lock" \
    --index debian="$work/index/debian.Packages" \
    --index debian-security="$work/index/debian-security.Packages"

echo "== 4/6 getting the pinned .debs through apt and importing them (pideploy cache import)"
sh qemu/debian-arm64.sh debs "$work/pideploy.lock" "$work/debs"
"$PIDEPLOY" cache import "$work"/debs/*.deb

echo "== 5/6 building the image (pideploy image)"
[ -f "$work/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C try-pideploy -f "$work/id_ed25519"
rm -f "$work/pi.img"
"$PIDEPLOY" image --board qemu-aarch64 --lock "$work/pideploy.lock" \
    --authorized-key "$work/id_ed25519.pub" -o "$work/pi.img"
"$PIDEPLOY" inspect "$work/pi.img" | sed -n '1,4p'

echo "== 6/6 booting it (pideploy qemu), logging in over SSH"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=$work/console.log
"$PIDEPLOY" qemu "$work/pi.img" --ssh-port "$port" --timeout 300 > "$log" 2>&1 &
vm=$!
i=0
until grep -q 'PIDEPLOY-READY' "$log"; do
    i=$((i + 1))
    if [ $i -gt 240 ] || ! kill -0 $vm 2>/dev/null; then
        cat "$log"; echo "the image did not come up; console above" >&2; kill $vm 2>/dev/null; exit 1
    fi
    sleep 0.5
done
grep -v '^\[ ' "$log" | sed -n '/stage 1/,/PIDEPLOY-READY/p'
key=$(sed -n 's/.*ssh host key: \(ssh-[^ ]* [^ ]*\).*/\1/p' "$log" | head -n1)
echo "[127.0.0.1]:$port $key" > "$work/known_hosts"
ssh_pi() {
    ssh -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" -o IdentitiesOnly=yes \
        -o ConnectTimeout=20 -i "$work/id_ed25519" -p "$port" pi@127.0.0.1 "$@"
}
echo "-- logged in as pi over SSH:"
ssh_pi 'echo "  $(whoami)@$(hostname): $(uname -sm), running $(readlink /run/current-system)"; echo "  default: $(readlink /pideploy/var/profiles/system)"'
ssh_pi 'echo "  systemd: $(sudo -n systemctl is-system-running --wait), $(sudo -n systemctl list-units --type=service --state=running --no-legend | wc -l) services running"'
ssh_pi 'sudo -n poweroff' || true
wait $vm && echo "== done: the VM powered off cleanly. Image: $work/pi.img (boot it again: $PIDEPLOY qemu $work/pi.img)"
