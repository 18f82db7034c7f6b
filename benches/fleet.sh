#!/bin/sh
# Benchmark of fleet deploys (not run by cargo test): wall time of `pideploy switch` of one closure
# to 1 target, then to HOSTS targets at once from an inventory (default --limit, and --limit HOSTS),
# every target a throwaway root behind its own OpenSSH sshd on 127.0.0.1 (started here, one host
# key each, killed by PID on exit). Every run starts from empty roots, so each target receives the
# whole closure. The build is done once beforehand and not timed. Prints the best of RUNS wall-clock
# times and the fleet/single ratios.
#
#   sh benches/fleet.sh                    # HOSTS=20 RUNS=2, release binary (built if missing)
#   PIDEPLOY=path/to/pideploy HOSTS=10 RUNS=3 sh benches/fleet.sh
#
# Needs what the tests need (.ci/install-deps.sh) plus openssh-server, openssh-client, rsync and
# GNU time (/usr/bin/time, Debian package `time`).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/benches/common.sh"
bench_user
hosts=${HOSTS:-20}
runs=${RUNS:-2}
work=${BENCH_DIR:-$repo/target/bench-fleet}
pideploy=${PIDEPLOY:-$repo/target/release/pideploy}
if [ ! -x "$pideploy" ] || ! "$pideploy" switch --help 2>&1 | grep -q -- '--hosts'; then
    (cd "$repo" && cargo build --release --bin pideploy)
fi
export PIDEPLOY_CACHE_DIR="$work/cache" PIDEPLOY_STORE_DIR="$work/store"
export LC_ALL=C
mkdir -p "$work"
cd "$work"

# --- HOSTS sshd on free 127.0.0.1 ports, one authorized client key; all killed by PID on exit.
rm -rf roots
mkdir -p roots
bench_sshds "$hosts"
ports=$PORTS

# --- Inputs, untimed: one config, its lock, packages through apt, one build.
mkdir -p a
printf 'board = "qemu-aarch64"\nhostname = "fleetpi"\n\n[[users]]\nname = "pi"\nuid = 1000\nssh_authorized_keys = ["%s"]\n' \
    "$(cat ssh/id_ed25519.pub)" > a/pi.toml
idx="$repo/target/debian-arm64/index"
debs="$repo/target/debian-arm64/debs"
[ -s "$idx/debian.Packages" ] || sh "$repo/qemu/debian-arm64.sh" indexes "$idx"
"$pideploy" -q lock -c a/pi.toml --lock a/pideploy.lock \
    --index "debian=$idx/debian.Packages" --index "debian-security=$idx/debian-security.Packages"
