#!@BUSYBOX@ sh
# Applies generation @SYSTEM@ to a root (default /). Idempotent: running it twice changes nothing the
# second time. Every replacement of a link or file is made under a fresh name and renamed into place.
#   activate [--root DIR] [--boot]
# --boot: called by the generation's own stage 2 before systemd starts (units are started by systemd then).
#
# This runs as root while users own their homes, so it never follows a link or re-resolves a path
# someone else could change (docs/ARCHITECTURE.md, "Activation"):
# - a directory is entered one component at a time from the root (`enter`, `step`); each must be a real
#   directory owned by root or by the owner of what is written there, and the kernel's path of the
#   directory reached (`pwd -P`, which `cd -P` leaves in $PWD: POSIX cd) must be the expected one.
#   All later names are relative to it.
# - a file is made inside a private directory (`mktemp -d`, root-only) created where it belongs, given
#   its owner and mode there, and renamed into place: rename replaces a link, never follows it.
# - owners and modes change only on that private file or on the directory we stand in (`.`).
# - something in the way (a link, a file where a directory belongs, a directory where a file
#   belongs) inside a directory a user owns is that user's doing: it is renamed aside and activation
#   goes on, so a user can neither redirect it nor stop a boot or a deploy. Inside a directory only
#   root can write, activation stops with one line instead.
set -eu
umask 077
root=/
boot=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=$2; shift 2 ;;
        --boot) boot=1; shift ;;
        *) echo "activate: unknown argument $1 (use --root DIR or --boot)" >&2; exit 2 ;;
    esac
done
R=${root%/}
self=$(cd "$(dirname "$0")" && pwd -P)
sys=/pideploy/store/$(basename "$self")
data=$self/activation
etc_store=$(readlink "$self/etc")
die() { echo "activate: $*" >&2; exit 1; }
# The root's physical path: every directory entered below is checked against it.
Rp=$(cd -P -- "$root" && pwd -P) || die "cannot enter the root $root"
Rp=${Rp%/}
# Owners that count as root: root, and whoever runs this on a tree of their own (--root, tests).
me=$(id -u)

