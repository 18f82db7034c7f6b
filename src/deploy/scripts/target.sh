# pideploy target agent: POSIX sh + busybox-level tools, sent inline with every call (so it always
# matches the deployer's version). Usage: sh -c "$agent" pideploy-agent OP ROOT ARGS...
# Every change is made under a temporary name and renamed into place; a cut connection leaves at
# most an `.incoming-*` directory that is never valid and is removed by the next call.
set -eu
op=$1
root=${2%/}
shift 2
P=$root/pideploy
store=$P/store
db=$P/var/db/valid
prof=$P/var/profiles
gens=$P/var/generations
boot=$root/boot/firmware
export LC_ALL=C
self=$0

die() { echo "pideploy-agent: $*" >&2; exit 1; }

# Follows links inside ROOT: absolute targets are taken relative to ROOT, so a deploy into a
# throwaway root never reads the deploying machine's own /pideploy.
resolve() { # TOPLEVEL REL -> physical path
    p=$root$1
    for c in $(echo "$2" | tr '/' ' '); do
        p=$p/$c
        i=0
        while [ -L "$p" ] && [ $i -lt 20 ]; do
            t=$(readlink "$p")
            case "$t" in /*) p=$root$t ;; *) p=$(dirname "$p")/$t ;; esac
            i=$((i + 1))
        done
    done
    echo "$p"
}

# gen-N/ on the boot partition: the files boot/entry lists and cmdline.txt, built beside and renamed.
write_entry() { # N TOPLEVEL ROOTARG
    e=$boot/gen-$1
    rm -rf "$e.tmp"
    mkdir -p "$e.tmp"
    while read -r dest src; do
        mkdir -p "$(dirname "$e.tmp/$dest")"
        cp "$(resolve "$2" "$src")" "$e.tmp/$dest"
    done < "$root$2/boot/entry"
    printf '%s root=%s init=%s/init\n' "$(cat "$root$2/boot/kernel-params")" "$3" "$2" > "$e.tmp/cmdline.txt"
    sync
    rm -rf "$e"
    mv "$e.tmp" "$e"
}

# config.txt (or tryboot.txt) selecting generation N; the same text `pideploy image` writes.
write_config() { # N TOPLEVEL FILE
    kf=$(head -n1 "$root$2/boot/entry" | cut -d' ' -f1)
    host=${2##*-pideploy-system-}
    {
        echo "# pideploy: generation $1 of $host. Generated: change pi.toml, not this file."
        cat "$root$2/boot/config.txt"
        printf '\n[all]\nos_prefix=gen-%s/\nkernel=%s\n' "$1" "$kf"
        if grep -q '^initrd.img ' "$root$2/boot/entry"; then echo "initramfs initrd.img followkernel"; fi
        # A trial runs under the hardware watchdog (src/boot_entry.rs, TRIAL_WATCHDOG_SECS).
        if [ "$3" = tryboot.txt ]; then echo "kernel_watchdog_timeout=60"; fi
    } > "$boot/$3.tmp"
    sync
    mv -f "$boot/$3.tmp" "$boot/$3"
    sync
}

bootid() { cat /proc/sys/kernel/random/boot_id 2>/dev/null || echo none; }

# The deployer's lock: mkdir is atomic. `holder` says who holds it (line 1, for people) and which
# process in which boot (line 2): a holder that is gone, or from an earlier boot, is stale.
lock() {
    mkdir -p "$P/var"
    if ! mkdir "$P/var/lock" 2>/dev/null; then
        who=$(head -n1 "$P/var/lock/holder" 2>/dev/null || echo unknown)
        if lock_alive; then
            echo "pideploy-agent: locked by $who" >&2
            exit 75
        fi
        rm -rf "$P/var/lock"
        mkdir "$P/var/lock" || die "locked by $who"
    fi
    printf '%s\npid %s boot %s\n' "$1" "$$" "$(bootid)" > "$P/var/lock/holder"
    trap 'rm -rf "$P/var/lock"' EXIT
}

lock_alive() {
    pid=$(sed -n 's/^pid \([0-9]*\) boot .*/\1/p' "$P/var/lock/holder" 2>/dev/null)
    b=$(sed -n 's/^pid [0-9]* boot //p' "$P/var/lock/holder" 2>/dev/null)
    # A lock without its second line is being written right now.
    [ -n "$pid" ] || return 0
    [ "$b" = "$(bootid)" ] && kill -0 "$pid" 2>/dev/null
}

