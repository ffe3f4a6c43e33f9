#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PID 1 of the test guest (started by tests/vm/initramfs-init.sh), booted twice by tests/vm/run.sh:
#
#   boot 1  a fresh host: the playbooks from the start, then the declaration kept across the reboot; the
#           folder the collection saved to is carried to boot 2 in /run/vds-persist, as a disk keeps it
#   boot 2  an empty kernel target: the boot-time restore ('targetctl restore'), then the declaration
#           checked and applied again (no change), then a host that targetcli configured
#
# It writes the exit status to /run/vds-out/rc and powers off.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
OUT=/run/vds-out
PERSIST=/run/vds-persist
# Where rtslib-fb (Debian: /etc/rtslib-fb-target, upstream and Fedora: /etc/target) and the kernel
# (/var/target) keep the target's configuration.
LEFTOVERS=(/etc/rtslib-fb-target /etc/target /var/target)

finish() {
    printf '%s\n' "$1" >"$OUT/rc"
    sync
    echo o >/proc/sysrq-trigger
    sleep 10
}

step() { printf '\n=== guest: %s (%ss since boot)\n' "$*" "$(cut -d' ' -f1 /proc/uptime)"; }

mounts() {
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev
    mkdir -p /dev/pts /dev/shm
    mount -t devpts devpts /dev/pts
    # No tmpfs on /tmp: the overlay root is writable already, and the checkout may live under /tmp.
    mount -t tmpfs tmpfs /dev/shm
}

# Whatever an earlier install or run left on the machine that runs this test (the guest's root is that
# machine's, under an overlay) must not help: the guest starts as a host that has only the packages.
fresh_host() {
    local path
    rm -rf "${LEFTOVERS[@]}"
    for path in "${LEFTOVERS[@]}"; do
        if [[ -e $path ]]; then
            echo "guest: cannot remove $path"
            return 1
        fi
    done
}

kernel_target() {
    local modules
    modules=$(sed -n 's/.*vds\.modules=\([^ ]*\).*/\1/p' /proc/cmdline)
    mkdir -p /lib/modules
    ln -sfn "$modules" "/lib/modules/$(uname -r)"
    # As systemd mounts it at boot (sys-kernel-config.mount).
    modprobe configfs && mount -t configfs configfs /sys/kernel/config || return 1
    # Boot 2 leaves loading the target modules to the restore, as a host's boot does.
    if ((BOOT == 1)); then
        modprobe -a target_core_mod iscsi_target_mod || return 1
    fi
}

network() {
    modprobe -a iscsi_tcp dummy || return 1
    ip link set lo up
    # A second interface with an IPv4 and a unique-local IPv6 address, as a host's NIC would have.
    ip link add vds0 type dummy && ip link set vds0 up || return 1
    ip addr add 192.0.2.10/24 dev vds0 || return 1
    ip -6 addr add fd00:5d5::10/64 dev vds0 nodad || return 1

    # The initiator: a name of its own, and iscsid in the foreground (in the background here).
    mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
    echo "InitiatorName=iqn.2003-01.org.example.vds:initiator" >/etc/iscsi/initiatorname.iscsi
    iscsid -f >"$OUT/iscsid.log" 2>&1 &
}

targets() {
    # A program outside LIO that holds 127.0.0.1:3290: the kernel refuses a portal there.
    /usr/bin/python3 -c 'import socket, time; s = socket.socket(); s.bind(("127.0.0.1", 3290)); s.listen(); time.sleep(3600)' &

    # The targets the playbooks manage (creating targets is not the collection's job).
    /usr/bin/python3 "$HERE/fixture.py" setup || return 1
    # The refusal test needs that program listening: wait for it (10 s at most).
    local tries
    for ((tries = 0; tries < 100; tries++)); do
        (: </dev/tcp/127.0.0.1/3290) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "guest: the program holding 127.0.0.1:3290 did not start"
    return 1
}

# What the distribution's boot service runs (rtslib-fb-targetctl.service), with nothing done before it
# but carrying the saved folder over, as the disk does.
restore_at_boot() {
    local output
    cp -a "$PERSIST/rtslib-fb-target" /etc/ || return 1
    if ! output=$(/usr/bin/targetctl restore 2>&1) || [[ -n $output ]]; then
        echo "guest: targetctl restore failed: $output"
        return 1
    fi
}

playbooks() {
    export ANSIBLE_CONFIG=$HERE/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$ROOT/.build
    (cd "$HERE" && "$ROOT/.venv/bin/ansible-playbook" -i inventory.yml -e "vds_boot=$BOOT" "$@")
}

boot1() {
    step "boot 1: a fresh host; setting up the kernel target and the initiator"
    fresh_host && kernel_target && network && targets || return 1
    step "boot 1: running the playbooks"
    playbooks main.yml reboot.yml || return 1
    cp -a /etc/rtslib-fb-target "$PERSIST/"
}

boot2() {
    step "boot 2: an empty kernel target; restoring the saved configuration as the boot service does"
    fresh_host && kernel_target && network && restore_at_boot || return 1
    step "boot 2: running the playbook"
    playbooks reboot.yml
}

main() {
    mounts
    # No network here: resolving must never wait on a name server.
    hostname vds-lio-guest
    printf '127.0.0.1 localhost vds-lio-guest\n::1 localhost ip6-localhost\n' >/etc/hosts
    : >/etc/resolv.conf
    BOOT=$(sed -n 's/.*vds\.boot=\([0-9]*\).*/\1/p' /proc/cmdline)
    case $BOOT in
    1) boot1 ;;
    2) boot2 ;;
    *)
        echo "guest: no vds.boot=1|2 on the kernel command line"
        return 1
        ;;
    esac
}

main
rc=$?
step "done (exit status $rc)"
finish "$rc"