PIDEPLOY="$pideploy" sh "$repo/qemu/debian-arm64.sh" debs a/pideploy.lock "$debs"
"$pideploy" -q cache import "$debs"/*.deb
top=$("$pideploy" -q build -c a/pi.toml --lock a/pideploy.lock)

# --- The inventory: host tNN -> its own sshd, its own root.
{
    printf '[defaults]\nconfig = "a/pi.toml"\nidentity = ["ssh/id_ed25519"]\nknown_hosts = "ssh/known_hosts"\n\n'
    i=1
    for p in $ports; do
        printf '[[host]]\nname = "t%02d"\ntarget = "%s@127.0.0.1:%s"\nroot = "%s/roots/t%02d"\n\n' "$i" "$BENCH_USER" "$p" "$work" "$i"
        i=$((i + 1))
    done
} > hosts.toml
first_port=$(echo "$ports" | awk '{print $1}')

fresh_roots() {
    rm -rf roots
    mkdir -p roots/single
    i=1
    while [ "$i" -le "$hosts" ]; do
        mkdir -p "roots/$(printf 't%02d' "$i")"
        i=$((i + 1))
    done
}
# cpu_of FILE CMD...: CMD, with the user+system CPU seconds of pideploy itself (not of the sshd,
# sudo and agents acting as targets on this same machine) written to FILE.
cpu_of() {
    f=$1
    shift
    /usr/bin/time -f '%U %S' -o "$f" "$@"
}
single() {
    cpu_of cpu.single "$pideploy" switch -c a/pi.toml --lock a/pideploy.lock --target "$BENCH_USER@127.0.0.1:$first_port" \
        -i ssh/id_ed25519 --known-hosts ssh/known_hosts --root "$work/roots/single" > /dev/null 2> pd.err
    grep -q 'generation 1 is active and the default' pd.err
}
fleet_default() { "$pideploy" switch --hosts hosts.toml > fleet.out 2> pd.err; }
fleet_all() { cpu_of cpu.fleet "$pideploy" switch --hosts hosts.toml --limit "$hosts" > fleet.out 2> pd.err; }
# Every root holds generation 1 of the one closure.
check_fleet() {
    [ "$(grep -c ' switched ' fleet.out)" -eq "$hosts" ] || {
        cat fleet.out pd.err >&2
        exit 1
    }
    for r in roots/t*; do
        [ "$(readlink "$r/pideploy/var/profiles/system-1-link")" = "$top" ] || {
            echo "$r does not hold generation 1 of $top" >&2
            exit 1
        }
    done
}

now() { date +%s.%N; }
# best_of CMD CHECK: fresh roots (untimed), CMD timed, CHECK untimed; $runs times; sets BEST.
best_of() {
    BEST=
    i=0
    while [ "$i" -lt "$runs" ]; do
        fresh_roots
        t0=$(now)
        $1
        t1=$(now)
        $2
        BEST=$(echo "$t0 $t1 ${BEST:-}" | awk '{d = $2 - $1; if ($3 == "" || d < $3) print d; else print $3}')
        i=$((i + 1))
    done
}
nothing() { :; }
best_of single nothing
t_one=$BEST
# The peer of a first deploy: `rsync -az` of the same store tree into an empty directory over the
# same sshd (rsync's own delta and zlib compression; no verification, registration or activation).
rm -rf src-store
cp -a roots/single/pideploy/store src-store
rsync_first() {
    rsync -az --stats --rsync-path='sudo rsync' -e "ssh -p $first_port $SSH_OPTS" \
        "$work/src-store/" "$BENCH_USER@127.0.0.1:$work/roots/rsync/" > rsync.out
}
best_of rsync_first nothing
t_rsync=$BEST
rs_sent=$(sed -n 's/^Total bytes sent: *//p' rsync.out | tr -d ',.')
pd_wire=$(sed -n 's/.*copied [0-9]* store paths ([0-9]* MiB, \([0-9]*\) bytes over the wire).*/\1/p' pd.err)
rm -rf src-store
best_of fleet_default check_fleet
t_def=$BEST
best_of fleet_all check_fleet
t_all=$BEST
size=$(du -sk --apparent-size roots/t01/pideploy/store | cut -f1)
rm -rf roots

ratio() { echo "$1 $2" | awk '{printf "%.2f", $1 / $2}'; }
printf 'closure: %s MiB sent to each empty root over SSH (sshd on 127.0.0.1); best of %s runs, %s cores\n' \
    $((size >> 10)) "$runs" "$(nproc)"
printf '%-36s %9s %10s %12s\n' case wall 'x 1 target' 'per target'
printf 'first deploy, 1 target: pideploy %.2fs (%s bytes sent), rsync -az of the same store %.2fs (%s bytes sent): %s\n' \
    "$t_one" "${pd_wire:-?}" "$t_rsync" "${rs_sent:-?}" "$(ratio "$t_one" "$t_rsync")"
printf '%-36s %8.2fs %10s %11.2fs\n' '1 target' "$t_one" 1.00 "$t_one"
printf '%-36s %8.2fs %10s %11.2fs\n' "$hosts targets, --limit 8 (default)" "$t_def" "$(ratio "$t_def" "$t_one")" \
    "$(echo "$t_def $hosts" | awk '{print $1 / $2}')"
printf '%-36s %8.2fs %10s %11.2fs\n' "$hosts targets, --limit $hosts" "$t_all" "$(ratio "$t_all" "$t_one")" \
    "$(echo "$t_all $hosts" | awk '{print $1 / $2}')"
cpu_one=$(awk '{print $1 + $2}' cpu.single)
cpu_all=$(awk '{print $1 + $2}' cpu.fleet)
# On a real fleet every Pi unpacks on its own CPU and disk; here all the targets share this
# machine's 2 cores, so the deployer's own CPU is the part of the wall time that is pideploy's.
printf '  deployer CPU (pideploy alone, last run): 1 target %.2fs, %s targets %.2fs: %.3fs per further target\n' \
    "$cpu_one" "$hosts" "$cpu_all" "$(echo "$cpu_one $cpu_all $hosts" | awk '{print ($2 - $1) / ($3 - 1)}')"
printf '  one after another would be about %.1fs (%s x 1 target)\n' "$(echo "$t_one $hosts" | awk '{print $1 * $2}')" "$hosts"