# The pending generation (activated or on tryboot, waiting for the deployer's confirmation):
# var/pending holds "key value" lines.
pending_get() { sed -n "s/^$1 //p" "$P/var/pending" 2>/dev/null | head -n1; }

pending_put() { # N KIND TOP PREVIOUS ROOTARG TIMEOUT DEPLOYER
    printf 'generation %s\nkind %s\ntop %s\nprevious %s\nrootarg %s\ntimeout %s\ndeployer %s\nagent %s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$self" > "$P/var/.pending.tmp"
    sync
    mv -f "$P/var/.pending.tmp" "$P/var/pending"
    sync
}

# Starts the waiter, detached from this session (a dropped connection cannot kill it), and hands
# it the lock.
start_waiter() { # N
    setsid sh "$self" wait "$root" "$1" < /dev/null >> "$P/var/waiter.log" 2>&1 &
    mkdir -p "$P/var/lock"
    printf '%s (waiting for the confirmation of generation %s)\npid %s boot %s\n' \
        "$(pending_get deployer)" "$1" "$!" "$(bootid)" > "$P/var/lock/holder"
    trap - EXIT
}

# Generation N becomes the default: profile link, boot entry, config.txt (each atomic).
make_default() { # N TOP ROOTARG
    if [ -d "$boot" ] && [ -f "$boot/config.txt" ]; then
        if [ ! -d "$boot/gen-$1" ]; then
            [ -n "$3" ] || die "no root= for generation $1's boot entry (the target's config.txt names no cmdline.txt with one)"
            write_entry "$1" "$2" "$3"
        fi
        write_config "$1" "$2" config.txt
    fi
    ln -sfn "system-$1-link" "$prof/.system.tmp"; mv -Tf "$prof/.system.tmp" "$prof/system"
}

# Forgets generation N: its link, record, boot entry and a tryboot.txt naming it.
drop_gen() { # N
    rm -f "$prof/system-$1-link" "$gens/$1.json"
    if [ -f "$boot/tryboot.txt" ] && grep -qx "os_prefix=gen-$1/" "$boot/tryboot.txt"; then
        rm -f "$boot/tryboot.txt"
    fi
    rm -rf "$boot/gen-$1" "$boot/gen-$1.tmp"
    sync
}

activate() { # TOPLEVEL
    sh "$root$1/activate" --root "${root:-/}" >&2
}

outcome() { # N TEXT
    echo "$2" > "$P/var/.outcome-$1.tmp"; mv -f "$P/var/.outcome-$1.tmp" "$P/var/outcome-$1"
}

# Confirmed: what the pending kind still lacks becomes permanent.
commit() {
    n=$(pending_get generation); kind=$(pending_get kind)
    case "$kind" in
    live|tryboot) make_default "$n" "$(pending_get top)" "$(pending_get rootarg)" ;;
    esac
    [ "$kind" != tryboot ] || rm -f "$boot/tryboot.txt"
    sync
    outcome "$n" "committed $n"
    rm -f "$P/var/pending"
    sync
}

# Not confirmed: back to what ran before. A tryboot generation is left by rebooting (the
# committed config.txt then boots).
revert() { # WHY
    n=$(pending_get generation); kind=$(pending_get kind); prev=$(pending_get previous)
    case "$kind" in
    live|test) if [ -n "$prev" ]; then activate "$prev" || true; fi ;;
    esac
    [ "$kind" = test ] || drop_gen "$n"
    outcome "$n" "reverted $n: $1"
    rm -f "$P/var/pending"
    sync
    echo "pideploy: generation $n reverted: $1"
    if [ "$kind" = tryboot ] && [ -z "$root" ]; then reboot_with ""; fi
}

