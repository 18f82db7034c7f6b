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

# A directory target's store may be someone else's tree: the boot files of TOPLEVEL must be regular
# files that really lie in that store, never a link out of it (root would copy this machine's files
# into the tree). Checked before anything changes, and again when an entry is written.
entry_check() { # TOPLEVEL
    [ -n "$root" ] && [ -f "$root$1/boot/entry" ] || return 0
    c_store="$(cd -P "$root" && pwd -P)/pideploy/store/"
    while read -r _ c_src; do
        c_f=$(resolve "$1" "$c_src")
        case "$(cd -P "$(dirname "$c_f")" 2>/dev/null && pwd -P)/" in
        "$c_store"*) ;;
        *) die "boot file $c_src of $1 resolves outside the target's store ($c_f); this tree's store is not what pideploy wrote" ;;
        esac
        [ -f "$c_f" ] && [ ! -L "$c_f" ] || die "boot file $c_src of $1 is not a regular file in the target's store ($c_f); this tree's store is not what pideploy wrote"
    done < "$root$1/boot/entry"
}

# gen-N/ on the boot partition: the files boot/entry lists and cmdline.txt, built beside and renamed.
write_entry() { # N TOPLEVEL ROOTARG
    e=$boot/gen-$1
    rm -rf "$e.tmp"
    mkdir -p "$e.tmp"
    entry_check "$2"
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

# The deployer's lock: the directory var/lock, whose `holder` says who holds it (line 1, for
# people), which process in which boot (line 2: a holder that is gone, or from an earlier boot, is
# stale) and a token no other holder ever has (line 3). Taking a free lock is one rename of a
# complete directory (it fails while var/lock exists and is not empty); taking a stale one is one
# rename of its holder file to a name of our own: of several takers exactly one can move that
# file, and it checks that what it moved is the stale holder it judged (by the token) before
# writing its own. A lock without a holder is being taken over: it counts as held.
holder_text() { # WHO PID
    printf '%s\npid %s boot %s\ntoken %s-%s\n' "$1" "$2" "$(bootid)" \
        "$(cat /proc/sys/kernel/random/uuid 2>/dev/null || date +%s)" "$$"
}

holder_alive() { # HOLDER-TEXT
    pid=$(printf '%s\n' "$1" | sed -n 's/^pid \([0-9]*\) boot .*/\1/p')
    b=$(printf '%s\n' "$1" | sed -n 's/^pid [0-9]* boot //p')
    [ -n "$pid" ] || return 0
    [ "$b" = "$(bootid)" ] && kill -0 "$pid" 2>/dev/null
}

lock_alive() { holder_alive "$(cat "$P/var/lock/holder" 2>/dev/null || true)"; }

# Writes the holder of a lock this process already holds (temp + rename), or takes a free lock
# with that holder.
put_holder() { # WHO PID
    if [ -d "$P/var/lock" ]; then
        holder_text "$1" "$2" > "$P/var/lock/.holder.$$"
        mv -f "$P/var/lock/.holder.$$" "$P/var/lock/holder"
    else
        rm -rf "$P/var/.lock.$$"; mkdir "$P/var/.lock.$$"
        holder_text "$1" "$2" > "$P/var/.lock.$$/holder"
        mv -T "$P/var/.lock.$$" "$P/var/lock" 2>/dev/null || { rm -rf "$P/var/.lock.$$"; die "the deploy lock was taken meanwhile"; }
    fi
}

lock() { # WHO
    mkdir -p "$P/var"
    new=$P/var/.lock.$$
    rm -rf "$new"; mkdir "$new"
    holder_text "$1" "$$" > "$new/holder"
    tries=0
    while ! mv -T "$new" "$P/var/lock" 2>/dev/null; do
        seen=$(cat "$P/var/lock/holder" 2>/dev/null || true)
        if [ -z "$seen" ]; then
            # A taker that died between its two renames leaves its claim: give it back.
            for c in "$P"/var/lock/.claim.*; do
                [ -f "$c" ] || continue
                kill -0 "${c##*.claim.}" 2>/dev/null && continue
                ln "$c" "$P/var/lock/holder" 2>/dev/null || true
                rm -f "$c"
            done
        fi
        if [ -d "$P/var/lock" ] && holder_alive "$seen"; then
            rm -rf "$new"
            echo "pideploy-agent: locked by $(printf '%s\n' "${seen:-someone taking over a stale lock}" | head -n1)" >&2
            exit 75
        fi
        claim=$P/var/lock/.claim.$$
        if [ -n "$seen" ] && mv "$P/var/lock/holder" "$claim" 2>/dev/null; then
            if [ "$(cat "$claim")" = "$seen" ]; then
                mv -f "$new/holder" "$P/var/lock/holder"
                rm -f "$claim"
                rm -rf "$new"
                break
            fi
            # Not the stale holder: someone took the lock meanwhile; give it back.
            ln "$claim" "$P/var/lock/holder" 2>/dev/null || true
            rm -f "$claim"
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { rm -rf "$new"; die "could not take the deploy lock $P/var/lock; try again"; }
    done
    trap 'rm -rf "$P/var/lock"' EXIT
}

# The pending generation (activated or on tryboot, waiting for the deployer's confirmation):
# var/pending holds "key value" lines.
# The value of KEY in the pending record (its first line "KEY VALUE"); read in the shell, since
# a commit asks for several and each sed | head pair cost two processes.
pending_get() { # KEY
    [ -f "$P/var/pending" ] || return 0
    while IFS= read -r pg_line; do
        case $pg_line in "$1 "*) printf '%s\n' "${pg_line#"$1 "}"; return 0 ;; esac
    done < "$P/var/pending"
}

