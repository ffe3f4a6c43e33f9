# shellcheck shell=bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Sourced by scripts/test.sh (not run on its own). vds_system_setup STAGE... makes sure the system
# packages those stages need are there: as root with apt it installs the missing ones, otherwise it
# names them and stops.

# command:Debian package, per stage; "all" is needed by every run.
vds_needs() {
    case $1 in
    all) echo "git:git tar:tar sha256sum:coreutils localedef:libc-bin" ;;
    csharp) echo "mcs:mono-mcs mono:mono-runtime gcc:gcc" ;;
    integration) echo "pkill:procps" ;;
    # busybox here is the static one: the guest's initramfs has no C library. tests/vm/run.sh checks
    # the same list (and that busybox is static) before it boots the guest.
    vm) echo "qemu-system-x86_64:qemu-system-x86 iscsiadm:open-iscsi iscsid:open-iscsi targetctl:python3-rtslib-fb" \
        "busybox:busybox-static modprobe:kmod depmod:kmod cpio:cpio dpkg-deb:dpkg apt-get:apt timeout:coreutils" ;;
    esac
}

# vds_missing STAGE: the command:package pairs of the stage whose command is not found (sbin included).
vds_missing() {
    local pair
    for pair in $(vds_needs "$1"); do
        PATH=$PATH:/usr/sbin:/sbin command -v "${pair%%:*}" >/dev/null 2>&1 || printf '%s\n' "$pair"
    done
}

vds_system_say() { printf '%s\n' "$*" >&2; }
vds_system_fail() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

vds_has_locale() { locale -a 2>/dev/null | grep -qiE '^en_US\.utf-?8$'; }

vds_system_setup() {
    local stage pair missing=() optional=() update=
    for stage in all "$@"; do
        for pair in $(vds_missing "$stage"); do
            # Without the vm stage's packages that stage explains itself and skips (unless it is required).
            if [[ $stage == vm && ${VDS_VM_REQUIRED:-} != 1 ]]; then
                optional+=("${pair#*:}")
            else
                missing+=("${pair#*:}")
            fi
        done
    done
    local can_install=
    if ((EUID == 0)) && command -v apt-get >/dev/null; then
        can_install=1
        missing+=("${optional[@]}")
    fi
    # ansible-test runs under en_US.UTF-8 and warns (after the test summary) when it has to fall back.
    if ! vds_has_locale && [[ ! -f /usr/share/i18n/locales/en_US ]]; then
        missing+=(locales)
    fi
    # The vm stage fetches the kernel package with apt-get download: apt must know it.
    if [[ -n $can_install && " $* " == *" vm "* ]] && ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
        update=1
    fi
    if ((${#missing[@]})) || [[ -n $update ]]; then
        if [[ -z $can_install ]]; then
            vds_system_fail "missing system packages: ${missing[*]}; install them (Debian/Ubuntu: apt-get install --no-install-recommends ...) or run this as root"
        fi
        export DEBIAN_FRONTEND=noninteractive
        vds_system_say "Updating apt's package lists"
        apt-get update -qq || vds_system_fail "apt-get update failed"
        if ((${#missing[@]})); then
            vds_system_say "Installing system packages: ${missing[*]}"
            apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null >/dev/null ||
                vds_system_fail "apt-get install ${missing[*]} failed"
        fi
    fi
    if ! vds_has_locale; then
        localedef -i en_US -f UTF-8 en_US.UTF-8 || vds_system_fail "cannot generate the en_US.UTF-8 locale"
    fi
    # ansible-test and pip keep caches under HOME.
    if [[ -z ${HOME:-} || ! -d $HOME || ! -w $HOME ]]; then
        HOME=$(mktemp -d)
        export HOME
    fi
}
