#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Proves backend=lio against a real Linux kernel target and open-iscsi's initiator: boots Debian's
# stock kernel under qemu (software emulation), with the host's root file system as the guest's
# (read-only, under a tmpfs overlay), and runs tests/vm/guest.sh there, which runs the playbooks.
# It boots twice: a fresh host, then the same host after a reboot (what the first boot saved is kept).
#
#   scripts/test.sh vm       the usual way (it builds .venv and the collection copy first)
#   tests/vm/run.sh          the same stage alone, once scripts/_env.sh has run
#
# Environment:
#   VDS_VM_REQUIRED=1   a host that cannot run the VM fails instead of skipping (CI sets it)
#   VDS_VM_TIMEOUT=S    wall-clock cap of each boot of the guest, in seconds (default 270)
#
# Exit status: 0 passed, 1 failed, 77 skipped (this host cannot run the VM and it is not required).
set -euo pipefail

SKIPPED=77
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
VM_CACHE=$ROOT/.build/vm
LIMIT=${VDS_VM_TIMEOUT:-270}
# Modules the initramfs loads to reach the host root: virtio PCI, 9p over virtio, overlayfs.
BOOT_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

say() { printf 'vm: %s\n' "$*" >&2; }

# vds_needs, vds_missing: the commands the stage needs, with their Debian packages (one list for both scripts).
# shellcheck source=scripts/_system.sh
source "$ROOT/scripts/_system.sh"

# Copies the guest's console line by line, each line prefixed with the seconds since qemu started,
# so that a slow task shows in the log as it happens.
relay() {
    local start=${EPOCHREALTIME/[.,]/} now line
    while IFS= read -r line || [[ -n $line ]]; do
        now=$((${EPOCHREALTIME/[.,]/} - start))
        printf '%4d.%d %s\n' $((now / 1000000)) $((now / 100000 % 10)) "${line%$'\r'}"
    done
}

cannot_run() {
    say "this host cannot run the VM test: $*"
    if [[ ${VDS_VM_REQUIRED:-} == 1 ]]; then
        say "VDS_VM_REQUIRED=1: failing instead of skipping."
        exit 1
    fi
    say "skipped. On Debian or Ubuntu, as root:"
    say "  apt-get install --no-install-recommends $(vm_packages)"
    exit "$SKIPPED"
}

# The Debian packages of the commands the stage needs, each once.
vm_packages() {
    local pair
    for pair in $(vds_needs vm); do
        printf '%s\n' "${pair#*:}"
    done | sort -u | paste -sd ' '
}