pending_put() { # N KIND TOP PREVIOUS ROOTARG TIMEOUT DEPLOYER SECRETS KEEP
    printf 'generation %s\nkind %s\ntop %s\nprevious %s\nrootarg %s\ntimeout %s\ndeployer %s\nagent %s\nsecrets %s\nkeep %s\n' \
        "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$self" "$8" "${9:-0}" > "$P/var/.pending.tmp"
    sync
    mv -f "$P/var/.pending.tmp" "$P/var/pending"
    sync
}

# Secrets. Nothing here follows a symlink or trusts a directory a non-root user could change:
# every directory from ROOT down to a secret's parent must be a real directory (no symlink),
# owned by root and writable by nobody else (missing ones are created 0755); the file is made by
# mktemp in that directory, written, chowned and chmoded there, and renamed over the target
# (rename replaces a symlink or file at the target, never writes through it).
# Each generation's set lives in $S/N (root-only): `list` ("I MODE UID GID TARGET" lines) and
# the contents as files 0, 1, ... `installed` names the targets in place, `current` the set.
S=$root/var/lib/pideploy/secrets

# Whether DIR (a path on the target) and every directory above it up to ROOT are safe; prints
# the first one that is not, with why. Creates missing ones when CREATE is 1.
dir_chain() { # DIR CREATE
    s_p=$root
    s_rest=${1#/}
    while [ -n "$s_rest" ]; do
        s_c=${s_rest%%/*}
        case "$s_rest" in */*) s_rest=${s_rest#*/} ;; *) s_rest= ;; esac
        case "$s_c" in ''|.) continue ;; ..) echo "${s_p#"$root"}/.. (a parent reference)"; return 1 ;; esac
        s_p=$s_p/$s_c
        if [ ! -e "$s_p" ] && [ ! -L "$s_p" ]; then
            [ "$2" = 1 ] || { echo "${s_p#"$root"} (missing)"; return 2; }
            mkdir -m 0755 "$s_p" 2>/dev/null || { echo "${s_p#"$root"} (cannot be created)"; return 1; }
        fi
        if [ -L "$s_p" ] || [ ! -d "$s_p" ]; then echo "${s_p#"$root"} (not a directory but $(ls -ldn "$s_p" | cut -c1))"; return 1; fi
        # shellcheck disable=SC2012
        ls -ldn "$s_p" | awk '{ exit !($3 == 0 && substr($1, 6, 1) != "w" && substr($1, 9, 1) != "w") }' \
            || { echo "${s_p#"$root"} (owner uid $(ls -ldn "$s_p" | awk '{ print $3 }'), $(ls -ldn "$s_p" | cut -d' ' -f1))"; return 1; }
    done
}

# Dies unless the secret TARGET can be placed safely.
secret_check() { # TARGET
    s_why=$(dir_chain "${1%/*}" 1) \
        || die "secret $1: $s_why is not a root-owned directory only root can write; nothing was changed (put secrets under such a directory, e.g. /etc/secrets)"
    if [ -d "$root$1" ] && [ ! -L "$root$1" ]; then die "secret $1 is a directory on the target; remove it or choose another path"; fi
}