# Reboots, passing ARG to reboot(2) (`0 tryboot` asks the Pi firmware for a one-shot tryboot). The
# running system's shutdown tasks read the argument; busybox's reboot cannot pass one itself.
reboot_with() { # ARG
    mkdir -p /run/pideploy
    if [ -n "$1" ]; then echo "$1" > /run/pideploy/reboot-arg; else rm -f /run/pideploy/reboot-arg; fi
    sync
    reboot
}

# Listing of a tree in the form the deployer computes from its own store path: one line per entry,
# sorted bytewise: "d PATH", "l PATH TARGET", "f PATH X|- SHA256".
listing() {
    (cd "$1" && find . -mindepth 1 | sed 's|^\./||' | sort | while IFS= read -r p; do
        if [ -L "$p" ]; then
            printf 'l %s %s\n' "$p" "$(readlink "$p")"
        elif [ -d "$p" ]; then
            printf 'd %s\n' "$p"
        else
            if [ -x "$p" ]; then x=x; else x=-; fi
            printf 'f %s %s %s\n' "$p" "$x" "$(sha256sum < "$p" | cut -d' ' -f1)"
        fi
    done)
}

case "$op" in
query)
    # One round trip: valid paths, generations, default, running system, lock holder, root= of the default entry.
    [ -d "$db" ] && for f in "$db"/*; do [ -e "$f" ] && echo "have $(basename "$f")"; done
    if [ -d "$prof" ]; then
        for l in "$prof"/system-*-link; do
            [ -L "$l" ] || continue
            n=${l##*/system-}; n=${n%-link}
            echo "gen $n $(readlink "$l")"
        done
        [ -L "$prof/system" ] && echo "default $(readlink "$prof/system")"
    fi
    [ -L "$root/run/current-system" ] && echo "current $(readlink "$root/run/current-system")"
    if [ -f "$P/var/lock/holder" ] && lock_alive; then echo "locked $(head -n1 "$P/var/lock/holder")"; fi
    if [ -f "$P/var/pending" ]; then echo "pending $(pending_get generation) $(pending_get kind)"; fi
    if [ -f "$boot/config.txt" ]; then
        prefix=$(sed -n 's/^os_prefix=//p' "$boot/config.txt" | tail -n1)
        r=$(tr ' ' '\n' < "$boot/${prefix}cmdline.txt" 2>/dev/null | sed -n 's/^root=//p' | head -n1)
        [ -z "$r" ] || echo "rootarg $r"
    fi
    [ -r /proc/sys/kernel/random/boot_id ] && [ -z "$root" ] && echo "bootid $(cat /proc/sys/kernel/random/boot_id)"
    echo "end" ;;

