#!/usr/bin/env bash
# Set up (if needed) and run the default test suite, including the real-browser test (Debian chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/tmp/apt-chromium.log 2>&1 \
      || echo "warning: could not install chromium (see /tmp/apt-chromium.log)"
  else
    echo "warning: chromium missing; install Debian's chromium to run the browser test"
  fi
fi
export STREAMLIT_BROWSER_GATHER_USAGE_STATS=false STREAMLIT_SERVER_HEADLESS=true
set +e
.venv/bin/python -m pytest -q "$@"
rc=$?
set -e
# pytest exits 5 when it collected no test: that is a failure of the suite, not a pass
exit $rc