secret_put() { # SRC TARGET MODE UID GID
    secret_check "$2"
    s_d=$root${2%/*}
    s_t=$(mktemp "$s_d/.pideploy-secret.XXXXXX") || die "secret $2: cannot create a temporary file in ${2%/*}"
    if ! { cat "$1" > "$s_t" && chown "$4:$5" "$s_t" && chmod "$3" "$s_t" && mv -Tf "$s_t" "$root$2"; }; then
        rm -f "$s_t"
        die "secret $2 could not be written"
    fi
}

# Removes a secret pideploy placed, unless a directory above it is no longer safe (then it stays).
secret_remove() { # TARGET
    s_why=$(dir_chain "${1%/*}" 0) || {
        [ $? = 2 ] || echo "pideploy-agent: warning: secret $1 left in place: $s_why is not safe to remove it from" >&2
        return 0
    }
    if [ -L "$root$1" ] || [ -f "$root$1" ]; then rm -f "$root$1"; fi
}

# Makes set NAME (a generation number, `test-PID`, or empty for none) the secrets in place: its
# files written, the targets of the previous set it lacks removed.
secrets_apply() { # NAME
    s_list=/dev/null
    if [ -n "$1" ]; then
        [ -f "$S/$1/list" ] || { echo "pideploy-agent: warning: no secrets are recorded for $1; they stay as they are" >&2; return 0; }
        s_list=$S/$1/list
    fi
    while read -r s_i s_mode s_uid s_gid s_target; do secret_check "$s_target"; done < "$s_list"
    while read -r s_i s_mode s_uid s_gid s_target; do secret_put "$S/$1/$s_i" "$s_target" "$s_mode" "$s_uid" "$s_gid"; done < "$s_list"
    if [ -f "$S/installed" ]; then
        while IFS= read -r s_old; do
            while read -r s_i s_mode s_uid s_gid s_t2; do [ "$s_t2" != "$s_old" ] || continue 2; done < "$s_list"
            secret_remove "$s_old"
        done < "$S/installed"
    fi
    while read -r s_i s_mode s_uid s_gid s_target; do printf '%s\n' "$s_target"; done < "$s_list" > "$S/.installed.tmp"
    mv -f "$S/.installed.tmp" "$S/installed"
    echo "$1" > "$S/.current.tmp"; mv -f "$S/.current.tmp" "$S/current"
    sync
}

# The secrets store itself: root-only.
secrets_dir() {
    s_why=$(dir_chain /var/lib/pideploy/secrets 1) || die "the secrets store: $s_why is not a root-owned directory only root can write"
    chmod 0700 "$S"
}

# Back to the secrets of before a pending or failed generation (`pending secrets`: `keep` or `set:NAME`).
secrets_restore() { # keep|set:NAME
    case "$1" in set:*) (secrets_apply "${1#set:}") || echo "pideploy-agent: warning: the previous secrets could not be restored" >&2 ;; esac
}

# Keeps STAGE (a received secret set) as set NAME, replacing an older one of that name.
set_store() { # NAME STAGE
    if [ -d "$S/$1" ]; then mv -T "$S/$1" "$S/.old-$1.$$"; fi
    mv -T "$2" "$S/$1"
    rm -rf "$S/.old-$1.$$"
}

# Puts set NAME in place; when that fails, the secrets of before come back, generation DROP (if
# any) goes, and the failure is the last line.
secrets_or_undo() { # NAME DROP
    if ! s_err=$( (secrets_apply "$1") 2>&1 ); then
        secrets_restore "$sprev" 2>/dev/null
        [ -z "$2" ] || drop_gen "$2"
        die "$(printf '%s\n' "$s_err" | tail -n1 | sed 's/^pideploy-agent: //')"
    fi
}

# Drops generations beyond the newest VALUE (HOW keep; VALUE 0 keeps all) or made more than
# VALUE seconds before NOW (HOW age) -- never the default, the running or the pending one --,
# their boot entries and secret sets, then every store path no remaining generation (nor the
# running system) reaches. Registration goes first, so a path is never valid with partial
# contents. Run under the deploy lock.
prune() { # keep|age VALUE NOW
    how=$1; value=$2; now=$3
    [ "$how" != keep ] || [ "$value" -gt 0 ] || return 0
    mkdir -p "$prof" "$gens"
    default_link=$(readlink "$prof/system" 2>/dev/null || true)
    running=$(readlink "$root/run/current-system" 2>/dev/null || true)
    nums=$(for l in "$prof"/system-*-link; do [ -L "$l" ] || continue; k=${l##*/system-}; echo "${k%-link}"; done | sort -rn)
    # The running generation: the newest one whose toplevel is running (a switch back to an older
    # closure makes a new generation of it, and the older record need not be kept for it).
    running_gen=
    for pg in $nums; do
        if [ "$(readlink "$prof/system-$pg-link")" = "$running" ]; then running_gen=$pg; break; fi
    done
    pend=$(pending_get generation)
    i=0
    for pg in $nums; do
        i=$((i + 1))
        [ "system-$pg-link" != "$default_link" ] || continue
        [ "$pg" != "$running_gen" ] || continue
        [ "$pg" != "$pend" ] || continue
        if [ "$how" = keep ]; then
            [ "$i" -gt "$value" ] || continue
        else
            pt=$(sed -n 's/^ *"time": *\([0-9][0-9]*\).*/\1/p' "$gens/$pg.json" 2>/dev/null | head -n1)
            if [ -z "$pt" ] || [ $((now - pt)) -le "$value" ]; then continue; fi
        fi
        rm -f "$gens/$pg.json"
        rm -f "$prof/system-$pg-link"
        if [ -d "$boot/gen-$pg" ]; then rm -rf "$boot/gen-$pg"; fi
        echo "removed-generation $pg"
    done
    sync
    # Secret sets of generations that are gone (never the one in place, nor the one a pending
    # generation would go back to).
    if [ -d "$S" ] && dir_chain /var/lib/pideploy/secrets 0 > /dev/null; then
        cur_set=$(cat "$S/current" 2>/dev/null || true)
        back_set=$(pending_get secrets); back_set=${back_set#set:}
        for d in "$S"/*; do
            [ -d "$d" ] && [ ! -L "$d" ] || continue
            k=${d##*/}
            [ "$k" != "$cur_set" ] && [ "$k" != "$back_set" ] || continue
            case "$k" in *[!0-9]*) ;; *) [ ! -L "$prof/system-$k-link" ] || continue ;; esac
            rm -rf "$d"
        done
    fi
    # Reachability over the registrations' `ref` lines, from the remaining toplevels + the running
    # system: one awk over every registration (a process per path made a switch's commit slow).
    work=$P/var/gc.$$
    rm -rf "$work"; mkdir -p "$work"
    for l in "$prof"/system-*-link; do
        if [ -L "$l" ]; then readlink "$l"; fi
    done > "$work/roots"
    if [ -n "$running" ]; then echo "$running" >> "$work/roots"; fi
    : > "$work/dead"
    if [ -d "$db" ] && [ -n "$(ls -A "$db")" ]; then
        find "$db" -mindepth 1 -maxdepth 1 -type f | awk -v roots="$work/roots" '
            { files[++n] = $0 }
            END {
                while ((getline r < roots) > 0) { sub(/^\/pideploy\/store\//, "", r); todo[++t] = r }
                for (i = 1; i <= n; i++) {
                    b = files[i]; sub(/.*\//, "", b); valid[b] = 1
                    while ((getline line < files[i]) > 0)
                        if (line ~ /^ref /) { refs[b] = refs[b] " " substr(line, 5) }
                    close(files[i])
                }
                while (t > 0) {
                    b = todo[t--]
                    if (b in live) continue
                    live[b] = 1
                    k = split(refs[b], rs, " ")
                    for (j = 1; j <= k; j++) { r = rs[j]; sub(/^\/pideploy\/store\//, "", r); if (!(r in live)) todo[++t] = r }
                }
                for (b in valid) if (!(b in live)) print b
            }' | sort > "$work/dead"
    fi
    # Registrations first (one sync), then the trees: a path is never valid with partial contents.
    freed=0
    while IFS= read -r b; do
        bytes=0
        if [ -e "$store/$b" ] || [ -L "$store/$b" ]; then
            kb=$(du -sk "$store/$b" | cut -f1)
            bytes=$((kb * 1024))
        fi
        echo "$bytes" > "$work/bytes-$b"
        rm -f "$db/$b"
    done < "$work/dead"
    [ ! -s "$work/dead" ] || sync
    while IFS= read -r b; do
        if [ -e "$store/$b" ] || [ -L "$store/$b" ]; then
            [ -L "$store/$b" ] || chmod -R u+w "$store/$b"
            rm -rf "$store/${b:?}"
        fi
        bytes=$(cat "$work/bytes-$b")
        freed=$((freed + bytes))
        echo "removed-path $b $bytes"
    done < "$work/dead"
    [ ! -s "$work/dead" ] || sync
    rm -rf "$work"
    echo "freed $freed"
}

# One tick of a poll that a trapped signal cuts short: `wait` for a background sleep returns at
# once when a trapped signal arrives (POSIX), a sleep in the foreground would run to its end.
# Succeeds when the tick ran out, fails when it was cut short. `tick`: tenths of a second it lasts
# (a whole second where sleep takes no fractions).
nap() {
    if [ -z "${n_tick:-}" ]; then
        if sleep 0.01 2>/dev/null; then n_tick=0.1; tick=1; else n_tick=1; tick=10; fi
    fi
    sleep "$n_tick" &
    n_pid=$!
    wait "$n_pid" && return 0
    kill "$n_pid" 2>/dev/null || true
    return 1
}

# wake PID OP: USR1 to the agent process PID running OP (`wait` or `confirm`), which naps until
# it. Checked by its command line first: a PID that was reused by anything else is left alone
# (USR1 would end most programs).
wake() {
    [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] || return 0
    case " $(tr '\0' ' ' < "/proc/$1/cmdline" 2>/dev/null) " in
    *" $self $2 "*) kill -USR1 "$1" 2>/dev/null || true ;;
    esac
}

# Starts the waiter, detached from this session (a dropped connection cannot kill it), and hands
# it the lock.
start_waiter() { # N
    setsid sh "$self" wait "$root" "$1" < /dev/null >> "$P/var/waiter.log" 2>&1 &
    put_holder "$(pending_get deployer) (waiting for the confirmation of generation $1)" "$!"
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

# Forgets generation N: its link, record, boot entry, secret set (unless in place) and a
# tryboot.txt naming it.
drop_gen() { # N
    rm -f "$prof/system-$1-link" "$gens/$1.json"
    if [ -d "$S/$1" ] && [ "$(cat "$S/current" 2>/dev/null)" != "$1" ]; then rm -rf "${S:?}/$1"; fi
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
    echo "$2" > "$P/var/.outcome-$1.tmp"
    # The waiter hands the lock back before it answers: the deployer, told at once, may start the
    # next deploy at once, and must not find the lock still held by a waiter about to exit.
    if [ -n "${waiter:-}" ]; then rm -rf "$P/var/lock" "$P/var/waiter-ready.$$"; trap - EXIT; fi
    mv -f "$P/var/.outcome-$1.tmp" "$P/var/outcome-$1"
}

# Confirmed: what the pending kind still lacks becomes permanent.
commit() {
    n=$(pending_get generation); kind=$(pending_get kind)
    case "$kind" in
    live|tryboot) make_default "$n" "$(pending_get top)" "$(pending_get rootarg)" ;;
    esac
    [ "$kind" != tryboot ] || rm -f "$boot/tryboot.txt"
    sync
    k=$(pending_get keep)
    rm -f "$P/var/pending"
    sync
    # generations_to_keep, now that N is the default; what went is reported with the outcome.
    pruned=$(prune keep "${k:-0}" 0 | grep '^removed-generation ' || true)
    outcome "$n" "$(printf '%s\ncommitted %s' "$pruned" "$n" | sed '/^$/d')"
}

# Not confirmed: back to what ran before. A tryboot generation is left by rebooting (the
# committed config.txt then boots).
revert() { # WHY
    n=$(pending_get generation); kind=$(pending_get kind); prev=$(pending_get previous)
    secrets_restore "$(pending_get secrets)"
    case "$kind" in
    live|test) if [ -n "$prev" ]; then activate "$prev" || true; fi ;;
    esac
    [ "$kind" = test ] || drop_gen "$n"
    rm -f "$P/var/pending"
    sync
    # Logged before the outcome hands the lock back: whoever sees the lock free finds the line.
    echo "pideploy: generation $n reverted: $1"
    outcome "$n" "reverted $n: $1"
    if [ "$kind" = tryboot ] && [ -z "$root" ]; then reboot_with ""; fi
}

# Reboots, passing ARG to reboot(2) (`0 tryboot` asks the Pi firmware for a one-shot tryboot).
# systemd passes it itself (systemctl(1): reboot [arg]); a system from before systemd had busybox
# init, whose shutdown tasks read the argument from /run/pideploy/reboot-arg.
reboot_with() { # ARG
    if [ -d /run/systemd/system ]; then
        sync
        systemctl reboot ${1:+"$1"}
        return
    fi
    mkdir -p /run/pideploy
    if [ -n "$1" ]; then echo "$1" > /run/pideploy/reboot-arg; else rm -f /run/pideploy/reboot-arg; fi
    sync
    reboot
}

# Listing of a tree in the form the deployer computes from its own store path: one line per entry,
# sorted bytewise: "d PATH", "l PATH TARGET", "f PATH X|- SHA256".
# The listing of the trees NAME... (relative to the working directory) in the deployer's format
# (crates/deploy/src/stream.rs) with each name prefixed by its tree's: `d NAME`, `l NAME`,
# `f NAME x|- SHA256`, sorted bytewise. A handful of processes however many trees and files (one
# per entry cost seconds per thousand files): names and types from find, the execute bit from
# -perm, the contents from batched sha256sum. GNU sha256sum writes a name holding a backslash
# escaped, after a leading backslash (systemd's unit names have them); busybox writes it as is.
listing() {
    {
        find "$@" -mindepth 1 -type d | sed 's|^|d |'
        find "$@" -mindepth 1 -type l | sed 's|^|l |'
        find "$@" -mindepth 1 ! -type d ! -type l ! -type f | sed 's|^|? |'
        find "$@" -mindepth 1 -type f -perm -100 | sed 's|^|x |'
        find "$@" -mindepth 1 -type f -exec sha256sum {} + < /dev/null | sed 's|^|h |'
    } | awk '
        $1 == "x" { x[substr($0, 3)] = 1; next }
        $1 == "h" {
            l = substr($0, 3)
            esc = substr(l, 1, 1) == "\\"
            if (esc) l = substr(l, 2)
            name = substr(l, 67)
            if (esc) { gsub(/\\\\/, "\001", name); gsub(/\001/, "\\", name) }
            print "f " name " " (name in x ? "x" : "-") " " substr(l, 1, 64)
            next
        }
        { print }' | LC_ALL=C sort
}

# What the deployer says it sent for the trees NAME... (their .pideploy/NAME.listing), in the form
# `listing NAME...` prints.
sent_listing() {
    for l_b in "$@"; do
        sed "s|^\([dlf]\) |\1 $l_b/|" ".pideploy/$l_b.listing"
        echo
    done | sed '/^$/d' | LC_ALL=C sort
}

# A directory root (`--target local:DIR`, `--root DIR`) may be a card tree someone else made, and
# this runs as root on the deploying machine: a symbolic link where the agent writes would send
# those writes anywhere. So every directory the agent writes below ROOT must be a real directory,
# and nothing below them but the profile links may be a link. (On a Pi, ROOT is `/` and these
# places are root's alone: the check is skipped there.) The read-only operations need no check.
tree_guard() {
    [ -n "$root" ] || return 0
    for g_d in pideploy pideploy/store pideploy/var pideploy/var/db pideploy/var/db/valid \
        pideploy/var/profiles pideploy/var/generations pideploy/var/lock boot boot/firmware run \
        var var/lib var/lib/pideploy var/lib/pideploy/secrets; do
        [ ! -L "$root/$g_d" ] || die "$root/$g_d is a symbolic link; pideploy writes there and will not follow it (was this tree made by someone else?); make it a real directory"
    done
    g_bad=$(find "$P/var" "$boot" "$root/var/lib/pideploy" -type l ! -path "$prof/*" 2>/dev/null | head -n1)
    [ -z "$g_bad" ] || die "$g_bad is a symbolic link; pideploy writes there and will not follow it (was this tree made by someone else?); remove it"
}
case "$op" in query|generations|describe|doctor) ;; *) tree_guard ;; esac