receive)
    # stdin: xz-compressed tar of <base>/... trees plus .pideploy/<base>.listing and .pideploy/<base>.reg
    mkdir -p "$store" "$db"
    for d in "$store"/.incoming-*; do
        [ -d "$d" ] || continue
        pid=${d##*-}
        kill -0 "$pid" 2>/dev/null || { chmod -R u+w "$d"; rm -rf "$d"; }
    done
    in=$store/.incoming-$$
    mkdir "$in"
    trap 'chmod -R u+w "$in" 2>/dev/null; rm -rf "$in"' EXIT
    if ! err=$( { unxz | tar -x -C "$in"; } 2>&1 ); then
        case "$err" in
        *"No space left"*|*"Disk quota"*)
            chmod -R u+w "$in" 2>/dev/null; rm -rf "$in"
            die "the target's disk is full ($(df -k "$store" | awk 'NR == 2 { print int($4 / 1024) }') MiB free under $store); nothing was registered: free space (pideploy gc --target ...) and deploy again" ;;
        *) die "the stream was cut or is corrupt; nothing was registered (run the deploy again)" ;;
        esac
    fi
    n=0
    for reg in "$in"/.pideploy/*.reg; do
        [ -e "$reg" ] || continue
        base=$(basename "$reg" .reg)
        [ "$(listing "$in/$base")" = "$(cat "$in/.pideploy/$base.listing")" ] \
            || die "$base does not match what was sent; nothing of it was registered"
    done
    for reg in "$in"/.pideploy/*.reg; do
        [ -e "$reg" ] || continue
        base=$(basename "$reg" .reg)
        if [ -f "$db/$base" ] && [ -e "$store/$base" ]; then continue; fi
        if [ -e "$store/$base" ]; then chmod -R u+w "$store/$base"; rm -rf "$store/$base"; fi
        sync
        mv "$in/$base" "$store/$base"
        cp "$reg" "$db/.$base.tmp"
        mv -f "$db/.$base.tmp" "$db/$base"
        n=$((n + 1))
    done
    sync
    echo "registered $n" ;;

switch)
    # switch ROOT MODE TOPLEVEL DEPLOYER TIME MESSAGE ROOTARG CONFIRM
    # MODE: switch (activate + default + boot entry), boot (default + boot entry), test (activate
    # only), tryboot (boot entry + tryboot.txt; the deployer reboots into it once). CONFIRM > 0:
    # after activating, a detached waiter gives the deployer that many seconds to confirm.
    # The work runs in its own session, off the connection: a link cut mid-activation cannot stop
    # it half-way (with magic rollback the waiter then reverts it). This end relays its answer.
    if [ -z "${PIDEPLOY_DETACHED:-}" ]; then
        mkdir -p "$P/var"
        out=$P/var/switch.out.$$; err=$P/var/switch.err.$$
        PIDEPLOY_DETACHED=1 setsid sh "$self" switch "$root" "$@" < /dev/null > "$out" 2> "$err" &
        rc=0
        wait $! || rc=$?
        cat "$err" >&2; cat "$out"
        rm -f "$out" "$err"
        exit $rc
    fi
    mode=$1; top=$2; deployer=$3; now=$4; message=$5; rootarg=$6; confirm=${7:-0}
    lock "$deployer"
    [ ! -f "$P/var/pending" ] || die "generation $(pending_get generation) is still waiting for its confirmation; try again when it is committed or reverted (pideploy generations)"
    rm -f "$P"/var/outcome-* "$P"/var/confirm-*
    base=${top#/pideploy/store/}
    [ -f "$db/$base" ] || die "$top is not valid on the target (copy it first)"
    mkdir -p "$prof" "$gens"
    # Same closure as the default and the running system: nothing to do, nothing restarted.
    cur_default=$(readlink "$prof/system" 2>/dev/null || true)
    cur_top=$(readlink "$prof/$cur_default" 2>/dev/null || true)
    running=$(readlink "$root/run/current-system" 2>/dev/null || true)
    if [ "$mode" != test ] && [ "$cur_top" = "$top" ] && { [ "$running" = "$top" ] || [ "$mode" = boot ]; }; then
        echo "unchanged ${cur_default}"
        exit 0
    fi
    if [ "$mode" = test ]; then
        activate "$top" || { activate "$running" || true; die "activation of $top failed; $running is active again"; }
        if [ "$confirm" -gt 0 ]; then
            pending_put 0 test "$top" "$running" "$rootarg" "$confirm" "$deployer"
            start_waiter 0
            echo "pending 0"
        else
            echo "tested"
        fi
        exit 0
    fi
    # Generation numbers are never reused: the counter only grows.
    last=$(cat "$P/var/last-generation" 2>/dev/null || echo 0)
    for l in "$prof"/system-*-link; do
        [ -L "$l" ] || continue
        k=${l##*/system-}; k=${k%-link}
        [ "$k" -le "$last" ] || last=$k
    done
    n=$((last + 1))
    echo "$n" > "$P/var/last-generation.tmp"; mv -f "$P/var/last-generation.tmp" "$P/var/last-generation"
    ln -sfn "$top" "$prof/.system-$n-link.tmp"; mv -Tf "$prof/.system-$n-link.tmp" "$prof/system-$n-link"
    printf '{\n  "generation": %s,\n  "time": %s,\n  "toplevel": "%s",\n  "deployer": "%s",\n  "message": "%s"\n}\n' \
        "$n" "$now" "$top" "$deployer" "$message" > "$gens/.$n.json.tmp"
    mv -f "$gens/.$n.json.tmp" "$gens/$n.json"
    case "$mode" in
    switch)
        if ! activate "$top"; then
            # Level 1 rollback: the previous system comes back, the failed generation goes.
            echo "pideploy-agent: activation of generation $n failed; re-activating ${running:-nothing}" >&2
            if [ -n "$running" ]; then activate "$running" || true; fi
            drop_gen "$n"
            die "activation of generation $n failed; the previous generation is active and still the default"
        fi
        if [ "$confirm" -gt 0 ]; then
            pending_put "$n" live "$top" "$running" "$rootarg" "$confirm" "$deployer"
            start_waiter "$n"
            echo "pending $n"
            exit 0
        fi
        make_default "$n" "$top" "$rootarg" ;;
    boot)
        make_default "$n" "$top" "$rootarg" ;;
    tryboot)
        [ -d "$boot" ] && [ -f "$boot/config.txt" ] || die "tryboot needs the boot partition at $boot"
        write_entry "$n" "$top" "$rootarg"
        write_config "$n" "$top" tryboot.txt
        pending_put "$n" tryboot "$top" "$running" "$rootarg" "$confirm" "$deployer" ;;
    *) die "unknown mode $mode" ;;
    esac
    echo "generation $n" ;;

