#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
# This target's tasks with each backend: the simulator, then vds over the fake PowerShell transport.
set -eu
exec ../setup_vds/backends/run.sh vds_bad_input "$@"
