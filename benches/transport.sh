#!/bin/sh
# Benchmark of pideploy's SSH transport (libssh2, crates/transport) against OpenSSH's client (not
# run by cargo test): MIB mebibytes of zeros sent to `cat > /dev/null` over a throwaway sshd on
# 127.0.0.1, each way RUNS times; prints the best wall time and the sender's own CPU (user+sys)
# and pideploy/ssh ratios. This is the part of a deploy the deploying machine pays per target.
#
#   sh benches/transport.sh                  # MIB=512 RUNS=3
#   MIB=256 RUNS=5 sh benches/transport.sh
#
# Needs openssh-server, openssh-client and GNU time (/usr/bin/time).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
. "$repo/benches/common.sh"
bench_user
mib=${MIB:-512}
runs=${RUNS:-3}
work=${BENCH_DIR:-$repo/target/bench-transport}
(cd "$repo" && cargo build -q --release -p pideploy-transport --example send)
send=$repo/target/release/examples/send
mkdir -p "$work"
cd "$work"
bench_sshds 1
port=${PORTS# }

# best WALL CPU pairs from a file of "wall cpu" lines: the run with the least wall time.
best() { sort -n "$1" | head -n 1; }
: > pd.runs
: > ssh.runs
i=0
while [ "$i" -lt "$runs" ]; do
    /usr/bin/time -f '%U %S' -o cpu "$send" "$BENCH_USER@127.0.0.1" "$port" ssh/id_ed25519 ssh/known_hosts "$mib" > wall
    echo "$(cat wall) $(awk '{print $1 + $2}' cpu)" >> pd.runs
    # shellcheck disable=SC2086 # SSH_OPTS is a list of options
    head -c $((mib << 20)) /dev/zero | /usr/bin/time -f '%e %U %S' -o cpu \
        ssh -p "$port" $SSH_OPTS "$BENCH_USER@127.0.0.1" 'cat > /dev/null'
    awk '{print $1, $2 + $3}' cpu >> ssh.runs
    i=$((i + 1))
done
# shellcheck disable=SC2046 # two "wall cpu" pairs, split on purpose
set -- $(best pd.runs) $(best ssh.runs)
printf '%s MiB to cat > /dev/null over SSH on 127.0.0.1, best of %s, %s cores\n' "$mib" "$runs" "$(nproc)"
printf 'pideploy (libssh2): %.2fs wall, %.2f CPU-s\n' "$1" "$2"
printf 'OpenSSH ssh:        %.2fs wall, %.2f CPU-s\n' "$3" "$4"
printf 'ratio: wall %s, CPU %s\n' "$(echo "$1 $3" | awk '{printf "%.2f", $1 / $2}')" \
    "$(echo "$2 $4" | awk '{printf "%.2f", $1 / $2}')"