wait)
    # wait ROOT N: the detached waiter. Commits on "commit", reverts on "revert" or at the timeout.
    n=$1
    [ "$(pending_get generation)" = "$n" ] || die "generation $n is not pending"
    t=$(pending_get timeout)
    mkdir -p "$P/var/lock"
    printf '%s (waiting for the confirmation of generation %s)\npid %s boot %s\n' \
        "$(pending_get deployer)" "$n" "$$" "$(bootid)" > "$P/var/lock/holder"
    trap 'rm -rf "$P/var/lock"' EXIT
    i=0
    verdict=
    while :; do
        if [ -f "$P/var/confirm-$n" ]; then verdict=$(cat "$P/var/confirm-$n"); break; fi
        [ "$i" -lt "$t" ] || break
        sleep 1
        i=$((i + 1))
    done
    case "$verdict" in
    commit) commit ;;
    revert) revert "the deployer asked for it" ;;
    *) revert "no confirmation within $t s" ;;
    esac ;;

confirm)
    # confirm ROOT N commit|revert: hands the verdict to the waiter (or applies it when none runs).
    n=$1; verdict=$2
    case "$verdict" in commit|revert) ;; *) die "confirm: commit or revert, not $verdict" ;; esac
    if [ "$(pending_get generation)" != "$n" ]; then
        if [ -f "$P/var/outcome-$n" ]; then cat "$P/var/outcome-$n"; rm -f "$P/var/outcome-$n"; exit 0; fi
        die "generation $n is not waiting for a confirmation (see pideploy generations)"
    fi
    if [ -d "$P/var/lock" ] && lock_alive; then
        echo "$verdict" > "$P/var/.confirm-$n.tmp"; mv -f "$P/var/.confirm-$n.tmp" "$P/var/confirm-$n"
        i=0
        while [ ! -f "$P/var/outcome-$n" ] && [ $i -lt 120 ]; do sleep 0.5 2>/dev/null || sleep 1; i=$((i + 1)); done
        [ -f "$P/var/outcome-$n" ] || die "the waiter did not answer about generation $n"
    else
        lock "confirmation of generation $n"
        if [ "$verdict" = commit ]; then commit; else
            # Without a waiter (no magic rollback) a tryboot generation is left at the next reboot.
            kind=$(pending_get kind)
            if [ "$kind" = tryboot ]; then drop_gen "$n"; outcome "$n" "reverted $n: the deployer asked for it"; rm -f "$P/var/pending"
            else revert "the deployer asked for it" >&2; fi
        fi
    fi
    cat "$P/var/outcome-$n"
    rm -f "$P/var/outcome-$n" "$P/var/confirm-$n" ;;