case "$op" in
query)
    # One round trip: valid paths, generations, default, running system, lock holder, root= of the default entry.
    [ -d "$db" ] && for f in "$db"/*; do [ -e "$f" ] && echo "have ${f##*/}"; done
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
    if command -v zstd > /dev/null 2>&1; then echo "codec zstd"; fi
    # The digest of the secret set in place (root-only, like the set): equal to the deployer's,
    # a switch to the running default has nothing left to do.
    s_cur=$(cat "$S/current" 2>/dev/null || true)
    if [ -n "$s_cur" ] && [ -f "$S/$s_cur/digest" ] && [ ! -L "$S/$s_cur" ]; then echo "secrets $(head -c 64 "$S/$s_cur/digest")"; fi
    echo "end" ;;

receive)
    # receive ROOT [zstd|xz]; stdin: compressed tar of <base>/... trees plus .pideploy/<base>.listing
    # and .pideploy/reg/<base>
    mkdir -p "$store" "$db"
    # Leftovers of receivers that are gone: before, and again after this one (a killed receiver's
    # decompressor and tar can outlive it by a moment and still be writing at the first pass).
    clean_incoming() {
        for d in "$store"/.incoming-*; do
            [ -d "$d" ] || continue
            pid=${d##*-}
            [ "$pid" != $$ ] || continue
            kill -0 "$pid" 2>/dev/null || { chmod -R u+w "$d" 2>/dev/null; rm -rf "$d" 2>/dev/null; }
        done
        true
    }
    clean_incoming
    in=$store/.incoming-$$
    mkdir "$in"
    trap 'chmod -R u+w "$in" 2>/dev/null; rm -rf "$in"' EXIT
    case "${1:-xz}" in
    zstd) unpack() { zstd -dcq; } ;;
    xz) unpack() { unxz; } ;;
    *) die "receive: unknown codec $1" ;;
    esac
    # The pipeline's status is tar's: the decompressor's failure is caught by a marker line.
    ok=
    err=$( { { unpack || echo "pideploy: decompressing failed" >&2; } | tar -x -C "$in"; } 2>&1 ) && ok=1
    case "$err" in *"pideploy: decompressing failed"*) ok= ;; esac
    if [ -z "$ok" ]; then
        case "$err" in
        *"No space left"*|*"Disk quota"*)
            chmod -R u+w "$in" 2>/dev/null; rm -rf "$in"
            die "the target's disk is full ($(df -k "$store" | awk 'NR == 2 { print int($4 / 1024) }') MiB free under $store); nothing was registered: free space (pideploy gc --target ...) and deploy again" ;;
        *) die "the stream was cut or is corrupt ($(echo "$err" | grep -v '^pideploy: decompressing failed$' | tail -n 1)); nothing was registered (run the deploy again)" ;;
        esac
    fi
    n=0
    # Every tree against its listing, all at once; on a difference, tree by tree to name it.
    bases=
    for reg in "$in"/.pideploy/reg/*; do
        [ -e "$reg" ] || continue
        base=${reg##*/}
        [ -f "$reg" ] && [ ! -L "$reg" ] && [ -d "$in/$base" ] && [ ! -L "$in/$base" ] && [ -f "$in/.pideploy/$base.listing" ] \
            || die "$base does not match what was sent; nothing of it was registered"
        bases="$bases $base"
    done
    if [ -n "$bases" ]; then
        # Split on blanks, never globbed: store path names have no blanks, but may hold '?'.
        # shellcheck disable=SC2086
        if [ "$(cd "$in" && set -f && listing $bases)" != "$(cd "$in" && set -f && sent_listing $bases)" ]; then
            set -f
            for base in $bases; do
                [ "$(cd "$in" && listing "$base")" = "$(cd "$in" && sent_listing "$base")" ] \
                    || die "$base does not match what was sent; nothing of it was registered"
            done
            die "the stream does not match what was sent; nothing of it was registered"
        fi
    fi
    # Paths registered meanwhile are left as they are; a tree without its registration (an
    # interrupted receive) is replaced. Then one sync makes every new tree durable before the
    # renames publish them, and one more the registrations: a few processes for any number of
    # paths, where a process per path cost seconds on a first deploy.
    set -f
    new=
    for base in $bases; do
        if [ -f "$db/$base" ] && [ -e "$store/$base" ]; then continue; fi
        if [ -e "$store/$base" ]; then chmod -R u+w "$store/$base"; rm -rf "${store:?}/$base"; fi
        new="$new $base"
        n=$((n + 1))
    done
    if [ -n "$new" ]; then
        sync
        # shellcheck disable=SC2086
        (cd "$in" && mv $new "$store/") || die "could not move the received paths into $store"
        # shellcheck disable=SC2086
        (cd "$in/.pideploy/reg" && mv -f $new "$db/") || die "could not register the received paths in $db"
        sync
    fi
    set +f
    clean_incoming
    echo "registered $n" ;;

