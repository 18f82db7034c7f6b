#!/bin/sh
# Benchmark of a QEMU boot to an SSH login (not run by cargo test): boots IMAGE with `pideploy qemu`
# RUNS times (TCG, one vCPU, as the tests do) and prints, for each run and as the median, the wall
# time from starting `pideploy qemu` to the first successful `ssh … true` (host key checked against
# the line the guest printed), and to the console's PIDEPLOY-READY line.
#
#   sh benches/boot.sh IMAGE KEY            # KEY: private key authorized for user pi in IMAGE
#   RUNS=5 PIDEPLOY=path/to/pideploy sh benches/boot.sh IMAGE KEY
#
# The image is copied before each run, so every boot is a first boot of the same card.
# Compare two builds by running it on an image of each, one after the other, on a quiet machine.
set -eu
image=$1
key=$2
runs=${RUNS:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
pideploy=${PIDEPLOY:-$repo/target/debug/pideploy}
work=$(mktemp -d)
trap 'kill "$vm" 2>/dev/null; rm -rf "$work"' EXIT
vm=
now() { date +%s.%N; }
times=
for i in $(seq 1 "$runs"); do
    cp --sparse=always "$image" "$work/disk.img"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    start=$(now)
    "$pideploy" qemu "$work/disk.img" --ssh-port "$port" --timeout 300 > "$work/console.log" 2>&1 &
    vm=$!
    ready=
    until [ -n "$ready" ]; do
        grep -q PIDEPLOY-READY "$work/console.log" && ready=$(now)
        kill -0 "$vm" 2>/dev/null || { cat "$work/console.log"; echo "boot $i: the VM ended" >&2; exit 1; }
        sleep 0.1
    done
    hostkey=$(sed -n 's/.*ssh host key: \(ssh-[^ ]* [^ ]*\).*/\1/p' "$work/console.log" | head -n1)
    echo "[127.0.0.1]:$port $hostkey" > "$work/known_hosts"
    until ssh -q -o StrictHostKeyChecking=yes -o UserKnownHostsFile="$work/known_hosts" \
        -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 -i "$key" -p "$port" \
        pi@127.0.0.1 true 2>/dev/null; do
        sleep 0.1
    done
    login=$(now)
    t=$(echo "$login - $start" | bc)
    r=$(echo "$ready - $start" | bc)
    printf 'boot %d: ssh login after %.1f s (READY after %.1f s)\n' "$i" "$t" "$r"
    times="$times $t"
    # QEMU first noted, then the harness stopped (it would restart a QEMU that ended), then QEMU.
    qemu=$(pgrep -P "$vm" || true)
    kill "$vm" 2>/dev/null || true
    wait "$vm" 2>/dev/null || true
    [ -z "$qemu" ] || kill $qemu 2>/dev/null || true
    vm=
done
median=$(for t in $times; do echo "$t"; done | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
printf 'median of %d boots to an ssh login: %.1f s\n' "$runs" "$median"
