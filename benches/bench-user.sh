# Sourced by the benches. The account both tools log in as: like a Pi's `pi`, a plain /bin/sh
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