switch)
    # switch ROOT MODE TOPLEVEL DEPLOYER TIME MESSAGE ROOTARG CONFIRM [KEEP [SECRETS]]
    # MODE: switch (activate + default + boot entry), boot (default + boot entry), test (activate
    # only), tryboot (boot entry + tryboot.txt; the deployer reboots into it once). CONFIRM > 0:
    # after activating, a detached waiter gives the deployer that many seconds to confirm.
    # KEEP > 0: once the new generation is the default, only the newest KEEP generations stay
    # (besides the default, running and pending ones). SECRETS = 1: stdin is a tar of the new
    # generation's secret set (`list` and files 0, 1, ...), which replaces the secrets in place.
    # The work runs in its own session, off the connection: a link cut mid-activation cannot stop
    # it half-way (with magic rollback the waiter then reverts it). This end relays its answer.
    if [ -z "${PIDEPLOY_DETACHED:-}" ]; then
        mkdir -p "$P/var"
        stage=
        if [ "${9:-0}" = 1 ]; then
            secrets_dir
            for d in "$S"/.incoming-*; do
                [ -d "$d" ] || continue
                pid=${d##*/.incoming-}; pid=${pid%%.*}
                kill -0 "$pid" 2>/dev/null || rm -rf "$d"
            done
            stage=$(mktemp -d "$S/.incoming-$$.XXXXXX") || die "cannot create a directory for the secrets under $S"
            if ! tar -x -C "$stage" -f - 2>/dev/null || [ ! -f "$stage/list" ] \
                || [ -n "$(find "$stage" -mindepth 1 ! -type f)" ]; then
                rm -rf "$stage"
                die "the secrets stream was cut or is not what the deployer sends; nothing was changed"
            fi
        fi
        out=$P/var/switch.out.$$; err=$P/var/switch.err.$$
        PIDEPLOY_DETACHED=1 PIDEPLOY_SECRETS=$stage setsid sh "$self" switch "$root" "$@" < /dev/null > "$out" 2> "$err" &
        rc=0
        wait $! || rc=$?
        cat "$err" >&2; cat "$out"
        rm -f "$out" "$err"
        [ -z "$stage" ] || rm -rf "$stage"
        exit $rc
    fi
    mode=$1; top=$2; deployer=$3; now=$4; message=$5; rootarg=$6; confirm=${7:-0}; keep=${8:-0}
    sec=${PIDEPLOY_SECRETS:-}
    lock "$deployer"
    [ ! -f "$P/var/pending" ] || die "generation $(pending_get generation) is still waiting for its confirmation; try again when it is committed or reverted (pideploy generations)"
    rm -f "$P"/var/outcome-* "$P"/var/confirm-* "$P"/var/waiter-ready.*
    base=${top#/pideploy/store/}
    [ -f "$db/$base" ] || die "$top is not valid on the target (copy it first)"
    entry_check "$top"
    mkdir -p "$prof" "$gens"
    # Secrets: every target checked before anything changes; `sprev` is how to go back.
    sprev=keep
    if [ -n "$sec" ]; then
        while read -r s_i s_mode s_uid s_gid s_target; do secret_check "$s_target"; done < "$sec/list"
        sprev=set:$(cat "$S/current" 2>/dev/null || true)
    fi
    # Same closure as the default and the running system: nothing to do, nothing restarted.
    cur_default=$(readlink "$prof/system" 2>/dev/null || true)
    cur_top=$(readlink "$prof/$cur_default" 2>/dev/null || true)
    running=$(readlink "$root/run/current-system" 2>/dev/null || true)
    if [ "$mode" != test ] && [ "$cur_top" = "$top" ] && { [ "$running" = "$top" ] || [ "$mode" = boot ]; }; then
        if [ -n "$sec" ]; then
            k=${cur_default#system-}; k=${k%-link}
            set_store "$k" "$sec"
            secrets_or_undo "$k" ""
        fi
        echo "unchanged ${cur_default}"
        exit 0
    fi
    if [ "$mode" = test ]; then
        if [ -n "$sec" ]; then set_store "test-$$" "$sec"; secrets_or_undo "test-$$" ""; fi
        activate "$top" || { secrets_restore "$sprev"; activate "$running" || true; die "activation of $top failed; $running is active again"; }
        if [ "$confirm" -gt 0 ]; then
            pending_put 0 test "$top" "$running" "$rootarg" "$confirm" "$deployer" "$sprev" 0
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
    # The new generation's secrets go in place first, so services it starts find them.
    if [ -n "$sec" ]; then set_store "$n" "$sec"; secrets_or_undo "$n" "$n"; fi
    case "$mode" in
    switch)
        if ! activate "$top"; then
            # Level 1 rollback: the previous system comes back, the failed generation goes.
            echo "pideploy-agent: activation of generation $n failed; re-activating ${running:-nothing}" >&2
            secrets_restore "$sprev"
            if [ -n "$running" ]; then activate "$running" || true; fi
            drop_gen "$n"
            die "activation of generation $n failed; the previous generation is active and still the default"
        fi
        if [ "$confirm" -gt 0 ]; then
            pending_put "$n" live "$top" "$running" "$rootarg" "$confirm" "$deployer" "$sprev" "$keep"
            start_waiter "$n"
            echo "pending $n"
            exit 0
        fi
        make_default "$n" "$top" "$rootarg"
        prune keep "$keep" "$now" ;;
    boot)
        make_default "$n" "$top" "$rootarg"
        prune keep "$keep" "$now" ;;
    tryboot)
        [ -d "$boot" ] && [ -f "$boot/config.txt" ] || die "tryboot needs the boot partition at $boot"
        write_entry "$n" "$top" "$rootarg"
        write_config "$n" "$top" tryboot.txt
        pending_put "$n" tryboot "$top" "$running" "$rootarg" "$confirm" "$deployer" "$sprev" "$keep" ;;
    *) die "unknown mode $mode" ;;
    esac
    echo "generation $n" ;;

