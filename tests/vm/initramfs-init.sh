#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
#
# /init of the test guest's initramfs (busybox). Mounts the host's root file system read-only over
# virtio-9p with a tmpfs overlay on top, mounts the host's output folder, and hands over to the guest
# script named on the kernel command line (vds.guest=PATH). A third share keeps files from one boot to the next. Any failure powers the guest off; the
# host then finds no result file and reports the console log.
export PATH=/bin

fail() {
    echo "initramfs: $*"
    echo o >/proc/sysrq-trigger
    sleep 5
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

# Modules listed by the host in load order (dependencies first).
while read -r module; do
    insmod "/modules/$module" || fail "insmod $module failed"
done </modules/order

guest=
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
    vds.guest=*) guest=${arg#vds.guest=} ;;
    esac
done
[ -n "$guest" ] || fail "no vds.guest= on the kernel command line"

mkdir -p /lower /rw /newroot
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || fail "cannot mount the host root"
mount -t tmpfs -o size=70% tmpfs /rw || fail "cannot mount the tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "cannot mount the overlay"
mkdir -p /newroot/run/vds-out /newroot/run/vds-persist
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 out /newroot/run/vds-out || fail "cannot mount the output folder"
# What the guest keeps from one boot to the next, as a disk would.
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 persist /newroot/run/vds-persist ||
    fail "cannot mount the persistent folder"

umount /proc /sys /dev 2>/dev/null
exec switch_root /newroot /bin/bash "$guest"
