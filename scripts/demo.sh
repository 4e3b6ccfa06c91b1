#!/usr/bin/env bash
# Quick start: install what is missing, build the two programs, and run the
# embedded demo. Only the daemon and switchyardctl are compiled here (the test
# suite is left to scripts/test.sh), so a fresh machine gets to the demo fast.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ -f build/build.ninja ]; then
  meson setup --reconfigure build
else
  meson setup build
fi
ninja -C build switchyard switchyardctl
exec ./build/switchyard --demo
