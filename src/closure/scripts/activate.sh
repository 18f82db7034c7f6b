#!@BUSYBOX@ sh
# Applies generation @SYSTEM@ to a root (default /). Idempotent: running it twice changes nothing the
# second time. Every replacement of a link or file is a write to a temporary name and a rename.
#   activate [--root DIR] [--boot]
# --boot: called by the generation's own init (services are started by init afterwards, not restarted here).
set -eu
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

# A link or file replaced by rename, so readers see the old or the new one, never neither.
swap_link() { # target linkpath
    ln -sfn "$1" "$2.pideploy-tmp"
    mv -Tf "$2.pideploy-tmp" "$2"
}
install_file() { # src dest mode uid gid
    cp "$1" "$2.pideploy-tmp"
    chmod "$3" "$2.pideploy-tmp"
    chown "$4:$5" "$2.pideploy-tmp"
    mv -f "$2.pideploy-tmp" "$2"
}

for d in dev proc sys run tmp root home mnt var var/log var/tmp etc boot boot/firmware pideploy/var; do
    mkdir -p "$R/$d"
done
chmod 1777 "$R/tmp" "$R/var/tmp"
chmod 0700 "$R/root"

# The FHS directories resolve through the running generation's package set.
for d in bin sbin lib usr; do
    want=/run/current-system/sw/$d
    if [ -L "$R/$d" ]; then
        [ "$(readlink "$R/$d")" = "$want" ] || swap_link "$want" "$R/$d"
    elif [ -e "$R/$d" ]; then
        echo "activate: $R/$d is a real directory, but pideploy manages /$d as a link; move it away" >&2
        exit 1
    else
        ln -s "$want" "$R/$d"
    fi
done
swap_link "$sys" "$R/run/current-system"

# /etc: generated files are links into /etc/static (this generation's etc), except the few that
# must be real files with their own modes.
swap_link "$etc_store" "$R/etc/static"
while read -r kind path mode uid gid; do
    mkdir -p "$(dirname "$R/etc/$path")"
    case "$kind" in
        link) [ "$(readlink "$R/etc/$path" 2>/dev/null)" = "/etc/static/$path" ] || swap_link "/etc/static/$path" "$R/etc/$path" ;;
        copy) install_file "$R$etc_store/$path" "$R/etc/$path" "$mode" "$uid" "$gid" ;;
        *) echo "activate: bad line in etc-files: $kind $path" >&2; exit 1 ;;
    esac
done < "$data/etc-files"
# Links the previous generation made that this one does not have.
if [ -f "$R/pideploy/var/etc-files" ]; then
    while read -r kind path rest; do
        [ "$kind" = link ] || continue
        grep -q "^link $path\$" "$data/etc-files" && continue
        if [ "$(readlink "$R/etc/$path" 2>/dev/null)" = "/etc/static/$path" ]; then rm -f "$R/etc/$path"; fi
    done < "$R/pideploy/var/etc-files"
fi
install_file "$data/etc-files" "$R/pideploy/var/etc-files" 0644 0 0
mkdir -p "$R/etc/dropbear"
chmod 0700 "$R/etc/dropbear"

# Users: home directories and authorized keys.
while read -r name uid gid home; do
    mkdir -p "$R$home/.ssh"
    chown "$uid:$gid" "$R$home" "$R$home/.ssh"
    chmod 0700 "$R$home" "$R$home/.ssh"
    install_file "$data/keys/$name" "$R$home/.ssh/authorized_keys" 0600 "$uid" "$gid"
done < "$data/users"

# Files from the config, with their owners and modes.
while read -r src dest mode uid gid; do
    mkdir -p "$(dirname "$R$dest")"
    install_file "$data/files/$src" "$R$dest" "$mode" "$uid" "$gid"
done < "$data/files.list"
# Files the previous generation installed that this one does not have go (a rollback must not keep
# a newer generation's files). Only paths pideploy recorded are touched.
if [ -f "$R/pideploy/var/files.list" ]; then
    while read -r src dest rest; do
        awk -v d="$dest" '$2 == d { found = 1 } END { exit !found }' "$data/files.list" && continue
        rm -f "$R$dest"
    done < "$R/pideploy/var/files.list"
fi
install_file "$data/files.list" "$R/pideploy/var/files.list" 0644 0 0

# setuid wrappers live outside the store (store files never carry setuid bits).
if [ -s "$data/wrappers" ] && [ -z "$R" ]; then
    mkdir -p /run/wrappers/bin.new
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

# A live switch: busybox init re-reads /etc/inittab on SIGHUP; services whose definition changed
# are restarted by ending them (init respawns them with the new definition).
if [ "$boot" = 0 ] && [ -z "$R" ] && [ -d /proc/1 ]; then
    kill -HUP 1 2>/dev/null || true
    if [ -d /run/pideploy/services ]; then
        for f in /run/pideploy/services/*.digest; do
            [ -e "$f" ] || continue
            name=$(basename "$f" .digest)
            new=$(cat "/etc/pideploy/services/$name.digest" 2>/dev/null || echo gone)
            if [ "$(cat "$f")" != "$new" ] && [ -f "/run/pideploy/services/$name.pid" ]; then
                kill "$(cat "/run/pideploy/services/$name.pid")" 2>/dev/null || true
            fi
        done
    fi
fi
echo "pideploy: activated $sys"
