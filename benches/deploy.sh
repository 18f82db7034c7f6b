#!/bin/sh
# Benchmark of `pideploy switch` against rsync (not run by cargo test):
#   1. no-op re-deploy: `pideploy switch` of the config the target already runs;
#   2. one-file change: the same config plus one [[files]] entry (/etc/motd);
# each against `rsync -a --delete --stats` of the whole target root (what an rsync user would sync)
# from a locally prepared root, over SSH to a throwaway OpenSSH sshd on 127.0.0.1 started here.
# The target root is the qemu-aarch64 default image's partitions unpacked into a directory (debugfs
# rdump + mcopy, as tests/deploy_local.rs does), after one untimed `pideploy switch` to the same config.
# Prints the best of RUNS wall-clock times, the bytes sent, and pideploy/rsync ratios.
#
#   sh benches/deploy.sh                # RUNS=3, release binary (built if missing)
#   PIDEPLOY=path/to/pideploy RUNS=5 sh benches/deploy.sh
#
# pideploy over SSH deploys into / of the target, which here would be this machine: it only goes
# over SSH when `pideploy switch --help` offers `--root DIR`; otherwise it uses `--target local:DIR`
# (same agent and copy stream, a pipe instead of SSH) and the output says so.
# Needs what the tests need (.ci/install-deps.sh) plus openssh-server, openssh-client and rsync.
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/benches/common.sh"
bench_user
runs=${RUNS:-3}
work=${BENCH_DIR:-$repo/target/bench-deploy}
pideploy=${PIDEPLOY:-$repo/target/release/pideploy}
if [ ! -x "$pideploy" ]; then
    (cd "$repo" && cargo build --release --bin pideploy)
fi
export PIDEPLOY_CACHE_DIR="$work/cache" PIDEPLOY_STORE_DIR="$work/store" MTOOLS_SKIP_CHECK=1
export LC_ALL=C
mkdir -p "$work"
cd "$work"