health)
    # health ROOT TIMEOUT [port:N | cmd:SHELL]...: every check passes, retried for TIMEOUT seconds.
    limit=$1; shift
    i=0
    while :; do
        failed=
        for c in "$@"; do
            case "$c" in
            port:*)
                hex=$(printf '%04X' "${c#port:}")
                cat /proc/net/tcp /proc/net/tcp6 2>/dev/null \
                    | awk -v h="$hex" '$4 == "0A" && substr($2, length($2) - 3) == h { f = 1 } END { exit !f }' \
                    || failed="nothing listens on TCP port ${c#port:}" ;;
            cmd:*)
                out=$(sh -c "${c#cmd:}" 2>&1 < /dev/null) || failed="${c#cmd:} failed: $(echo "$out" | tail -n1)" ;;
            *) die "health: unknown check $c" ;;
            esac
            [ -z "$failed" ] || break
        done
        if [ -z "$failed" ]; then echo healthy; exit 0; fi
        [ "$i" -lt "$limit" ] || die "health check failed for ${limit} s: $failed"
        sleep 1
        i=$((i + 1))
    done ;;

reboot)
    # reboot ROOT ARG: answers, then reboots (with ARG for reboot(2), e.g. `0 tryboot`).
    [ -z "$root" ] || die "a directory root ($root) cannot be rebooted"
    if [ -n "$1" ] && ! command -v perl > /dev/null; then
        die "the running system cannot pass '$1' to reboot (perl-base is missing); deploy with --reboot once"
    fi
    setsid sh "$self" reboot-now "" "$1" < /dev/null > /dev/null 2>&1 &
    echo "rebooting" ;;

reboot-now)
    sleep 1
    reboot_with "$1" ;;

boot-check)
    # boot-check ROOT: run by the boot tasks before sshd starts. A lock from the last boot is
    # stale; a pending generation is settled by what the firmware booted.
    rm -rf "$P/var/lock"
    [ -f "$P/var/pending" ] || exit 0
    n=$(pending_get generation); kind=$(pending_get kind); top=$(pending_get top)
    running=$(readlink "$root/run/current-system" 2>/dev/null || true)
    case "$kind" in
    tryboot)
        if [ "$running" = "$top" ]; then
            echo "pideploy: generation $n is on trial (tryboot); it is kept only if the deployer confirms it"
            if [ "$(pending_get timeout)" -gt 0 ]; then start_waiter "$n"; fi
        else
            drop_gen "$n"
            outcome "$n" "reverted $n: generation $n did not boot"
            rm -f "$P/var/pending"
            echo "pideploy: generation $n did not boot; the committed generation runs"
        fi ;;
    live)
        # Power went before the confirmation: the boot followed config.txt. If that already
        # named N (the commit was half-way), finish it; otherwise N goes.
        if [ "$running" = "$top" ]; then
            commit
        else
            drop_gen "$n"
            outcome "$n" "reverted $n: the target restarted before the confirmation"
            rm -f "$P/var/pending"
            echo "pideploy: generation $n was never confirmed; the committed generation runs"
        fi ;;
    *) rm -f "$P/var/pending" ;;
    esac
    sync ;;