here=-   # physical path of the current directory once `enter` has made it known
shared=0 # 1 when the current directory is writable by someone other than root
# Where NAME in the current directory is, as the person sees it.
at() {
    _a=$R${here#"$Rp"}
    if [ "$1" = . ]; then echo "${_a:-/}"; else echo "$_a/$1"; fi
}

# Renames NAME in the current directory out of the way (only ever inside a shared directory).
move_aside() { # NAME
    _t=$(mktemp -u "./$1.pideploy-moved-XXXXXX") || die "cannot pick a name to move $(at "$1") aside"
    mv -T -- "./$1" "$_t" || die "cannot move $(at "$1") aside"
    echo "activate: $(at "$1") was in the way (a link, or not what pideploy puts there); moved it to $(at "${_t#./}")" >&2
}
# Something is in the way: moved aside in a shared directory, otherwise activation stops.
obstacle() { # NAME WHY
    [ "$shared" = 1 ] || die "$(at "$1") $2"
    move_aside "$1"
}

# step NAME UID GID [probe]: enters the subdirectory NAME of the current one. It must be a real
# directory owned by root or by UID; a missing one is made (owned by UID:GID inside a directory UID
# owns). With probe, anything unexpected returns 1 and nothing is changed.
step() {
    _n=$1 _u=$2 _g=$3 _probe=${4:-}
    if [ -L "$_n" ]; then
        [ -z "$_probe" ] || return 1
        obstacle "$_n" "is a symbolic link, and activation writes only through real directories; remove it"
    elif [ -e "$_n" ] && [ ! -d "$_n" ]; then
        [ -z "$_probe" ] || return 1
        obstacle "$_n" "is not a directory, but the configuration puts files below it; remove it"
    elif [ -d "$_n" ]; then
        _o=$(stat -c %u -- "$_n") || die "cannot read the owner of $(at "$_n")"
        if [ "$_o" != 0 ] && [ "$_o" != "$me" ] && [ "$_o" != "$_u" ]; then
            [ -z "$_probe" ] || return 1
            obstacle "$_n" "is owned by uid $_o; activation writes only into directories owned by root or by the owner of the file; fix its owner"
        fi
    fi
    if [ ! -e "$_n" ]; then
        [ -z "$_probe" ] || return 1
        mkdir -m 0755 -- "./$_n" || die "cannot create $(at "$_n")"
        [ "$shared" = 0 ] || chown -h "$_u:$_g" -- "./$_n" || die "cannot hand $(at "$_n") to uid $_u"
    fi
    cd -P -- "./$_n" || die "cannot enter $(at "$_n")"
    [ "$PWD" = "$here/$_n" ] || { [ -z "$_probe" ] || return 1; die "$R${here#"$Rp"}/$_n moved while activation entered it; run activation again"; }
    here=$here/$_n
    # Shared: owned by a user, or writable by group or others (then anyone could have put things here).
    _m=$(stat -c '%u %a' .) || die "cannot read the owner and mode of $(at .)"
    set -- $_m
    if { [ "$1" != 0 ] && [ "$1" != "$me" ]; } || [ $((0$2 & 022)) != 0 ]; then shared=1; else shared=0; fi
}

nl='
'
# Directories only root can change, seen with one `stat` instead of one per component entered (a
# fork costs milliseconds on a Pi's first boot, more under emulation): " . etc etc/ssl ".
# look DIR...: adds DIR and its parents (relative to the root) that are real directories, owned
# by root (or $me), writable by nobody else. A path whose every component is listed can only have
# been changed by root between this look and a later `enter`, so `enter` goes there in one step.
trusted=" "
look() {
    _all=.
    for _d in "$@"; do
        while [ -n "$_d" ]; do
            case "$nl$_all$nl" in *"$nl$_d$nl"*) ;; *) _all=$_all$nl$_d ;; esac
            case $_d in */*) _d=${_d%/*} ;; *) _d= ;; esac
        done
    done
    # Not following the last component: a link is reported as a link. Missing paths print nothing.
    _out=$(cd -P -- "$Rp/" && IFS=$nl && set -f && stat -c '%u %f %n' -- $_all 2>/dev/null) || true
    while read -r _u _f _n; do
        [ -n "$_n" ] || continue
        [ "$_u" = 0 ] || [ "$_u" = "$me" ] || continue
        _m=$((0x$_f))
        [ $((_m & 0170000)) = 16384 ] && [ $((_m & 022)) = 0 ] || continue
        trusted="$trusted$_n "
    done <<EOF
$_out
EOF
}
# True when DIR and every parent up to the root were seen by `look`.
is_trusted() { # DIR
    case "$trusted" in *" . "*) ;; *) return 1 ;; esac
    _t=$1
    while [ -n "$_t" ]; do
        case "$trusted" in *" $_t "*) ;; *) return 1 ;; esac
        case $_t in */*) _t=${_t%/*} ;; *) _t= ;; esac
    done
}

# enter DIR UID GID [probe]: makes DIR (relative to the root; "" for the root itself) the current
# directory, one checked component at a time (in one step where `look` found the way trusted).
enter() {
    _dir=$1
    # Already there, and only root can have changed it since.
    [ "$shared" = 0 ] && [ "$here" = "$Rp${_dir:+/$_dir}" ] && return 0
    _want=$Rp${_dir:+/$_dir}
    if is_trusted "$_dir" && cd -P -- "$Rp/$_dir" 2>/dev/null && [ "$PWD" = "${_want:-/}" ]; then
        here=$_want
        shared=0
        return 0
    fi
    cd -P -- "$Rp/" || die "cannot enter the root $root"
    here=$Rp
    shared=0
    while [ -n "$_dir" ]; do
        _c=${_dir%%/*}
        case $_dir in */*) _dir=${_dir#*/} ;; *) _dir= ;; esac
        step "$_c" "$2" "$3" ${4:-} || { here=-; return 1; }
    done
}

