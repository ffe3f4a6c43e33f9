#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs the tasks of one module target (a role) once per backend, for that target's runme.sh:
#   simulator  the simulated provider, as the tasks name it
#   vds        backend vds over the fake PowerShell transport of tests/fakes, whose Windows hosts are
#              simulator state files; every assertion on the state file therefore still holds.
#   ../setup_vds/backends/run.sh TARGET [ansible-playbook arguments]
set -eu

target=$1
shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

# The fake pypsrp lives in the collection, found where ansible-test points ANSIBLE_COLLECTIONS_PATH.
fakes=
IFS=: read -r -a roots <<<"${ANSIBLE_COLLECTIONS_PATH:-}"
for root in "${roots[@]}"; do
    if [[ -d $root/ansible_collections/storage/vds/tests/fakes/pypsrp ]]; then
        fakes=$root/ansible_collections/storage/vds/tests/fakes
        break
    fi
done
if [[ -z $fakes ]]; then
    echo "ERROR: no storage.vds with tests/fakes/pypsrp on ANSIBLE_COLLECTIONS_PATH" >&2
    exit 1
fi

for backend in simulator vds; do
    echo "=== $target with backend $backend"
    # The module runs on testhost (the controller) and imports pypsrp there: the fake comes first.
    PYTHONPATH=$fakes${PYTHONPATH:+:$PYTHONPATH} ANSIBLE_ROLES_PATH=$here/../.. \
        ansible-playbook "$here/playbook.yml" -i "$INVENTORY_PATH" \
        -e "output_dir=$OUTPUT_DIR" -e "vds_integration_target=$target" -e "vds_backend=$backend" "$@"
done