wait)
    # wait ROOT N: the detached waiter. Commits on "commit", reverts on "revert" or at the timeout.
    n=$1
    # The confirmation wakes this with USR1 (a tick of a tenth of a second, counted rather than read
    # from a clock that timesyncd may step, covers a signal between the look and the nap). Until
    # this trap is set USR1 would end the waiter, so `confirm` sends it only once the ready file
    # below exists.
    trap : USR1
    [ "$(pending_get generation)" = "$n" ] || die "generation $n is not pending"
    t=$(pending_get timeout)
    put_holder "$(pending_get deployer) (waiting for the confirmation of generation $n)" "$$"
    trap 'rm -rf "$P/var/lock" "$P/var/waiter-ready.$$"' EXIT
    waiter=1
    : > "$P/var/waiter-ready.$$"
    # A live generation's boot entry (a copy of its kernel and initramfs, and a sync) is written
    # now, while the deployer connects again, rather than in the commit it waits for; a revert
    # drops it with the generation. In a subshell: a failure here leaves it to the commit, which
    # reports it, and must not end the waiter.
    if [ "$(pending_get kind)" = live ] && [ -d "$boot" ] && [ -f "$boot/config.txt" ] \
        && [ ! -d "$boot/gen-$n" ] && [ -n "$(pending_get rootarg)" ]; then
        (write_entry "$n" "$(pending_get top)" "$(pending_get rootarg)") > /dev/null 2>&1 || rm -rf "$boot/gen-$n" "$boot/gen-$n.tmp"
    fi
    i=0
    verdict=
    while :; do
        if [ -f "$P/var/confirm-$n" ]; then verdict=$(sed -n 1p "$P/var/confirm-$n"); break; fi
        [ "$i" -lt "$((t * 10))" ] || break
        nap && i=$((i + tick))
    done
    # The confirmation's end waits for the outcome: woken the same way.
    c_pid=$(sed -n 's/^pid //p' "$P/var/confirm-$n" 2>/dev/null || true)
    case "$verdict" in
    commit) commit ;;
    revert) revert "the deployer asked for it" ;;
    *) revert "no confirmation within $t s" ;;
    esac
    [ -z "$c_pid" ] || wake "$c_pid" confirm ;;

