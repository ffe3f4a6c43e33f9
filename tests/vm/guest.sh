#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# PID 1 of the test guest (started by tests/vm/initramfs-init.sh). Prepares the kernel target and
# the initiator, runs the playbooks, writes the exit status to /run/vds-out/rc and powers off.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/../.." && pwd -P)
OUT=/run/vds-out

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

setup() {
    local modules
    modules=$(sed -n 's/.*vds\.modules=\([^ ]*\).*/\1/p' /proc/cmdline)
    mkdir -p /lib/modules
    ln -sfn "$modules" "/lib/modules/$(uname -r)"
    modprobe configfs && mount -t configfs configfs /sys/kernel/config || return 1
    modprobe -a target_core_mod iscsi_target_mod iscsi_tcp dummy || return 1

    ip link set lo up
    # A second interface with an IPv4 and a unique-local IPv6 address, as a host's NIC would have.
    ip link add vds0 type dummy && ip link set vds0 up || return 1
    ip addr add 192.0.2.10/24 dev vds0 || return 1
    ip -6 addr add fd00:5d5::10/64 dev vds0 nodad || return 1

    # The initiator: a name of its own, and iscsid in the foreground (in the background here).
    mkdir -p /etc/iscsi /run/lock/iscsi /var/lib/iscsi
    echo "InitiatorName=iqn.2003-01.org.example.vds:initiator" >/etc/iscsi/initiatorname.iscsi
    iscsid -f >"$OUT/iscsid.log" 2>&1 &

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

main() {
    mounts
    # No network here: resolving must never wait on a name server.
    hostname vds-lio-guest
    printf '127.0.0.1 localhost vds-lio-guest\n::1 localhost ip6-localhost\n' >/etc/hosts
    : >/etc/resolv.conf
    step "setting up the kernel target and the initiator"
    if ! setup; then
        echo "guest: setup failed"
        return 1
    fi
    step "running the playbooks"
    export ANSIBLE_CONFIG=$HERE/ansible.cfg ANSIBLE_COLLECTIONS_PATH=$ROOT/.build
    (cd "$HERE" && "$ROOT/.venv/bin/ansible-playbook" -i inventory.yml main.yml)
}

main
rc=$?
step "done (exit status $rc)"
finish "$rc"