# Moves the private file f (the current directory is the private one) over NAME of the parent.
# busybox mv will not rename a file over a link to a directory, so such a link goes first.
replace() { # NAME
    mv -Tf f "../$1" 2>/dev/null && return 0
    [ -L "../$1" ] && rm -f -- "../$1" && mv -Tf f "../$1"
}
# put_file SRC NAME MODE UID GID: installs a copy of SRC as NAME in the current directory.
put_file() {
    # Already in place (a regular file, not a link nor linked elsewhere, with this owner, mode and
    # content) in a directory only root writes: left alone, two processes instead of six. Not in
    # a user's directory, where the file could turn into a FIFO before cmp opens it.
    if [ "$shared" = 0 ] && [ -f "$2" ] && [ ! -L "$2" ] \
        && [ "$(stat -c '%u %g %a %h' -- "$2" 2>/dev/null)" = "$4 $5 ${3#0} 1" ] && cmp -s -- "$1" "$2"; then
        return 0
    fi
    if [ -d "$2" ] && [ ! -L "$2" ]; then
        obstacle "$2" "is a directory, but the configuration puts a file there; remove it"
    fi
    _p=$(mktemp -d "./.pideploy-XXXXXX") || die "cannot create a temporary directory in $(at .)"
    cd -P -- "$_p" && [ "$PWD" = "$here/${_p#./}" ] || die "$(at "${_p#./}") moved while activation wrote $(at "$2"); run activation again"
    { cat -- "$1" > f && chown -h "$4:$5" f && chmod "$3" f && replace "$2"; } || die "cannot write $(at "$2")"
    cd -P .. || die "cannot return to $(at .)"
    rmdir -- "$_p" 2>/dev/null || true
}
# Keeps SRC as the record NAME in /pideploy/var (a fork to compare, not six to rewrite, when equal).
record() { # SRC NAME
    enter pideploy/var 0 0
    if [ -f "$2" ] && [ ! -L "$2" ] && cmp -s -- "$1" "$2"; then return 0; fi
    put_file "$1" "$2" 0644 0 0
}
# put_link TARGET NAME: points NAME in the current directory (only root can write here) at TARGET.
put_link() {
    if [ -d "$2" ] && [ ! -L "$2" ]; then
        obstacle "$2" "is a directory, but this generation puts a link there; remove it"
    fi
    _p=$(mktemp -u "./.pideploy-XXXXXX") || die "cannot pick a temporary name in $(at .)"
    ln -s -- "$1" "$_p" || die "cannot create a link in $(at .)"
    mv -Tf -- "$_p" "./$2" 2>/dev/null && return 0
    { [ -L "$2" ] && rm -f -- "./$2" && mv -Tf -- "$_p" "./$2"; } || { rm -f -- "$_p"; die "cannot replace $(at "$2")"; }
}

# The data files are read whole and split in the shell: its `read` makes a system call per byte,
# which was a third of a first boot's activation under emulation. Their fields have no blanks
# (paths are checked at build time), so "$nl" splits lines and " " fields; `set -f` keeps a `*`
# in a name from being expanded as a pattern.
etc_lines=$(cat -- "$data/etc-files")
files_lines=$(cat -- "$data/files.list")
set -f

# Every directory entered below (as root) is looked at once, with its parents.
dirs="dev proc sys run tmp root home mnt var var/log var/tmp etc boot boot/firmware pideploy/var"
IFS=$nl
for l in $etc_lines; do
    IFS=' '
    set -- $l
    case $2 in */*) dirs="$dirs etc/${2%/*}" ;; esac
    [ "$1" != dir ] || dirs="$dirs etc/$2"
done
IFS=$nl
for l in $files_lines; do
    IFS=' '
    set -- $l
    rel=${2#/}
    case $rel in */*) dirs="$dirs ${rel%/*}" ;; esac
