#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Sets up .venv and the collection copy (scripts/_env.sh), then runs the example
# fleet playbook against the simulated provider: once for real, showing the diff,
# and once more, which must report changed=0 for every host.
# The simulator state starts fresh from playbooks/simulator/*.json on each run, in
# .build/demo-state/. Arguments are passed on to both ansible-playbook runs.
set -euo pipefail

# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"

inventory=playbooks/inventory/demo.yml
playbook=playbooks/site.yml
state_dir=$VDS_ROOT/.build/demo-state
log=$VDS_ROOT/.build/demo-run.log

for f in "$inventory" "$playbook"; do
    [[ -f $f ]] || vds_die "$f is missing"
done
shopt -s nullglob
states=(playbooks/simulator/*.json)
shopt -u nullglob
((${#states[@]})) || vds_die "no simulator state files in playbooks/simulator/*.json"

rm -rf "$state_dir"
mkdir -p "$state_dir"
cp "${states[@]}" "$state_dir/"

if [[ -t 1 ]]; then
    export ANSIBLE_FORCE_COLOR=1
fi

run_playbook() { # title, ansible-playbook arguments...
    printf '\n==> %s\n' "$1"
    shift
    ansible-playbook -i "$inventory" "$playbook" \
        -e "{\"vds_demo_state_dir\": \"$state_dir\"}" "$@" | tee "$log"
}

# Prints the PLAY RECAP host lines of the last run, without colour codes.
recap() {
    sed -e 's/\x1b\[[0-9;]*m//g' "$log" | sed -n '/^PLAY RECAP/,$p' | grep -E '^[^ ].* : ok=' || true
}

run_playbook "First run: apply the declared portal groups (with --diff)" --diff "$@" ||
    vds_die "the first run failed"
run_playbook "Second run: must change nothing" "$@" ||
    vds_die "the second run failed"

hosts=$(recap)
[[ -n $hosts ]] || vds_die "no PLAY RECAP in the second run's output ($log)"
not_idempotent=$(grep -Ev ' changed=0 +unreachable=0 +failed=0 ' <<<"$hosts" || true)
if [[ -n $not_idempotent ]]; then
    printf '%s\n' "$not_idempotent" >&2
    vds_die "the second run was not idempotent: every host must report changed=0, unreachable=0 and failed=0"
fi
printf '\nDemo passed: the second run reported changed=0 on %d hosts.\n' "$(wc -l <<<"$hosts")"