generations)
    [ -d "$gens" ] || exit 0
    for f in "$gens"/*.json; do [ -e "$f" ] && { echo "--- $(basename "$f" .json)"; cat "$f"; }; done
    echo "--- end" ;;

rollback)
    # rollback ROOT N DEPLOYER
    want=$1; deployer=$2
    lock "$deployer"
    link=$prof/system-$want-link
    [ -L "$link" ] || die "there is no generation $want (see pideploy generations)"
    top=$(readlink "$link")
    activate "$top" || die "activation of generation $want failed"
    rootarg=
    if [ -f "$boot/config.txt" ]; then
        prefix=$(sed -n 's/^os_prefix=//p' "$boot/config.txt" | tail -n1)
        rootarg=$(tr ' ' '\n' < "$boot/${prefix}cmdline.txt" 2>/dev/null | sed -n 's/^root=//p' | head -n1)
    fi
    make_default "$want" "$top" "$rootarg"
    echo "rolled back to $want" ;;

gc)
    # gc ROOT keep|age VALUE DEPLOYER NOW: drop generations beyond the newest VALUE (keep), or made
    # more than VALUE seconds before NOW (age); never the default nor the running one. Then every
    # store path no remaining generation (nor the running system) reaches. Registration goes first,
    # so a path is never valid with partial contents.
    how=$1; value=$2; deployer=$3; now=$4
    lock "$deployer"
    mkdir -p "$prof" "$gens"
    default_link=$(readlink "$prof/system" 2>/dev/null || true)
    running=$(readlink "$root/run/current-system" 2>/dev/null || true)
    nums=$(for l in "$prof"/system-*-link; do [ -L "$l" ] || continue; k=${l##*/system-}; echo "${k%-link}"; done | sort -rn)
    # The running generation: the newest one whose toplevel is running (a switch back to an older
    # closure makes a new generation of it, and the older record need not be kept for it).
    running_gen=
    for n in $nums; do
        if [ "$(readlink "$prof/system-$n-link")" = "$running" ]; then running_gen=$n; break; fi
    done
    i=0
    for n in $nums; do
        i=$((i + 1))
        [ "system-$n-link" != "$default_link" ] || continue
        [ "$n" != "$running_gen" ] || continue
        if [ "$how" = keep ]; then
            [ "$i" -gt "$value" ] || continue
        else
            t=$(sed -n 's/^ *"time": *\([0-9][0-9]*\).*/\1/p' "$gens/$n.json" 2>/dev/null | head -n1)
            if [ -z "$t" ] || [ $((now - t)) -le "$value" ]; then continue; fi
        fi
        rm -f "$gens/$n.json"
        rm -f "$prof/system-$n-link"
        if [ -d "$boot/gen-$n" ]; then rm -rf "$boot/gen-$n"; fi
        echo "removed-generation $n"
    done
    sync
    # Reachability over the registrations' `ref` lines, from the remaining toplevels + the running system.
    work=$P/var/gc.$$
    rm -rf "$work"; mkdir -p "$work"
    trap 'rm -rf "$P/var/lock" "$work"' EXIT
    : > "$work/live"
    for l in "$prof"/system-*-link; do
        if [ -L "$l" ]; then readlink "$l"; fi
    done > "$work/todo"
    if [ -n "$running" ]; then echo "$running" >> "$work/todo"; fi
    while [ -s "$work/todo" ]; do
        : > "$work/next"
        while IFS= read -r t; do
            b=${t#/pideploy/store/}
            if grep -qxF "$b" "$work/live"; then continue; fi
            echo "$b" >> "$work/live"
            if [ -f "$db/$b" ]; then sed -n 's/^ref //p' "$db/$b" >> "$work/next"; fi
        done < "$work/todo"
        mv -f "$work/next" "$work/todo"
    done
    freed=0
    for f in "$db"/*; do
        [ -f "$f" ] || continue
        b=${f##*/}
        if grep -qxF "$b" "$work/live"; then continue; fi
        bytes=0
        if [ -e "$store/$b" ] || [ -L "$store/$b" ]; then
            kb=$(du -sk "$store/$b" | cut -f1)
            bytes=$((kb * 1024))
        fi
        rm -f "$f"
        sync
        if [ -e "$store/$b" ] || [ -L "$store/$b" ]; then
            [ -L "$store/$b" ] || chmod -R u+w "$store/$b"
            rm -rf "$store/${b:?}"
        fi
        freed=$((freed + bytes))
        echo "removed-path $b $bytes"
    done
    sync
    echo "freed $freed"
    echo "end" ;;