# --- sshd on a free 127.0.0.1 port, own host key and authorized_keys; killed by its PID on exit.
bench_sshds 1
port=${PORTS# }
sshcmd="ssh -p $port $SSH_OPTS"

# --- Inputs, untimed: two configs (B = A + one file), their locks, packages through apt.
mkdir -p a b
cfg() {
    printf 'board = "qemu-aarch64"\nhostname = "benchpi"\n\n[[users]]\nname = "pi"\nuid = 1000\n'
    printf 'ssh_authorized_keys = ["%s"]\n' "$(cat ssh/id_ed25519.pub)"
}
cfg > a/pi.toml
{
    cfg
    printf '\n[[files]]\npath = "/etc/motd"\ncontent = "one file changed\\n"\n'
} > b/pi.toml
idx="$repo/target/debian-arm64/index"
debs="$repo/target/debian-arm64/debs"
[ -s "$idx/debian.Packages" ] || sh "$repo/qemu/debian-arm64.sh" indexes "$idx"
for c in a b; do
    "$pideploy" -q lock -c "$c/pi.toml" --lock "$c/pideploy.lock" \
        --index "debian=$idx/debian.Packages" --index "debian-security=$idx/debian-security.Packages"
done
PIDEPLOY="$pideploy" sh "$repo/qemu/debian-arm64.sh" debs a/pideploy.lock "$debs"
"$pideploy" -q cache import "$debs"/*.deb

# --- The target root: image of A unpacked, then switched to A once so that it runs A.
"$pideploy" -q image -c a/pi.toml --lock a/pideploy.lock -o a.img > /dev/null
bstart=$(sfdisk --json a.img | awk -F'[:,]' '/"start"/ {print $2+0}' | sed -n 1p)
rstart=$(sfdisk --json a.img | awk -F'[:,]' '/"start"/ {print $2+0}' | sed -n 2p)
rsize=$(sfdisk --json a.img | awk -F'[:,]' '/"size"/ {print $2+0}' | sed -n 2p)
rm -rf pristine
mkdir pristine
dd if=a.img of=root.part bs=512 skip="$rstart" count="$rsize" status=none conv=sparse
debugfs -R "rdump / $work/pristine" root.part 2> /dev/null
rm -f root.part
mkdir -p pristine/boot/firmware
mcopy -s -n -i "a.img@@$((bstart * 512))" ::/config.txt ::/gen-1 pristine/boot/firmware/
rm -f a.img

over_ssh=no
if "$pideploy" switch --help 2>&1 | grep -q -- '--root'; then over_ssh=yes; fi
# pd_switch CONFIG_DIR ROOT: one `pideploy switch`, its stderr in pd.err.
pd_switch() {
    if [ "$over_ssh" = yes ]; then
        "$pideploy" switch -c "$1/pi.toml" --lock "$1/pideploy.lock" --target "$BENCH_USER@127.0.0.1:$port" \
            -i "$work/ssh/id_ed25519" --known-hosts "$work/ssh/known_hosts" --root "$work/$2" \
            > /dev/null 2> pd.err
    else
        "$pideploy" switch -c "$1/pi.toml" --lock "$1/pideploy.lock" --target "local:$work/$2" \
            > /dev/null 2> pd.err
    fi
}
pd_switch a pristine
# shellcheck disable=SC2317 # called through best_of
check_noop() { pd_switch a pristine && grep -q 'nothing changed' pd.err && grep -q 'copied 0 store paths' pd.err; }
check_noop || {
    echo "a second switch to A was not a no-op:" >&2
    cat pd.err >&2
    exit 1
}

now() { date +%s.%N; }
# best_of PREP CMD...: runs PREP (untimed) then CMD, $runs times; sets BEST (seconds).
best_of() {
    prep=$1
    shift
    BEST=
    i=0
    while [ "$i" -lt "$runs" ]; do
        $prep
        t0=$(now)
        "$@"
        t1=$(now)
        BEST=$(echo "$t0 $t1 ${BEST:-}" | awk '{d = $2 - $1; if ($3 == "" || d < $3) print d; else print $3}')
        i=$((i + 1))
    done
}
nothing() { :; }
# The copy is flushed before the clock starts: pideploy syncs before it publishes anything (rsync
# does not), and would otherwise be charged for writing out the 312 MiB copy made here.
fresh_target() { rm -rf target && cp -a pristine target && sync; }
# "copied N store paths (X MiB, Y bytes over the wire)" -> Y.
pd_wire_bytes() { sed -n 's/.*copied [0-9]* store paths ([0-9]* MiB, \([0-9]*\) bytes over the wire).*/\1/p' pd.err; }
pd_sent_paths() { sed -n 's/.*copied \([0-9]*\) store paths.*/\1/p' pd.err; }

# 1. pideploy no-op.
best_of nothing check_noop
t_pd_noop=$BEST
w_pd_noop=$(pd_wire_bytes)
pd_build() { "$pideploy" -q build -c a/pi.toml --lock a/pideploy.lock > /dev/null; }
best_of nothing pd_build
t_build=$BEST

# 2. pideploy one-file change, each run on a fresh copy of the root running A.
pd_change() { pd_switch b target && grep -q 'generation [0-9]* is active' pd.err; }
best_of fresh_target pd_change
t_pd_one=$BEST
w_pd_one=$(pd_wire_bytes)
n_pd_one=$(pd_sent_paths)
[ "$(cat target/etc/motd)" = "one file changed" ]
# What the new generation added to the target store, exactly (pideploy's figure is whole MiB).
raw_new=$(cd target/pideploy/store && for p in *; do [ -e "../../../pristine/pideploy/store/$p" ] || echo "$p"; done |
    xargs -r du -sb --apparent-size | awk '{s += $1} END {print s + 0}')
xz_new=$(cd target/pideploy/store && for p in *; do [ -e "../../../pristine/pideploy/store/$p" ] || echo "$p"; done |
    xargs -r tar -cf - | xz -6 -T1 | wc -c)

# rsync: the whole root from a local "new" tree (the root running A, plus the file) over SSH.
rm -rf new
cp -a pristine new
printf 'one file changed\n' > new/etc/motd
rsync_to_target() {
    rsync -a --delete --stats --rsync-path='sudo rsync' -e "$sshcmd" "$1/" "$BENCH_USER@127.0.0.1:$work/target/" > rsync.out
}
rs_bytes() { sed -n 's/^Total bytes sent: *//p' rsync.out | tr -d ',.'; }
rsync_noop() { rsync_to_target pristine; }
rsync_one() { rsync_to_target new; }
fresh_target
best_of nothing rsync_noop
t_rs_noop=$BEST
b_rs_noop=$(rs_bytes)
best_of fresh_target rsync_one
t_rs_one=$BEST
b_rs_one=$(rs_bytes)
cmp -s new/etc/motd target/etc/motd

content=$(du -sk --apparent-size pristine | cut -f1)
files=$(find pristine | wc -l)
ratio() { echo "$1 $2" | awk '{if ($2 > 0) printf "%.2f", $1 / $2; else print "-"}'; }
mib() { echo "$1" | awk '{printf "%.2f", $1 / 1048576}'; }

printf 'target root: %s MiB, %s entries (qemu-aarch64 default config); best of %s runs, %s cores\n' \
    $((content >> 10)) "$files" "$runs" "$(nproc)"
if [ "$over_ssh" = yes ]; then
    echo "pideploy and rsync both over SSH to an sshd on 127.0.0.1 (pideploy with --root)"
else
    echo "NOTE: pideploy ran WITHOUT SSH (--target local:DIR, same agent and stream through a pipe);"
    echo "      rsync ran over SSH to an sshd on 127.0.0.1"
fi
printf '%-34s %10s %10s %8s\n' case pideploy rsync ratio
printf '%-34s %9.2fs %9.2fs %8s\n' 'no-op: time' "$t_pd_noop" "$t_rs_noop" "$(ratio "$t_pd_noop" "$t_rs_noop")"
printf '%-34s %10s %10s\n' 'no-op: bytes sent' "${w_pd_noop:-0}" "$b_rs_noop"
printf '%-34s %9.2fs %9.2fs %8s\n' 'one file: time' "$t_pd_one" "$t_rs_one" "$(ratio "$t_pd_one" "$t_rs_one")"
printf '%-34s %10s %10s %8s\n' 'one file: bytes sent' "${w_pd_one:-?}" "$b_rs_one" "$(ratio "${w_pd_one:-0}" "$b_rs_one")"
printf '  pideploy one file: %s store paths sent, %s bytes raw (%s MiB; xz -6 of them: %s bytes)\n' \
    "$n_pd_one" "$raw_new" "$(mib "$raw_new")" "$xz_new"
printf '  pideploy bytes: the copy stream as pideploy reports it (not the agent script or SSH framing)\n'
printf '  pideploy build alone (part of every switch): %.2fs\n' "$t_build"
printf '  rsync bytes: "Total bytes sent" of rsync --stats (file list + deltas), no -z\n'
rm -rf target new
