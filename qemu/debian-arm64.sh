#!/bin/sh
# Debian arm64 inputs for the qemu-aarch64 board, reached only through apt (never by URL):
#   qemu/debian-arm64.sh indexes DIR        DIR/debian.Packages, DIR/debian-security.Packages from apt's lists
#   qemu/debian-arm64.sh debs LOCK DIR      apt-get download every package LOCK pins that DIR lacks
# Needs `dpkg --add-architecture arm64 && apt-get update` (.ci/install-deps.sh does it).
set -eu
pideploy=${PIDEPLOY:-pideploy}
case "${1:-}" in
indexes)
    dir=$2
    mkdir -p "$dir"
    for f in $(apt-get indextargets --format '$(FILENAME)' 'Architecture: arm64' 'Created-By: Packages'); do
        case "$f" in
            *_debian_dists_bookworm_main_binary-arm64_*) out=debian.Packages ;;
            *_debian-security_dists_bookworm-security_main_binary-arm64_*) out=debian-security.Packages ;;
            *) continue ;;
        esac
        /usr/lib/apt/apt-helper cat-file "$f" > "$dir/$out.tmp"
        mv "$dir/$out.tmp" "$dir/$out"
    done
    if [ ! -s "$dir/debian.Packages" ]; then
        echo "no Debian arm64 index in apt's lists: run .ci/install-deps.sh (adds arm64, apt-get update)" >&2
        exit 1
    fi ;;
debs)
    lock=$2
    dir=$3
    mkdir -p "$dir"
    want=$("$pideploy" fetch --lock "$lock" --list)
    missing=
    for p in $want; do
        name=${p%%:*}
        rest=${p#*:}
        version=${rest#*=}
        # apt-get download names files NAME_VERSION_ARCH.deb with ':' in the version escaped as %3a.
        file="${name}_$(echo "$version" | sed 's/:/%3a/')_${rest%%=*}.deb"
        [ -s "$dir/$file" ] || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        # shellcheck disable=SC2086
        (cd "$dir" && apt-get download -q $missing)
    fi ;;
*)
    echo "usage: $0 indexes DIR | debs LOCK DIR" >&2
    exit 2 ;;
esac
