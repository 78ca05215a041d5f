#!/bin/bash -eu
# The OSS-Fuzz / ClusterFuzzLite build contract: compile every fuzz target of fuzz/ with the
# service's $CXX and $CXXFLAGS, link it with $LIB_FUZZING_ENGINE, and put in $OUT the fuzzer, its
# seed corpus as <target>_seed_corpus.zip and its dictionary as <target>.dict.
#
# The services' images (Ubuntu, libc++) have neither Boost 1.81 nor a Crypto++ built with their
# flags: the Dockerfile beside this script fetches both sources into $SRC, and this script builds
# Crypto++ with $CXXFLAGS and compiles Boost.JSON into each fuzzer from its header-only form. On a
# Debian machine set up by scripts/bootstrap (scripts/cflite-build), the system's Boost headers and
# static Crypto++ are used instead. PEERPROTO_CFLITE_TARGETS limits the build to some targets.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="$(dirname "$here")"
[ -d "$project/fuzz" ] || project="$SRC/peerproto"
cd "$project"
: "${WORK:=$(mktemp -d)}"

# The targets, from the one list in fuzz/CMakeLists.txt.
targets=${PEERPROTO_CFLITE_TARGETS:-$(sed -n 's/^set(PEERPROTO_FUZZ_TARGETS \(.*\))$/\1/p' fuzz/CMakeLists.txt)}
[ -n "$targets" ] || { echo "build.sh: no fuzz targets found in fuzz/CMakeLists.txt" >&2; exit 1; }

includes=(-I"$project/include" -I"$project/test/support/include")
libs=()
if [ -d "${SRC:-/nonexistent}/cryptopp" ]; then
  # Crypto++ from source, with the service's compiler and flags (the headers as <crypto++/...>).
  make -C "$SRC/cryptopp" -j"$(nproc)" static CXX="$CXX" CXXFLAGS="$CXXFLAGS -DNDEBUG -fPIC" >/dev/null
  mkdir -p "$WORK/include"
  ln -sfn "$SRC/cryptopp" "$WORK/include/crypto++"
  includes+=(-I"$WORK/include")
  libs+=("$SRC/cryptopp/libcryptopp.a")
else
  libs+=("$(pkg-config --variable=libdir libcrypto++)/libcrypto++.a")
fi
for boost in "${SRC:-/nonexistent}"/boost_1_*; do
  [ -d "$boost/boost/json" ] && includes+=(-I"$boost")
done

std=(-std=c++20 -DPEERPROTO_FUZZING_UNSAFE_CRYPTO -DBOOST_JSON_NO_LIB -DBOOST_CONTAINER_NO_LIB)
# Boost.JSON once, from its header-only form, for every fuzzer.
echo '#include <boost/json/src.hpp>' > "$WORK/boost_json.cpp"
$CXX $CXXFLAGS "${std[@]}" "${includes[@]}" -c "$WORK/boost_json.cpp" -o "$WORK/boost_json.o"

for t in $targets; do
  [ -f "fuzz/$t.cpp" ] || { echo "build.sh: fuzz/$t.cpp is missing" >&2; exit 1; }
  extra=(-fsanitize-coverage-ignorelist="$project/fuzz/coverage_ignorelist.txt")
  case "$t" in engine|handshake_*) extra+=(-fsanitize-coverage-ignorelist="$project/fuzz/coverage_ignorelist_stateful.txt") ;; esac
  $CXX $CXXFLAGS "${std[@]}" "${includes[@]}" "${extra[@]}" -c "fuzz/$t.cpp" -o "$WORK/$t.o"
  $CXX $CXXFLAGS "$WORK/$t.o" "$WORK/boost_json.o" -o "$OUT/$t" $LIB_FUZZING_ENGINE "${libs[@]}"
  rm -f "$OUT/${t}_seed_corpus.zip"
  (cd "corpus/$t" && zip -q -r "$OUT/${t}_seed_corpus.zip" .)
  [ -f "corpus/$t.dict" ] && cp "corpus/$t.dict" "$OUT/$t.dict"
  echo "build.sh: $t"
done
