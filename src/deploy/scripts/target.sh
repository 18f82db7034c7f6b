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
    } > "$boot/$3.tmp"
    sync
    mv -f "$boot/$3.tmp" "$boot/$3"
    sync
}

# The deployer's lock: mkdir is atomic. The holder file says who holds it.
lock() {
    mkdir -p "$P/var"
    if ! mkdir "$P/var/lock" 2>/dev/null; then
        holder=$(cat "$P/var/lock/holder" 2>/dev/null || echo unknown)
        pid=${holder##* pid }
        if [ -n "$pid" ] && [ "$pid" != "$holder" ] && ! kill -0 "$pid" 2>/dev/null; then
            rm -rf "$P/var/lock"
            mkdir "$P/var/lock" || die "locked by $holder"
        else
            echo "pideploy-agent: locked by $holder" >&2
            exit 75
        fi
    fi
    echo "$1 pid $$" > "$P/var/lock/holder"
    trap 'rm -rf "$P/var/lock"' EXIT
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
    [ -f "$P/var/lock/holder" ] && echo "locked $(cat "$P/var/lock/holder")"
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
    unxz | tar -x -C "$in" || die "the stream was cut or is corrupt; nothing was registered (run the deploy again)"
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
    # switch ROOT MODE TOPLEVEL DEPLOYER TIME MESSAGE ROOTARG
    # MODE: switch (activate + default + boot entry), boot (default + boot entry), test (activate only)
    mode=$1; top=$2; deployer=$3; now=$4; message=$5; rootarg=$6
    lock "$deployer"
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
        sh "$root$top/activate" --root "${root:-/}" >&2 || die "activation of $top failed"
        echo "tested"
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
    if [ "$mode" = switch ]; then
        if ! sh "$root$top/activate" --root "${root:-/}" >&2; then
            # Level 1 rollback: the previous default comes back, the failed generation goes.
            echo "pideploy-agent: activation of generation $n failed; re-activating $cur_default" >&2
            if [ -n "$cur_top" ]; then sh "$root$cur_top/activate" --root "${root:-/}" >&2 || true; fi
            rm -f "$prof/system-$n-link" "$gens/$n.json"
            exit 1
        fi
    fi
    ln -sfn "system-$n-link" "$prof/.system.tmp"; mv -Tf "$prof/.system.tmp" "$prof/system"
    if [ -d "$boot" ] && [ -f "$boot/config.txt" ]; then
        write_entry "$n" "$top" "$rootarg"
        write_config "$n" "$top" config.txt
    fi
    echo "generation $n" ;;

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
    sh "$root$top/activate" --root "${root:-/}" >&2 || die "activation of generation $want failed"
    ln -sfn "system-$want-link" "$prof/.system.tmp"; mv -Tf "$prof/.system.tmp" "$prof/system"
    if [ -d "$boot/gen-$want" ] && [ -f "$boot/config.txt" ]; then
        write_config "$want" "$top" config.txt
    fi
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

*) die "unknown operation $op" ;;
esac