check_host() {
    local missing=() pair
    for pair in $(vds_missing vm); do
        missing+=("${pair%%:*} (package ${pair#*:})")
    done
    if ! file_is_static /bin/busybox; then
        missing+=("a statically linked /bin/busybox (package busybox-static)")
    fi
    if ! /usr/bin/python3 -c 'import rtslib_fb' >/dev/null 2>&1; then
        missing+=("rtslib_fb for /usr/bin/python3 (package python3-rtslib-fb)")
    fi
    if ((${#missing[@]})); then
        cannot_run "missing ${missing[*]}"
    fi
    [[ -x $ROOT/.venv/bin/ansible-playbook && -d $ROOT/.build/ansible_collections/storage/vds ]] ||
        cannot_run "no .venv or collection copy: run it as 'bash scripts/test.sh vm'"
}

file_is_static() {
    [[ -x $1 ]] && ! LC_ALL=C ldd "$1" 2>/dev/null | grep -q '=>'
}

# The kernel package linux-image-amd64 points at, unpacked once per version under .build/vm/.
fetch_kernel() {
    local package version dir tmp
    package=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[^ ]*\)$/\1/p' | head -n 1)
    [[ -n $package ]] || cannot_run "apt knows no linux-image-amd64 package (run apt-get update first)"
    version=$(apt-cache show --no-all-versions "$package" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
    KVER=${package#linux-image-}
    dir=$VM_CACHE/$package-$version
    KERNEL_DIR=$dir
    if [[ -f $dir/.complete ]]; then
        return 0
    fi
    say "fetching $package $version (once; cached in ${dir#"$ROOT"/})"
    rm -rf "$dir"
    tmp=$(mktemp -d "$VM_CACHE/fetch.XXXXXX")
    (cd "$tmp" && apt-get download -q "$package=$version" >/dev/null 2>"$tmp/apt.log") || {
        cat "$tmp/apt.log" >&2
        rm -rf "$tmp"
        cannot_run "apt-get download $package=$version failed"
    }
    mkdir -p "$dir/tree"
    dpkg-deb -x "$tmp"/*.deb "$dir/tree"
    rm -rf "$tmp"
    depmod -b "$dir/tree" "$KVER"
    # The ELF vmlinux inside the compressed bzImage boots faster than the bzImage itself.
    /usr/bin/python3 - "$dir/tree/boot/vmlinuz-$KVER" "$dir/vmlinux" <<'PY'
import lzma
import sys

data = open(sys.argv[1], "rb").read()
start = data.find(b"\xfd7zXZ\x00")
if start < 0:
    sys.exit("no xz payload in %s" % sys.argv[1])
elf = lzma.LZMADecompressor().decompress(data[start:])
if not elf.startswith(b"\x7fELF"):
    sys.exit("the xz payload of %s is not an ELF image" % sys.argv[1])
open(sys.argv[2], "wb").write(elf)
PY
    touch "$dir/.complete"
}

build_initramfs() { # output file
    local tree=$WORK/initramfs module
    mkdir -p "$tree/bin" "$tree/modules" "$tree/proc" "$tree/sys" "$tree/dev"
    cp /bin/busybox "$tree/bin/busybox"
    for module in sh mount umount insmod mkdir switch_root cat sleep; do
        ln -s busybox "$tree/bin/$module"
    done
    cp "$ROOT/tests/vm/initramfs-init.sh" "$tree/init"
    chmod 755 "$tree/init"
    modprobe -a -d "$KERNEL_DIR/tree" -S "$KVER" --show-depends "${BOOT_MODULES[@]}" |
        awk '$1 == "insmod" && !seen[$2]++ {print $2}' >"$WORK/modules.list"
    while read -r module; do
        cp "$module" "$tree/modules/"
        basename "$module" >>"$tree/modules/order"
    done <"$WORK/modules.list"
    (cd "$tree" && find . | cpio -o -H newc --quiet) >"$1"
}

boot() { # boot number (1 or 2)
    local console=$VM_CACHE/console-$1.log rc=0 started=$SECONDS
    rm -rf "$VM_CACHE/out"
    mkdir -p "$VM_CACHE/out"
    say "boot $1: booting $KVER under qemu (tcg), capped at ${LIMIT}s; console log: ${console#"$ROOT"/}"
    # The guest powers itself off when done; panic=-1 plus -no-reboot end a crashed guest, and
    # timeout ends a hung one. One vCPU: two measured no faster, and one leaves a host core free. The plain
    # qemu64 CPU, not "max": without AVX the C library takes SSE2 paths, which emulation runs faster
    # (measured: the two boots 148 s and 47 s against 192 s and 61 s).
    timeout --kill-after=10 "$LIMIT" qemu-system-x86_64 \
        -accel tcg -cpu qemu64 -smp 1 -m 2048 -nographic -no-reboot -nic none \
        -kernel "$KERNEL_DIR/vmlinux" -initrd "$WORK/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet loglevel=3 vds.boot=$1 vds.guest=$ROOT/tests/vm/guest.sh vds.modules=$KERNEL_DIR/tree/lib/modules/$KVER" \
        -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
        -virtfs "local,path=$VM_CACHE/out,mount_tag=out,security_model=none" \
        -virtfs "local,path=$WORK/persist,mount_tag=persist,security_model=none" \
        </dev/null 2>&1 | relay | tee "$console" || rc=$?
    say "boot $1: the guest ran for $((SECONDS - started))s"
    if [[ ! -f $VM_CACHE/out/rc ]]; then
        if ((rc == 124 || rc == 137)); then
            say "FAILED: boot $1 did not finish within ${LIMIT}s (VDS_VM_TIMEOUT) and was stopped"
        else
            say "FAILED: boot $1 stopped without a result (qemu exit status $rc); see the console log above"
        fi
        return 1
    fi
    rc=$(<"$VM_CACHE/out/rc")
    if [[ $rc != 0 ]]; then
        say "FAILED: the guest's tests failed in boot $1 (exit status $rc)"
        return 1
    fi
    say "boot $1: passed"
}

cleanup() {
    [[ -n ${WORK:-} ]] && rm -rf "$WORK"
}

check_host
mkdir -p "$VM_CACHE"
WORK=$(mktemp -d "$VM_CACHE/work.XXXXXX")
trap cleanup EXIT
trap 'exit 130' INT TERM
fetch_kernel
build_initramfs "$WORK/initramfs.cpio"
# Empty at the first boot: the guest starts as a new host; it keeps the saved folder for the second.
mkdir "$WORK/persist"
boot 1
boot 2