done
IFS=' '
# shellcheck disable=SC2086 # words by design (see above)
look $dirs
unset IFS
for d in dev proc sys run tmp root home mnt var var/log var/tmp etc boot boot/firmware pideploy/var; do
    enter "$d" 0 0
done
enter tmp 0 0 && chmod 1777 .
enter var/tmp 0 0 && chmod 1777 .
enter root 0 0 && chmod 0700 .

# The FHS directories resolve through the running generation's package set.
enter "" 0 0
for d in bin sbin lib usr; do
    want=/run/current-system/sw/$d
    if [ -L "$d" ]; then
        [ "$(readlink -- "$d")" = "$want" ] || put_link "$want" "$d"
    elif [ -e "$d" ]; then
        die "$R/$d is a real directory, but pideploy manages /$d as a link; move it away"
    else
        put_link "$want" "$d"
    fi
done
enter run 0 0
[ "$(readlink current-system 2>/dev/null)" = "$sys" ] || put_link "$sys" current-system

# /etc: generated files are links into /etc/static (this generation's etc), except the few that
# must be real files with their own modes.
enter etc 0 0
[ "$(readlink static 2>/dev/null)" = "$etc_store" ] || put_link "$etc_store" static
# Under --root a link's target, /etc/static/..., would resolve on this machine, so `-ef` cannot
# say whether it is right: one `stat` reads every link instead of a readlink fork each (1 ms
# apiece, a quarter of a one-file switch under --root: benches/deploy.sh). A line counts only if
# it is exactly what the right link prints, 'NAME' -> 'TARGET' (busybox quotes so; GNU stat does
# with QUOTING_STYLE=shell-always and escapes what busybox prints raw), and only if stat printed
# one line per name: a newline in some target adds a line and voids them all. Anything not
# vouched for is read with readlink as before.
linked=
if [ -n "$R" ]; then
    names=
    count=0
    IFS=$nl
    for l in $etc_lines; do
        IFS=' '
        # shellcheck disable=SC2086 # words by design (see above)
        set -- $l
        if [ "$1" = link ] && [ -L "$Rp/etc/$2" ]; then
            names="$names$nl$2"
            count=$((count + 1))
        fi
    done
    if [ "$count" -gt 0 ]; then
        # shellcheck disable=SC2086 # one name per line by design
        linked=$(IFS=$nl && QUOTING_STYLE=shell-always stat -c %N -- $names) || linked=
        IFS=$nl
        for l in $linked; do count=$((count - 1)); done
        [ "$count" = 0 ] && linked=$nl$linked$nl || linked=
    fi
fi
IFS=$nl
for l in $etc_lines; do
    IFS=' '
    # shellcheck disable=SC2086 # words by design (see above)
    set -- $l
    unset IFS
    kind=$1 path=$2 mode=${3:-} uid=${4:-} gid=${5:-}
    case $path in */*) dir=etc/${path%/*} ;; *) dir=etc ;; esac
    name=${path##*/}
    enter "$dir" 0 0
    case "$kind" in
        link)
            # On the live root, a link that already reaches this generation's file is left without
            # a readlink fork per link (the image builder lays gen 1's links down; every boot checks
            # them all); under --root the one `stat` above vouches for it.
            # shellcheck disable=SC3013 # -ef: busybox ash and dash (the shells this runs in) have it
            if [ -z "$R" ] && [ -L "$name" ] && [ "$name" -ef "$etc_store/$path" ]; then
                :
            elif case $linked in *"$nl'$path' -> '/etc/static/$path'$nl"*) true ;; *) false ;; esac; then
                :
            elif [ ! -L "$name" ] || [ "$(readlink -- "$name" 2>/dev/null)" != "/etc/static/$path" ]; then
                put_link "/etc/static/$path" "$name"
            fi
            ;;
        copy) put_file "$Rp$etc_store/$path" "$name" "$mode" "$uid" "$gid" ;;
        # A package's empty directory (where an admin adds files): made, root's, never removed.
        dir) enter "etc/$path" 0 0 ;;
        *) die "bad line in etc-files: $kind $path" ;;
    esac
