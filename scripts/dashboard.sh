#!/usr/bin/env bash
# Set up (if needed) and start the dashboard: embedded EfficientNet-Lite0 + shipped maskers, offline, CPU.
# Torch gets one thread fewer than the machine's cores (at least 1, at most 8), so the server and the browser
# keep a core and two sessions do not fight over all of them; set OMP_NUM_THREADS to choose yourself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cores=$(nproc 2>/dev/null || echo 2)
threads=$(( cores > 1 ? cores - 1 : 1 ))
threads=$(( threads > 8 ? 8 : threads ))
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads} MKL_NUM_THREADS=${MKL_NUM_THREADS:-${OMP_NUM_THREADS:-$threads}}
echo "torch threads: $OMP_NUM_THREADS of $cores cores (set OMP_NUM_THREADS to change)" >&2
exec .venv/bin/saliency dashboard "$@"
