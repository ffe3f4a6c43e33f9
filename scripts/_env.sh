# shellcheck shell=bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Sourced by the other scripts (not run on its own). It leaves the caller in the
# repository root with:
#   VDS_ROOT        the repository (= collection) root
#   VDS_PYTHON      the interpreter .venv was built from; VDS_PYVER its X.Y
#   VDS_COLLECTION  the collection copy ansible-test needs:
#                   .build/ansible_collections/storage/vds
#   PATH            .venv/bin first
#   ANSIBLE_COLLECTIONS_PATH=$VDS_ROOT/.build
# Set VDS_PYTHON beforehand to force an interpreter.

VDS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
VDS_VENV=$VDS_ROOT/.venv
VDS_COLLECTION=$VDS_ROOT/.build/ansible_collections/storage/vds
export VDS_ROOT VDS_VENV VDS_COLLECTION

vds_log() {
    printf '%s\n' "$*" >&2
}

vds_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}

# True when "$1" runs and is a Python of at least version $2.$3.
vds_python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info[:2] < ($2, $3))" >/dev/null 2>&1
}

# The interpreter behind a pyenv shim or symlink, and behind a virtual environment's python (an
# activated .venv first on PATH must not be taken for the interpreter to build .venv with).
vds_python_real() {
    "$1" -c 'import os, sys; print(os.path.realpath(sys.executable))'
}

# The interpreter, first found of: VDS_PYTHON; python3.14, python3.13, python3.12 on PATH;
# pyenv's versions 3.12 and later (from `pyenv root`, else PYENV_ROOT), newest first; python3 if
# it is 3.11 or later (ansible-core 2.19, see requirements-dev.txt). Every candidate is run once
# before it is taken: pyenv shims of versions that are not selected exist on PATH but exit 127.
vds_pick_python() {
    local candidate pyenv_root=
    local -a candidates=()
    if [[ -n ${VDS_PYTHON:-} ]]; then
        vds_python_ok "$VDS_PYTHON" 3 11 || vds_die "VDS_PYTHON=$VDS_PYTHON is not a working Python >= 3.11"
        VDS_PYTHON=$(vds_python_real "$VDS_PYTHON")
        return 0
    fi
    for candidate in python3.14 python3.13 python3.12; do
        candidates+=("$(command -v "$candidate" || true)")
    done
    if command -v pyenv >/dev/null 2>&1; then
        pyenv_root=$(pyenv root 2>/dev/null || true)
    fi
    pyenv_root=${pyenv_root:-${PYENV_ROOT:-}}
    if [[ -n $pyenv_root && -d $pyenv_root/versions ]]; then
        # sort -V orders 3.9 before 3.12; -r puts the newest first
        mapfile -t -O "${#candidates[@]}" candidates < <(
            compgen -G "$pyenv_root/versions/3.1[2-9]*/bin/python3.1[2-9]" | sort -V -r
        )
    fi
    for candidate in "${candidates[@]}"; do
        if [[ -n $candidate && -x $candidate ]] && vds_python_ok "$candidate" 3 12; then
            VDS_PYTHON=$(vds_python_real "$candidate")
            return 0
        fi
    done
    candidate=$(command -v python3 || true)
    if [[ -n $candidate ]] && vds_python_ok "$candidate" 3 11; then
        VDS_PYTHON=$(vds_python_real "$candidate")
        return 0
    fi
    vds_die "no Python >= 3.11 found (tried VDS_PYTHON, python3.14/3.13/3.12 on PATH, pyenv's 3.12+ versions, python3); install Python 3.12 or later, or set VDS_PYTHON to one"
}

# (Re)build .venv when requirements-dev.txt or the interpreter changed since the last build.
vds_venv() {
    local stamp want log
    want=$(
        {
            "$VDS_PYTHON" -c 'import sys; print(sys.version)'
            printf '%s\n' "$VDS_PYTHON"
            cat "$VDS_ROOT/requirements-dev.txt"
        } | sha256sum | cut -d' ' -f1
    )
    stamp=$VDS_VENV/.requirements.sha256
    if [[ -x $VDS_VENV/bin/python && -f $stamp && $(<"$stamp") == "$want" ]]; then
        return 0
    fi
    vds_log "Building .venv with $VDS_PYTHON from requirements-dev.txt ..."
    rm -rf "$VDS_VENV"
    "$VDS_PYTHON" -m venv "$VDS_VENV" ||
        vds_die "cannot create $VDS_VENV with $VDS_PYTHON (the python3 of Debian and Ubuntu needs the package python3-venv for it)"
    log=$VDS_VENV/pip-install.log
    if ! "$VDS_VENV/bin/python" -m pip install --disable-pip-version-check \
        -r "$VDS_ROOT/requirements-dev.txt" >"$log" 2>&1; then
        grep -v 'is ignored: it is neither a file nor a directory' "$log" | tail -n 30 >&2
        vds_die "pip install -r requirements-dev.txt failed (full log: $log)"
    fi
    printf '%s\n' "$want" >"$stamp"
}

