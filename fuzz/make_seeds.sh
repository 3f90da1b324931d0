#!/usr/bin/env bash
# Rewrites the seed corpora fuzz/corpus/<target>/ from lutmul_make_seeds (fuzz/make_seeds.cpp):
# small valid inputs of every kind, in each target's input layout. Run it after a file format
# changes, then commit what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DLUTMUL_FUZZ=ON -DLUTMUL_TESTS=OFF -DLUTMUL_BENCH=OFF \
  -DLUTMUL_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target lutmul_make_seeds
build/fuzz/fuzz/lutmul_make_seeds fuzz/corpus
du -sh fuzz/corpus
