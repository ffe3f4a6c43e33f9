#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Runs the benchmarks against the simulated provider and prints six figures, each with its goal
# and whether it was met. Sets up .venv and the collection copy first, as scripts/test.sh does.
#
#   bash bench/run.sh            the full run (several minutes)
#   bash bench/run.sh --quick    a small, fast run that only proves the benchmarks work
#   bash bench/run.sh --help     every option
set -euo pipefail

# shellcheck source=scripts/_env.sh
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/_env.sh"
exec "$VDS_PYTHON_BIN" "$VDS_ROOT/bench/bench.py" "$@"
