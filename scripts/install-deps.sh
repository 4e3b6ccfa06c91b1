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
  # promtool (check metrics, check rules, test rules) and a headless browser
  # for the status page test (tests/integration/test_status_page_browser.py).
  prometheus chromium
  # sysctl, run by tests/integration/test_faults_ports.py inside a network namespace
  # (not in minimal images such as debian:12)
  procps
  # The sanitizer builds and the fuzzers (scripts/test.sh runs both every time,
  # so they are always installed): Debian's clang 14, its compiler-rt
  # (ASan/UBSan/TSan runtimes and libFuzzer) and llvm-symbolizer for readable
  # reports. ccache makes the extra build directories cheap to rebuild.
  clang-14 libclang-rt-14-dev llvm-14 ccache
  # scripts/build-deb.sh (the Debian package and its lintian check) and the
  # JSON reading of config/deploy-pipeline.sh and the bash completion.
  debhelper dpkg-dev fakeroot lintian git jq
  # TLS to etcd (fleet mode's https:// endpoints) via Boost.Asio's ssl layer, and the
  # openssl command test_fleet.py makes its etcd's certificates with
  libssl-dev openssl
  # fleet mode's integration tests run a real etcd (tests/integration/test_fleet.py)
  etcd-server
  # the package under a real systemd: a Debian 12 container booted by
  # systemd-nspawn (tests/system/test_systemd_container.py)
  systemd-container debootstrap
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# meson and scripts call plain clang++; Debian's "clang" package provides that
# name, clang-14 alone only clang++-14.
if ! command -v clang++ >/dev/null 2>&1 && \
   ! dpkg-query -W -f='${Status}' clang 2>/dev/null | grep -q 'install ok installed'; then
  missing+=(clang)
fi

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
