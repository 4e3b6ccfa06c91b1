#!/usr/bin/env bash
# Builds the Debian package from a clean clone of the committed HEAD and checks
# it with lintian:
#   bash scripts/build-deb.sh [OUTDIR]      # default OUTDIR: ./dist
# Leaves OUTDIR/switchyard_<version>_<arch>.deb (plus .buildinfo, .changes and
# lintian.txt). Exits non-zero when the build fails, when the package version
# (debian/changelog) differs from meson's project version, or when lintian
# reports an error. Uncommitted changes are not packaged: commit first.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
outdir=$(realpath -m "${1:-dist}")

bash scripts/install-deps.sh

meson_version=$(sed -n "s/^ *version *: *'\([^']*\)'.*/\1/p" meson.build | head -1)
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$meson_version" != "$deb_version" ]; then
  echo "build-deb: debian/changelog says $deb_version but meson.build says $meson_version; add a changelog entry (dch -v $meson_version)" >&2
  exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "build-deb: note: uncommitted changes are not in the package (it is built from HEAD)" >&2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
git clone --quiet --no-hardlinks "$repo" "$work/switchyard"
# Reproducible file times: the commit's time.
export SOURCE_DATE_EPOCH
SOURCE_DATE_EPOCH=$(git -C "$work/switchyard" log -1 --format=%ct)

echo "build-deb: building switchyard $deb_version from $(git -C "$work/switchyard" rev-parse --short=12 HEAD)" >&2
(cd "$work/switchyard" && nice dpkg-buildpackage -b -us -uc)

arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="$work/switchyard_${deb_version}_${arch}.deb"
if [ ! -f "$deb" ]; then
  echo "build-deb: dpkg-buildpackage made no $(basename "$deb")" >&2
  exit 1
fi
mkdir -p "$outdir"
cp "$deb" "$work"/switchyard_"${deb_version}"_"${arch}".{buildinfo,changes} "$outdir"/

# lintian exits non-zero on any error; warnings are shown, not fatal.
lintian_rc=0
lintian --info --display-level '>=warning' --fail-on error "$outdir/$(basename "$deb")" \
  | tee "$outdir/lintian.txt" || lintian_rc=$?
if [ "$lintian_rc" -ne 0 ]; then
  echo "build-deb: lintian reported errors (see $outdir/lintian.txt)" >&2
  exit 1
fi
echo "build-deb: $outdir/$(basename "$deb") built; lintian: no errors" >&2
