#!/usr/bin/env bash
# Set up (if needed) and start the dashboard: embedded EfficientNet-Lite0 + shipped maskers, offline, CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/saliency dashboard "$@"
