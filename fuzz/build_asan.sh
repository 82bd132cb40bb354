#!/usr/bin/env bash
# Build the Cython core with AddressSanitizer + UndefinedBehaviorSanitizer
# into fuzz/asan_build/ (never touching the in-place chunkstore/*.so others
# use) and run every fuzz target under it.
#
#   bash fuzz/build_asan.sh [SECONDS_PER_TARGET] [--atheris]
#
# SECONDS_PER_TARGET defaults to 60.  The targets run on the Hypothesis
# driver unless --atheris is given.  The run fails when a target reports a
# finding or a sanitizer aborts the process.
#
# How it works: the .pyx sources are compiled from a private copy of src_c/
# with -fsanitize=address,undefined; fuzz/asan_build/pkg/chunkstore/ holds
# those .so files next to symlinks to every Python module of chunkstore/, so
# PYTHONPATH=fuzz/asan_build/pkg imports the sanitized kernels (checked
# below).  libasan is LD_PRELOADed because the python binary itself is not
# instrumented; PYTHONMALLOC=malloc gives every Python object its own malloc
# block, so an overflow out of a bytes buffer the kernels fill hits an ASan
# redzone instead of a neighbour inside a pymalloc arena.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
SECS=${1:-60}
DRIVER=--hypothesis
[[ "${2:-}" == "--atheris" ]] && DRIVER=""
OUT=$REPO/fuzz/asan_build
SRC=$OUT/src
PKG=$OUT/pkg/chunkstore

rm -rf "$OUT"
mkdir -p "$SRC" "$PKG"
cp setup.py "$SRC/"
cp -r src_c "$SRC/"
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
echo "== building the sanitized core in $OUT"
(cd "$SRC" && CFLAGS="$SAN" LDFLAGS="$SAN" \
    python setup.py -q build_ext --build-lib "$OUT/pkg" --build-temp "$OUT/tmp" >"$OUT/build.log" 2>&1) \
    || { tail -30 "$OUT/build.log"; exit 1; }
for f in chunkstore/*.py chunkstore/*.pyi chunkstore/logql; do
    ln -s "$REPO/$f" "$PKG/$(basename "$f")"
done

export LD_PRELOAD
LD_PRELOAD=$(gcc -print-file-name=libasan.so)
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1:max_allocation_size_mb=2048
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONMALLOC=malloc
export PYTHONPATH=$OUT/pkg
export CHUNKSTORE_REQUIRE_EXT=1

# From / so that the current directory (first on sys.path) is not the tree.
(cd / && python - <<EOF
import chunkstore
from chunkstore import _kernels
mods = (_kernels.block, _kernels.scan, _kernels.hashing, _kernels.tokens)
for m in mods:
    assert m.__file__.startswith("$OUT/pkg/"), m.__file__
assert chunkstore.ACCELERATED
print("sanitized kernels:", *(m.__file__ for m in mods), sep="\n  ")
EOF
)

status=0
for t in chunk_reader wal_reader index_reader logql_parser; do
    echo "== $t under ASan+UBSan, $SECS s"
    # sys.path is fuzz/ then PYTHONPATH: the tree's own chunkstore/ is not on it.
    # First every input a coverage-guided atheris run kept (fuzz/work/), then
    # the Hypothesis driver, seeded from those and the committed corpus.
    python "fuzz/fuzz_$t.py" --replay fuzz/corpus/$t $( [[ -d fuzz/work/$t ]] && echo fuzz/work/$t ) \
        || status=1
    python "fuzz/fuzz_$t.py" $DRIVER --seconds "$SECS" || status=1
done
exit $status