done
unset IFS
# Links the previous generation made that this one does not have (compared as fixed strings).
if [ -f "$Rp/pideploy/var/etc-files" ]; then
    # One pass for the lines this generation does not have (not one grep per line: forks are slow).
    while read -r kind path rest; do
        [ "$kind" = link ] || continue
        case $path in */*) dir=etc/${path%/*} ;; *) dir=etc ;; esac
        name=${path##*/}
        enter "$dir" 0 0 probe || continue
        if [ "$(readlink -- "$name" 2>/dev/null)" = "/etc/static/$path" ]; then rm -f -- "./$name" || true; fi
    done <<EOF
$(grep -Fxv -f "$data/etc-files" "$Rp/pideploy/var/etc-files")
EOF
fi
record "$data/etc-files" etc-files
enter etc/dropbear 0 0 && chmod 0700 .

# Users: home directories and authorized keys. /home is root's, so the home itself can only be what
# root made; inside it, the user owns everything.
while read -r name uid gid home; do
    h=${home#/}
    enter "${h%/*}" 0 0
    n=${h##*/}
    if [ -L "$n" ] || { [ -e "$n" ] && [ ! -d "$n" ]; }; then
        die "$(at "$n") is not a directory, but it is the home of $name; remove it"
    fi
    [ -e "$n" ] || mkdir -m 0700 -- "./$n" || die "cannot create $(at "$n")"
    cd -P -- "./$n" && [ "$PWD" = "$here/$n" ] || die "cannot enter $(at "$n")"
    here=$here/$n
    chown -h "$uid:$gid" . && chmod 0700 . || die "cannot hand $here to $name"
    shared=1
    step .ssh "$uid" "$gid"
    chown -h "$uid:$gid" . && chmod 0700 . || die "cannot hand $(at .) to $name"
    shared=1
    put_file "$data/keys/$name" authorized_keys 0600 "$uid" "$gid"
done < "$data/users"

# Files from the config, with their owners and modes.
while read -r src dest mode uid gid; do
    rel=${dest#/}
    case $rel in */*) dir=${rel%/*} ;; *) dir= ;; esac
    enter "$dir" "$uid" "$gid"
    put_file "$data/files/$src" "${rel##*/}" "$mode" "$uid" "$gid"
done < "$data/files.list"
# Files the previous generation installed that this one does not have go (a rollback must not keep
# a newer generation's files). Only paths pideploy recorded are touched, and a directory never.
if [ -f "$Rp/pideploy/var/files.list" ]; then
    while read -r src dest mode uid gid; do
        cut -d ' ' -f 2 "$data/files.list" | grep -Fxq -- "$dest" && continue
        rel=${dest#/}
        case $rel in */*) dir=${rel%/*} ;; *) dir= ;; esac
        name=${rel##*/}
        enter "$dir" "$uid" "$gid" probe || continue
        if [ -L "$name" ] || { [ -e "$name" ] && [ ! -d "$name" ]; }; then rm -f -- "./$name" 2>/dev/null || true; fi
    done < "$Rp/pideploy/var/files.list"
fi
record "$data/files.list" files.list

# setuid wrappers live outside the store (store files never carry setuid bits). /run/wrappers is
# a root-only tmpfs that init mounted.
if [ -s "$data/wrappers" ] && [ -z "$R" ]; then
    rm -rf /run/wrappers/bin.new
    mkdir -m 0755 /run/wrappers/bin.new
    while read -r name src; do
        cp "$src" "/run/wrappers/bin.new/$name"
        chown 0:0 "/run/wrappers/bin.new/$name"
        chmod 4511 "/run/wrappers/bin.new/$name"
    done < "$data/wrappers"
    rm -rf /run/wrappers/bin.old
    [ ! -e /run/wrappers/bin ] || mv /run/wrappers/bin /run/wrappers/bin.old
    mv /run/wrappers/bin.new /run/wrappers/bin
    rm -rf /run/wrappers/bin.old
fi

# Units (activation/units: `UNIT DIGEST [boot|device=DEVICE]`, the generation's enabled units; the digest covers
# the unit file and the package that ships it). The list in effect is recorded first, so a failure
# below reverts through the previous generation's activation, which compares against it.
# On a live switch with systemd as PID 1 (sd_booted(3): /run/systemd/system exists), like NixOS's
# switch-to-configuration: units gone are stopped, changed ones restarted, new ones started, the
# rest left alone. `boot` units (the boot tasks' log, the readiness marker) run at boot only.
# Compared in the shell ("NAME DIGEST" lines between newlines), not with a process per unit.
old_units=$Rp/pideploy/var/units
stop='' restart='' start='' olds=$nl news=$nl
old_lines=
[ ! -f "$old_units" ] || old_lines=$(cat -- "$old_units")
new_lines=$(cat -- "$data/units")
IFS=$nl
for l in $old_lines; do
    IFS=' '
    # shellcheck disable=SC2086 # words by design (see above)
    set -- $l
    olds="$olds$1 $2$nl"
done
IFS=$nl
for l in $new_lines; do
    IFS=' '
    # shellcheck disable=SC2086
    set -- $l
    news="$news$1 $2$nl"
done
IFS=$nl
for l in $old_lines; do
    IFS=' '
    # shellcheck disable=SC2086
    set -- $l
    case "$news" in *"$nl$1 "*) ;; *) stop="$stop $1" ;; esac
