#!/usr/bin/env bash
# Proves that a plain clone needs nothing outside itself: copies the project's files (tracked and
# new, as they are in the working tree) into a new temporary folder with nothing beside it, then
# configures, builds and runs the known-answer tests (label kat) there.
#
#   fresh_clone_kat.sh SOURCE_DIR CXX_COMPILER
set -euo pipefail
src=$1
cxx=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/peerproto"
git -C "$src" ls-files -z --cached --others --exclude-standard |
  (cd "$src" && tar --null --ignore-failed-read -T - -cf -) | tar -C "$tmp/peerproto" -xf -
echo "copied $(find "$tmp/peerproto" -type f | wc -l) files into an empty folder; its parent holds nothing else"
cmake -S "$tmp/peerproto" -B "$tmp/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" >/dev/null
cmake --build "$tmp/build" --target kat
ctest --test-dir "$tmp/build" -L kat --output-on-failure
