#!/usr/bin/env bash
# Fetch the fonts the tests draw synthetic pages with into .test-fonts/ (ignored by git).
#
# Angles measured on synthetic pages depend on the fonts the pages are drawn with, so the tests
# must not use whatever fonts a machine happens to have: tests/conftest.py points STN_FONT_DIRS
# here. The set is the one docs/documents.md recommends for the page generator (88 fonts), at the
# versions Debian 12 ships, unpacked from the packages without installing them (no root needed,
# except for `apt-get update` on a machine whose package lists are still empty).
# Safe to run again: it does nothing when .test-fonts/ already holds these versions.
#
#   bash scripts/test-fonts.sh --generator
# fetches the whole set the page generator draws doc-rotation's synthetic bank with (the Latin set
# above, and Japanese, Devanagari, Arabic and two blackletter faces) into .generator-fonts/, the
# same way: `STN_FONT_DIRS=.generator-fonts stn fit doc-rotation ...` renders the same pages on
# every machine (exported/doc-rotation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.test-fonts
case "${1:-}" in
  "") generator=0 ;;
  --generator) generator=1; dest=.generator-fonts ;;
  *) echo "unknown option $1 (expected --generator)" >&2; exit 2 ;;
esac
packages=(
  fonts-dejavu-core=2.37-6
  fonts-dejavu-extra=2.37-6
  fonts-liberation=1:1.07.4-11
  fonts-freefont-ttf=20120503-10
  fonts-urw-base35=20200910-7
  fonts-crosextra-carlito=20220224-1
  fonts-crosextra-caladea=20200211-1
)
[ "$generator" = 1 ] && packages+=(
  fonts-ipafont-mincho=00303-23
  fonts-ipafont-gothic=00303-23
  fonts-lohit-deva=2.95.4-5
  fonts-hosny-amiri=0.113-1
  fonts-kacst=2.01+mry-15
  fonts-blankenburg=0.1-3
  fonts-gotico-antiqua=0+git20190704-4
)
want=$(printf '%s\n' "${packages[@]}")
if [ -f "$dest/PACKAGES" ] && [ "$(cat "$dest/PACKAGES")" = "$want" ]; then
  echo "test fonts: $dest is up to date"
  exit 0
fi
for tool in apt-get dpkg-deb; do
  if ! command -v "$tool" >/dev/null; then
    echo "test fonts: $tool not found; these Debian packages are needed: ${packages[*]}" >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp" && mkdir -m 777 "$tmp/debs"  # apt's download user writes there
fetch() { (cd "$tmp/debs" && apt-get download -q "${packages[@]}"); }
if ! fetch; then
  echo "test fonts: refreshing the package lists and trying again"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  fetch
fi
for deb in "$tmp"/debs/*.deb; do
  dpkg-deb -x "$deb" "$tmp/root"
done
rm -rf "$dest"
mkdir -p "$dest"
cp -r "$tmp/root/usr/share/fonts/." "$dest/"
# Only TrueType/OpenType files are drawn with; the Type 1 copies and metrics are not needed.
find "$dest" -type f ! -name '*.ttf' ! -name '*.otf' -delete
find "$dest" -type d -empty -delete
printf '%s\n' "${packages[@]}" > "$dest/PACKAGES"
echo "test fonts: $(find "$dest" -name '*.ttf' -o -name '*.otf' | wc -l) font files in $dest"