# ansible-test bootstraps pip in every virtual environment it creates for sanity tests with a
# get-pip script that it downloads from ci-files.testing.ansible.com, a host outside the package
# index that not every machine reaches. It has no option for another source; it looks in its cache
# first, and when the download fails it names the cache file to save a script as. So: prime one
# sanity environment (public option --prime-venvs) under a throw-away HOME, where nothing is
# cached. If that fails for want of the script, write a stand-in that installs the requested pip
# from the package index at the place ansible-test named, relative to HOME, in the real HOME, and
# prime again to prove that it works. The outcome is remembered in .venv for this HOME.
vds_pip_bootstrap() {
    local stamp out script probe_home named rel
    stamp=$VDS_VENV/.pip-bootstrap
    if [[ -f $stamp ]]; then
        {
            read -r out
            read -r script
        } <"$stamp" || true
        if [[ $out == "$HOME" && (-z $script || -f $script) ]]; then
            return 0
        fi
    fi
    probe_home=$(mktemp -d "${TMPDIR:-/tmp}/vds-home.XXXXXX") || vds_die "mktemp failed"
    if out=$(vds_prime_sanity_venv "$probe_home"); then
        rm -rf "$probe_home"
        printf '%s\n\n' "$HOME" >"$stamp"
        return 0
    fi
    named=$(sed -n 's/^The bootstrap script can be manually downloaded and saved to: //p' <<<"$out")
    rel=${named#"$probe_home"/}
    if [[ $named != "$probe_home"/* || $rel != */get_pip_*.py ]]; then
        rm -rf "$probe_home"
        printf '%s\n' "$out" >&2
        vds_die "ansible-test could not prepare a sanity test environment (its output is above)"
    fi
    script=$HOME/$rel
    vds_log "ansible-test cannot download its pip bootstrap script; writing a stand-in: $script"
    vds_write_get_pip "$probe_home/$rel"
    vds_write_get_pip "$script"
    if ! out=$(vds_prime_sanity_venv "$probe_home"); then
        rm -rf "$probe_home"
        printf '%s\n' "$out" >&2
        vds_die "ansible-test cannot prepare a sanity test environment with the stand-in $script either (its output is above)"
    fi
    rm -rf "$probe_home"
    printf '%s\n%s\n' "$HOME" "$script" >"$stamp"
}

# The environment of sanity test pep8 (it has requirements, so pip is bootstrapped), with HOME=$1.
vds_prime_sanity_venv() {
    (
        cd "$VDS_COLLECTION" &&
            HOME=$1 ansible-test sanity --local --python "$VDS_PYVER" --prime-venvs --test pep8 2>&1
    )
}

# A get-pip stand-in at $1: ensurepip, then pip install the arguments from the package index.
vds_write_get_pip() {
    mkdir -p "$(dirname "$1")" || vds_die "cannot create $(dirname "$1")"
    rm -f "$1.download"
    cat >"$1.tmp" <<'PY'
"""Stand-in for get-pip.py: ensurepip, then pip install the arguments from the package index."""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--upgrade'], stdout=subprocess.DEVNULL)
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '-q'] + args)
PY
    mv -f "$1.tmp" "$1" || vds_die "cannot write $1"
}

# ansible-test needs the collection under .../ansible_collections/storage/vds/. A
# symlink does not do (it resolves the real path), so copy the tracked and untracked,
# not ignored files. The copy gets its own git repository: inside ours, ansible-test
# would list files through the parent repository, find none and test nothing.
vds_build_collection() {
    rm -rf "$VDS_COLLECTION"
    mkdir -p "$VDS_COLLECTION"
    (
        cd "$VDS_ROOT" || exit 1
        git ls-files -z --cached --others --exclude-standard |
            tar --null --no-recursion --ignore-failed-read --files-from=- -cf -
    ) | tar -xf - -C "$VDS_COLLECTION" || vds_die "cannot copy the collection into $VDS_COLLECTION"
    git -C "$VDS_COLLECTION" init -q || vds_die "git init in $VDS_COLLECTION failed"
}

command -v git >/dev/null || vds_die "git is required"
: "${HOME:?HOME must be set}"
vds_pick_python
vds_venv
export VIRTUAL_ENV=$VDS_VENV
export PATH=$VDS_VENV/bin:$PATH
VDS_PYTHON_BIN=$VDS_VENV/bin/python
VDS_PYVER=$("$VDS_PYTHON_BIN" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
export VDS_PYTHON VDS_PYTHON_BIN VDS_PYVER
vds_build_collection
vds_pip_bootstrap
export ANSIBLE_COLLECTIONS_PATH=$VDS_ROOT/.build
cd "$VDS_ROOT" || vds_die "cannot enter $VDS_ROOT"
