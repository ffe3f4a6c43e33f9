#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Sets up what the tests need (the system packages of the selected stages, installed
# with apt when run as root, see scripts/_system.sh; .venv and the collection copy,
# scripts/_env.sh), then runs every test stage in order, stopping at the first failure.
#
#   scripts/test.sh                         every stage
#   scripts/test.sh units sanity            only these stages (still in the order below)
#   scripts/test.sh sanity -- --test pep8   arguments after -- go to ansible-test
#   scripts/test.sh units -- tests/unit/plugins/modules/test_vds_portal.py
#
# Stages: changelog docs lint sanity integration molecule csharp vm bench units
set -euo pipefail

ALL_STAGES=(changelog docs lint sanity integration molecule csharp vm bench units)
DEFAULT_STAGES=("${ALL_STAGES[@]}")
SKIPPED=77

usage() {
    sed -n '4,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

selected=()
extra=()
while (($#)); do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    --)
        shift
        extra=("$@")
        break
        ;;
    *)
        if [[ " ${ALL_STAGES[*]} " != *" $1 "* ]]; then
            usage >&2
            printf 'ERROR: unknown stage "%s"\n' "$1" >&2
            exit 2
        fi
        selected+=("$1")
        ;;
    esac
    shift
done

stages=()
if ((${#selected[@]} == 0)); then
    stages=("${DEFAULT_STAGES[@]}")
else
    for stage in "${ALL_STAGES[@]}"; do
        if [[ " ${selected[*]} " == *" $stage "* ]]; then
            stages+=("$stage")
        fi
    done
fi

now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    printf '%s\n' "$((t / 1000))"
}

timings=()
record() { # name, status, start_ms
    local ms=$(($(now_ms) - $3))
    timings+=("$(printf '%-12s %-8s %7d.%01d s' "$1" "$2" $((ms / 1000)) $((ms % 1000 / 100)))")
}

print_timings() {
    local line
    printf '\nStage timings:\n'
    for line in "${timings[@]}"; do
        printf '  %s\n' "$line"
    done
    printf '\n'
}

# --- stages: each runs in a subshell with errexit, from inside the collection copy -------

stage_changelog() {
    cd "$VDS_COLLECTION"
    antsibull-changelog lint
    antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
}

stage_docs() {
    cd "$VDS_COLLECTION"
    antsibull-docs lint-collection-docs --plugin-docs --check-extra-docs-refs .
}

stage_lint() {
    local tmp
    cd "$VDS_COLLECTION"
    ansible-lint
    # sanity's shellcheck covers only *.sh files
    shellcheck .ci/run
    # Execution environment: the built tarball goes into the build context of tests/ee (written by
    # ansible-builder create, no image built), is installed from there as the image's galaxy stage
    # does, and ansible-builder introspect must find exactly requirements.txt and bindep.txt in it.
    echo "--- execution environment (tests/ee)"
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/vds-ee.XXXXXX")
    # shellcheck disable=SC2064 # expand now: tmp is local
    trap "rm -rf '$tmp'" EXIT
    mkdir "$tmp/ee"
    cp tests/ee/execution-environment.yml tests/ee/requirements.yml "$tmp/ee/"
    ansible-galaxy collection build --output-path "$tmp" >/dev/null
    mv "$tmp"/storage-vds-*.tar.gz "$tmp/ee/storage-vds.tar.gz"
    ansible-builder create --file "$tmp/ee/execution-environment.yml" --context "$tmp/context" \
        --output-filename Containerfile >/dev/null
    (
        cd "$tmp/context/_build"
        ANSIBLE_COLLECTIONS_PATH=$tmp/collections \
            ansible-galaxy collection install -r requirements.yml -p "$tmp/collections" >/dev/null
    )
    if ! ansible-builder introspect "$tmp/collections" >"$tmp/introspect.yml"; then
        cat "$tmp/introspect.yml" >&2
        echo "ERROR: ansible-builder introspect failed on the collection installed from the tarball" >&2
        return 1
    fi
    "$VDS_PYTHON_BIN" tests/ee/check_introspect.py "$tmp/introspect.yml" \
        --python requirements.txt --system bindep.txt --collection storage.vds
}

stage_sanity() {
    local ignores
    ignores=$(compgen -G "$VDS_ROOT/tests/sanity/ignore-*.txt" || true)
    if [[ -n $ignores ]]; then
        printf 'Sanity ignore files are not allowed; fix the findings instead:\n%s\n' "$ignores" >&2
        return 1
    fi
    cd "$VDS_COLLECTION"
    ansible-test sanity --local --python "$VDS_PYVER" "${extra[@]}"
}

stage_integration() {
    if [[ -z $(find "$VDS_ROOT/tests/integration/targets" -mindepth 1 -maxdepth 1 -type d -print -quit 2>/dev/null) ]]; then
        echo "NOTE: tests/integration/targets is empty: no integration tests to run."
        return "$SKIPPED"
    fi
    cd "$VDS_COLLECTION"
    ansible-test integration --local --python "$VDS_PYVER" "${extra[@]}"
}

stage_molecule() {
    local config scenario
    local -a scenarios=()
    for config in "$VDS_COLLECTION"/extensions/molecule/*/molecule.yml; do
        [[ -f $config ]] && scenarios+=("$(basename "$(dirname "$config")")")
    done
    if ((${#scenarios[@]} == 0)); then
        echo "NOTE: no scenario under extensions/molecule/: no molecule tests to run."
        return "$SKIPPED"
    fi
    cd "$VDS_COLLECTION/extensions"
    for scenario in "${scenarios[@]}"; do
        echo "--- molecule scenario: $scenario"
        molecule test -s "$scenario"
    done
}

stage_csharp() {
    # The VDS interop class, compiled as Windows PowerShell's Add-Type would, run against managed fakes.
    cd "$VDS_COLLECTION"
    bash tests/csharp/run.sh "$VDS_PYTHON_BIN"
}

stage_vm() {
    # backend lio on a real kernel target, in a qemu guest; it explains why when a host cannot run it
    bash "$VDS_ROOT/tests/vm/run.sh"
}

stage_bench() {
    # The benchmarks, small and fast: they must keep working; their timings are not judged here.
    "$VDS_PYTHON_BIN" "$VDS_ROOT/bench/bench.py" --quick
}

stage_units() {
    if [[ -z $(find "$VDS_ROOT/tests/unit" -name 'test_*.py' -print -quit 2>/dev/null) ]]; then
        echo "No unit tests found (tests/unit/**/test_*.py)." >&2
        return 1
    fi
    cd "$VDS_COLLECTION"
    ansible-test units --local --python "$VDS_PYVER" "${extra[@]}"
}

# --- run -----------------------------------------------------------------------------------

fail() { # stage, exit code
    print_timings
    printf 'FAILED: stage "%s" (exit code %s). Rerun it alone with: scripts/test.sh %s\n' "$1" "$2" "$1" >&2
    exit "$2"
}

# _env.sh exits on error; say which stage that was.
setup_done=
on_exit() {
    local rc=$?
    if ((rc != 0)) && [[ -z $setup_done ]]; then
        printf 'FAILED: stage "setup" (exit code %s)\n' "$rc" >&2
    fi
}
trap on_exit EXIT

start=$(now_ms)
# shellcheck source=scripts/_system.sh
source "$(dirname "${BASH_SOURCE[0]}")/_system.sh"
vds_system_setup "${stages[@]}"
# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
setup_done=1
record setup ok "$start"
printf 'Python %s (%s), ansible-core %s\n' "$VDS_PYVER" "$VDS_PYTHON" \
    "$("$VDS_PYTHON_BIN" -c 'from ansible.release import __version__; print(__version__)')"

total=${#stages[@]}
n=0
for stage in "${stages[@]}"; do
    n=$((n + 1))
    if [[ $stage == units ]]; then
        print_timings
    fi
    printf '\n==> [%d/%d] %s\n' "$n" "$total" "$stage"
    start=$(now_ms)
    set +e
    (
        set -e
        "stage_$stage"
    )
    rc=$?
    set -e
    if ((rc == SKIPPED)); then
        record "$stage" skipped "$start"
    elif ((rc != 0)); then
        record "$stage" failed "$start"
        fail "$stage" "$rc"
    else
        record "$stage" passed "$start"
    fi
    if [[ $stage != units ]]; then
        printf '<== %s\n' "${timings[-1]}"
    fi
done

# When units ran, it ran last and its pytest summary is the last line printed.
if [[ " ${stages[*]} " != *" units "* ]]; then
    print_timings
    echo "All selected stages passed."
fi
