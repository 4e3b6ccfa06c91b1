#!/usr/bin/env bash
# A Debian 12 tree that boots under systemd-nspawn, with everything the
# switchyard package needs at run time already installed, so the package
# installs offline with dpkg -i inside the container:
#   bash tests/system/make-rootfs.sh DEB CACHE_DIR     # prints the tree's path
# The tree is cached in CACHE_DIR under a name derived from the package's
# Depends, so a second run with the same dependencies takes no time.
set -euo pipefail
deb=$1
cache=$2

# "libfoo1 (>= 1.2), libbar | libbaz" -> libfoo1 libbar: the first of each
# alternative, without versions; apt inside the tree resolves the rest.
depends=$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/[[:space:]]//g' \
  | grep -v '^$' | sort -u | paste -sd' ' -)
key=$(printf '%s' "$depends" | sha256sum | cut -c1-16)
tree="$cache/bookworm-$key"
log="$cache/make-rootfs-$key.log"

if [ ! -f "$tree/.complete" ]; then
  mkdir -p "$cache"
  rm -rf "$tree.partial"
  echo "make-rootfs: debootstrap bookworm, then $depends" >&2
  # systemd boots the container; dbus is what a Debian 12 server has beside it.
  # The package's dependencies come from apt inside the tree, not from
  # debootstrap, whose resolver knows no virtual packages (libspdlog1.10-fmt9).
  if ! { nice debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$tree.partial" \
           http://deb.debian.org/debian &&
         systemd-nspawn --quiet --register=no --keep-unit --directory "$tree.partial" \
           sh -c "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $depends && apt-get clean"
       } >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    exit 1
  fi
  touch "$tree.partial/.complete"
  rm -rf "$tree"
  mv "$tree.partial" "$tree"
fi
echo "$tree"