describe)
    # describe ROOT TOPLEVEL: what diff and dry-activate compare; reads only.
    top=$1
    base=${top#/pideploy/store/}
    case "$base" in */*|.*|'') die "$top is not a store path" ;; esac
    [ -f "$db/$base" ] || die "$top is not valid on the target"
    d=$store/$base
    echo "--- manifest"; cat "$d/manifest.json" 2>/dev/null || true
    echo "--- entry"; cat "$d/boot/entry" 2>/dev/null || true
    echo "--- kernel-params"; cat "$d/boot/kernel-params" 2>/dev/null || true
    echo "--- config.txt"; cat "$d/boot/config.txt" 2>/dev/null || true
    echo "--- links"
    for l in kernel initrd; do
        if [ -L "$d/$l" ]; then echo "$l $(readlink "$d/$l")"; fi
    done
    echo "--- end" ;;

doctor)
    # doctor ROOT: what `pideploy doctor --target` judges, as "key value" lines; reads only. It is
    # run as `sh -s` with this script on stdin (nothing installed), so no command here reads stdin.
    free_kb() { df -Pk "$1" 2>/dev/null | awk 'NR == 2 { print $4 }'; }
    d=$P
    while [ ! -d "$d" ]; do d=$(dirname "$d"); done
    echo "store_free_kb $(free_kb "$d")"
    if [ -d "$boot" ]; then echo "boot_free_kb $(free_kb "$boot")"; fi
    def=$(readlink "$prof/system" 2>/dev/null || true)
    if [ -n "$def" ]; then
        n=${def#system-}; n=${n%-link}
        echo "default $n"
        if [ -d "$boot/gen-$n" ]; then echo "entry_kb $(du -sk "$boot/gen-$n" | cut -f1)"; fi
        # The default generation's closure, summed over the registrations' nar-size and ref lines.
        todo=$(readlink "$prof/$def" 2>/dev/null || true)
        seen=' '
        bytes=0
        while [ -n "$todo" ]; do
            next=
            for t in $todo; do
                b=${t#/pideploy/store/}
                case "$seen" in *" $b "*) continue ;; esac
                seen="$seen$b "
                [ -f "$db/$b" ] || continue
                s=$(sed -n 's/^nar-size //p' "$db/$b" | head -n1)
                bytes=$((bytes + ${s:-0}))
                next="$next $(sed -n 's/^ref //p' "$db/$b" | tr '\n' ' ')"
            done
            todo=$(echo $next)
        done
        echo "closure_bytes $bytes"
    fi
    if [ -d "$P/var/lock" ]; then
        echo "lock_holder $(head -n1 "$P/var/lock/holder" 2>/dev/null || echo unknown)"
        if lock_alive; then echo "lock held"; else echo "lock stale"; fi
    fi
    if [ -f "$P/var/pending" ]; then echo "pending $(pending_get generation) $(pending_get kind)"; fi
    if [ -f "$boot/tryboot.txt" ]; then echo "tryboot $(sed -n 's/^os_prefix=//p' "$boot/tryboot.txt" | tail -n1)"; fi
    # The Pi firmware's own report (/chosen/bootloader of the device tree it passed), under ROOT so
    # that a test root can carry one; `vcgencmd` and `rpi-eeprom-update` only on the live system.
    bl=$root/proc/device-tree/chosen/bootloader
    if [ -f "$root/proc/device-tree/model" ]; then echo "model $(tr -d '\000' < "$root/proc/device-tree/model")"; fi
    if [ -f "$bl/build-timestamp" ]; then echo "dt_build_timestamp $(od -An -v -tx1 "$bl/build-timestamp" | tr -d ' \n')"; fi
    if [ -f "$bl/tryboot" ]; then echo "dt_tryboot $(od -An -v -tx1 "$bl/tryboot" | tr -d ' \n')"; fi
    if [ -z "$root" ]; then
        if command -v vcgencmd > /dev/null 2>&1; then vcgencmd bootloader_version < /dev/null 2>&1 | sed 's/^/vcgencmd /'; fi
        if command -v rpi-eeprom-update > /dev/null 2>&1; then rpi-eeprom-update < /dev/null 2>&1 | sed 's/^/eeprom_update /'; fi
    fi
    echo "end" ;;

*) die "unknown operation $op" ;;
esac
