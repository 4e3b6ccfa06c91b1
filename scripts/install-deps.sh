#!/usr/bin/env bash
# Installs the Debian 12 packages switchyard needs to build and test.
# Fast when everything is present: apt is only touched if a package is missing.
set -euo pipefail

packages=(
  meson ninja-build pkg-config g++
  libboost1.81-dev liburing-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  catch2 prometheus-cpp-dev libsystemd-dev nlohmann-json3-dev
  python3 python3-pytest python3-pytest-rerunfailures
  curl socat netcat-openbsd iproute2 systemd
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