done
IFS=$nl
for l in $new_lines; do
    IFS=' '
    # shellcheck disable=SC2086
    set -- $l
    [ "${3:-}" != boot ] || continue
    # A unit its device wants, on a live switch: only while the device is there (a start would wait
    # for it, then fail the activation); it starts when the device appears.
    case "${3:-}" in
        device=*)
            if [ "$boot" = 0 ] && [ -z "$R" ] && ! systemctl is-active --quiet "${3#device=}" 2>/dev/null; then
                echo "pideploy: $1 starts when ${3#device=} appears"
                continue
            fi ;;
    esac
    case "$olds" in
        *"$nl$1 $2$nl"*) ;;
        *"$nl$1 "*) restart="$restart $1" ;;
        *) start="$start $1" ;;
    esac
done
unset IFS
set +f
record "$data/units" units
cd / && here=-
if [ "$boot" = 0 ] && [ -z "$R" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || die "systemctl daemon-reload failed; the previous generation is restored"
    # What this generation's tmpfiles.d asks for (a new package's /var/lib/NAME), as at boot;
    # systemd-tmpfiles never follows a link a user planted (it works through O_PATH descriptors).
    # Part of the activation: if it fails, the previous generation is restored.
    systemd-tmpfiles --create || die "systemd-tmpfiles --create failed (its lines are above); the previous generation is restored"
    if [ -n "$stop" ]; then
        echo "pideploy: stopping$stop"
        # shellcheck disable=SC2086
        systemctl stop $stop || echo "activate: warning: stopping$stop reported an error" >&2
    fi
    if [ -n "$restart" ]; then
        echo "pideploy: restarting$restart"
        # shellcheck disable=SC2086
        systemctl restart $restart || die "restarting$restart failed (see: journalctl -b -u UNIT, or pideploy logs)"
    fi
    if [ -n "$start" ]; then
        echo "pideploy: starting$start"
        # shellcheck disable=SC2086
        systemctl start $start || die "starting$start failed (see: journalctl -b -u UNIT, or pideploy logs)"
    fi
elif [ "$boot" = 0 ] && [ -z "$R" ]; then
    echo "pideploy: PID 1 is not systemd (a generation from before systemd runs): this generation's services start at the next boot" >&2
fi
echo "pideploy: activated $sys"
