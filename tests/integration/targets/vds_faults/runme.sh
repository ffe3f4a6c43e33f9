#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# This target's tasks with each backend: the simulator, then vds over the fake PowerShell transport.
set -eu
# The background run's job files: an absolute folder, since the job's process and async_status would
# otherwise resolve "~/.ansible_async" differently when HOME is not the account's home directory.
ANSIBLE_ASYNC_DIR=$(mktemp -d)
export ANSIBLE_ASYNC_DIR
trap 'rm -rf "$ANSIBLE_ASYNC_DIR"' EXIT
../setup_vds/backends/run.sh vds_faults "$@"
