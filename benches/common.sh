# Sourced by the benches.

# The account both tools log in as: like a Pi's `pi`, a plain /bin/sh
# account with passwordless sudo, so both pay sudo per command as they would on a Pi. Not root:
# a dev machine's root shell start-up can be anything (on ours pyenv ran for 0.4 s per SSH
# command), and pideploy, which runs several commands where rsync runs one, would be charged it
# each time. Made once; left in place for the next run (remove with `userdel -r pideploy-bench`
# and `rm /etc/sudoers.d/pideploy-bench`).
BENCH_USER=pideploy-bench
bench_user() {
    if ! id -u "$BENCH_USER" > /dev/null 2>&1; then
        # `*`: no password login, yet not locked (sshd without PAM refuses `!` accounts).
        useradd --system --create-home --shell /bin/sh --password '*' "$BENCH_USER"
    fi
    # A name with a dot is skipped by sudo's @includedir until it is checked and renamed.
    printf 'Defaults:%s !lecture\n%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "$BENCH_USER" "$BENCH_USER" \
        > /etc/sudoers.d/pideploy-bench.new
    chmod 0440 /etc/sudoers.d/pideploy-bench.new
    visudo -q -c -f /etc/sudoers.d/pideploy-bench.new
    mv /etc/sudoers.d/pideploy-bench.new /etc/sudoers.d/pideploy-bench
}
# bench_key PUBKEY: the only key that logs in as the bench user (sshd reads it as that user, so
# it lives in the user's home, not in the root-only bench directory).
bench_key() {
    h=$(getent passwd "$BENCH_USER" | cut -d: -f6)
    mkdir -p "$h/.ssh"
    cp "$1" "$h/.ssh/authorized_keys"
    chown -R "$BENCH_USER:" "$h/.ssh"
    chmod 700 "$h/.ssh"
    chmod 600 "$h/.ssh/authorized_keys"
}

# bench_sshds N: N throwaway OpenSSH servers on free 127.0.0.1 ports from 22300, each with its
# own host key, admitting ssh/id_ed25519 (made here) as the bench user. Run in the bench's work
# directory. Sets PORTS (space-separated) and SSH_OPTS (ssh(1) options for them), writes
# ssh/known_hosts, and returns once every server answers a login. The servers are stopped by
# their PIDs when the bench exits.
SSHD_PIDS=
bench_stop_sshds() {
    for _p in $SSHD_PIDS; do kill "$_p" 2> /dev/null || true; done
}
bench_sshds() {
    trap bench_stop_sshds EXIT
    trap 'exit 130' INT TERM
    rm -rf ssh
    mkdir -p ssh /run/sshd
    chmod 700 ssh
    ssh-keygen -q -t ed25519 -N '' -C bench@pideploy -f ssh/id_ed25519
    bench_key ssh/id_ed25519.pub
    : > ssh/known_hosts
    PORTS=
    SSHD_PIDS=
    _port=22300
    _i=1
    while [ "$_i" -le "$1" ]; do
        while ss -Hltn "sport = :$_port" | grep -q .; do _port=$((_port + 1)); done
        ssh-keygen -q -t ed25519 -N '' -C "bench-host-$_i" -f "ssh/host_$_i"
        cat > "ssh/sshd_$_i.config" << EOF2
Port $_port
ListenAddress 127.0.0.1
HostKey $PWD/ssh/host_$_i
AuthorizedKeysFile .ssh/authorized_keys
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
StrictModes no
LogLevel ERROR
EOF2
        echo "[127.0.0.1]:$_port $(cut -d' ' -f1,2 "ssh/host_$_i.pub")" >> ssh/known_hosts
        /usr/sbin/sshd -D -e -f "$PWD/ssh/sshd_$_i.config" 2>> ssh/sshd.log &
        SSHD_PIDS="$SSHD_PIDS $!"
        PORTS="$PORTS $_port"
        _port=$((_port + 1))
        _i=$((_i + 1))
    done
    SSH_OPTS="-i $PWD/ssh/id_ed25519 -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=$PWD/ssh/known_hosts -o StrictHostKeyChecking=yes"
    for _p in $PORTS; do
        _n=0
        # shellcheck disable=SC2086 # SSH_OPTS is a list of options
        until ssh -p "$_p" $SSH_OPTS "$BENCH_USER@127.0.0.1" true 2> /dev/null; do
            _n=$((_n + 1))
            if [ "$_n" -gt 50 ]; then
                echo "sshd did not come up on 127.0.0.1:$_p (see $PWD/ssh/sshd.log)" >&2
                exit 1
            fi
            sleep 0.1
        done
    done
}
