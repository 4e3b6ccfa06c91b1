#!/usr/bin/env bash
# Quick start: install what is missing, build, and run the embedded demo.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
if [ -f build/build.ninja ]; then
  meson setup --reconfigure build
else
  meson setup build
fi
ninja -C build
exec ./build/switchyard --demo