confirm)
    # confirm ROOT N commit|revert: hands the verdict to the waiter (or applies it when none runs).
    n=$1; verdict=$2
    case "$verdict" in commit|revert) ;; *) die "confirm: commit or revert, not $verdict" ;; esac
    if [ "$(pending_get generation)" != "$n" ]; then
        if [ -f "$P/var/outcome-$n" ]; then cat "$P/var/outcome-$n"; rm -f "$P/var/outcome-$n"; exit 0; fi
        die "generation $n is not waiting for a confirmation (see pideploy generations)"
    fi
    if [ -d "$P/var/lock" ] && lock_alive; then
        trap : USR1
        printf '%s\npid %s\n' "$verdict" "$$" > "$P/var/.confirm-$n.tmp"
        mv -f "$P/var/.confirm-$n.tmp" "$P/var/confirm-$n"
        w_pid=$(sed -n 's/^pid \([0-9]*\) boot .*/\1/p' "$P/var/lock/holder" 2>/dev/null || true)
        [ -z "$w_pid" ] || [ ! -f "$P/var/waiter-ready.$w_pid" ] || wake "$w_pid" wait
        # As long as the waiter lives: its commit can take long where `sync` has much to write (a
        # fleet sharing one disk took over a minute). Once a second, whether it still does; it
        # lets go of the lock just before it answers, so a missing lock is looked at twice.
        i=0
        gone=0
        while [ ! -f "$P/var/outcome-$n" ]; do
            nap && i=$((i + tick))
            [ "$i" -ge 10 ] || continue
            i=0
            if [ -d "$P/var/lock" ] && lock_alive; then gone=0; else gone=$((gone + 1)); fi
            [ "$gone" -lt 2 ] || [ -f "$P/var/outcome-$n" ] || die "the waiter of generation $n stopped without answering (see $P/var/waiter.log)"
        done
    else
        lock "confirmation of generation $n"
        if [ "$verdict" = commit ]; then commit; else
            # Without a waiter (no magic rollback) a tryboot generation is left at the next reboot.
            kind=$(pending_get kind)
            if [ "$kind" = tryboot ]; then secrets_restore "$(pending_get secrets)"; drop_gen "$n"; outcome "$n" "reverted $n: the deployer asked for it"; rm -f "$P/var/pending"
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
    if [ -n "$1" ] && [ ! -d /run/systemd/system ] && ! command -v perl > /dev/null; then
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
            secrets_restore "$(pending_get secrets)"
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
            secrets_restore "$(pending_get secrets)"
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
    entry_check "$top"
    # Its secrets come back with it (generations from before secret sets leave them as they are).
    if [ -f "$S/$want/list" ]; then
        sprev=keep
        secrets_or_undo "$want" ""
    fi
    activate "$top" || die "activation of generation $want failed"
    rootarg=
    if [ -f "$boot/config.txt" ]; then
        prefix=$(sed -n 's/^os_prefix=//p' "$boot/config.txt" | tail -n1)
        rootarg=$(tr ' ' '\n' < "$boot/${prefix}cmdline.txt" 2>/dev/null | sed -n 's/^root=//p' | head -n1)
    fi
    make_default "$want" "$top" "$rootarg"
    echo "rolled back to $want" ;;

gc)
    # gc ROOT keep|age VALUE DEPLOYER NOW: see prune, under the deploy lock.
    how=$1; value=$2; deployer=$3; now=$4
    lock "$deployer"
    prune "$how" "$value" "$now"
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
