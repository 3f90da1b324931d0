#!/usr/bin/env bash
# The GPU work in one command, for a machine with an NVIDIA GPU (an H100 is the target):
# configure with LUTMUL_CUDA=ON, build the CUDA tests and benchmarks, run the tests (a missing
# GPU fails them here instead of skipping), run them under compute-sanitizer (memcheck over
# the suite, racecheck over the shared-memory kernels), run the benchmarks, and tabulate them.
# Every stage runs even if an earlier one failed; the exit status says whether all passed.
#
#   scripts/gpu_check.sh                      # every stage
#   scripts/gpu_check.sh build test           # chosen stages, in the order given:
#                                             #   build test memcheck racecheck bench table
#                                             #   bundle unpack
#
# A GPU machine that cannot build (no network for the dependencies, or too little time to
# spend on a build) takes a bundle made on a CPU machine with nvcc instead:
#   scripts/gpu_check.sh bundle               # here: build, then pack the two binaries and the
#                                             # shared libraries they need into build/gpu-bundle
#   scripts/gpu_check.sh unpack test bench table memcheck racecheck   # there, bundle carried
# The bundle leaves the CUDA runtime and cuBLAS out (hundreds of MB): unpack finds the GPU
# machine's own (CUDA_HOME, /usr/local/cuda, or a pip-installed nvidia-*-cu13 package).
#
# Results (logs, gtest XML, benchmark JSON, the Markdown tables) go to $RESULTS (default
# build/gpu/results) and are copied into $OUT when that is set. Settings from the
# environment: CUDA_ARCHITECTURES (default: the project's "80;90"), BENCH_REPETITIONS (5),
# BENCH_FILTER (all), BENCH_MIN_TIME (Google Benchmark's default), MEMCHECK_FILTER (the non-grid tests and a tenth of the grids).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=build/gpu
results=${RESULTS:-$build/results}
mkdir -p "$results"
jobs=$(nproc)
stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(build test memcheck racecheck bench table)
failed=()
tests_binary=$build/tests/cuda/lutmul_cuda_tests
bench_binary=$build/bench/lutmul_bench_cuda

find_tool() {  # a CUDA tool on PATH, under CUDA_HOME or /usr/local/cuda
  for candidate in "$(command -v "$1" 2>/dev/null)" "${CUDA_HOME:-/nonexistent}/bin/$1" "/usr/local/cuda/bin/$1"; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { echo "$candidate"; return 0; }
  done
  return 1
}

stage_build() {
  if command -v apt-get >/dev/null; then
    scripts/install_deps.sh || echo "warning: scripts/install_deps.sh failed (no network?); trying with what is installed"
  fi
  local nvcc
  nvcc=$(find_tool nvcc) || { echo "no nvcc found (PATH, CUDA_HOME, /usr/local/cuda)"; return 1; }
  local arch=()
  [ -n "${CUDA_ARCHITECTURES:-}" ] && arch=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHITECTURES")
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLUTMUL_CUDA=ON -DLUTMUL_WERROR=ON -DLUTMUL_TESTS=ON \
    -DLUTMUL_BENCH=ON -DCMAKE_CUDA_COMPILER="$nvcc" ${arch[@]+"${arch[@]}"} || return 1
  cmake --build "$build" -j "$jobs" --target lutmul_cuda_tests lutmul_bench_cuda
}

bundle=build/gpu-bundle

stage_bundle() {
  stage_build || return 1
  rm -rf "$bundle" && mkdir -p "$bundle/libs" || return 1
  cp "$tests_binary" "$bench_binary" "$bundle/" || return 1
  # Every shared library the binaries load except the C runtime and the CUDA libraries.
  ldd "$tests_binary" "$bench_binary" | awk '/=> \//{print $3}' | sort -u |
    grep -v -E '/(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s|ld-linux[^/]*)\.so|libcud|libcublas' |
    while read -r library; do cp -L "$library" "$bundle/libs/"; done
  tar cJf "$bundle/libs.tar.xz" -C "$bundle/libs" . && rm -rf "$bundle/libs" || return 1
  du -sh "$bundle"
}

stage_unpack() {
  [ -f "$bundle/libs.tar.xz" ] || { echo "no bundle in $bundle (make it with: scripts/gpu_check.sh bundle)"; return 1; }
  mkdir -p /tmp/lutmul-gpu-libs "$(dirname "$tests_binary")" "$(dirname "$bench_binary")"
  tar xJf "$bundle/libs.tar.xz" -C /tmp/lutmul-gpu-libs || return 1
  cp "$bundle/$(basename "$tests_binary")" "$tests_binary" && cp "$bundle/$(basename "$bench_binary")" "$bench_binary" || return 1
  local cuda_libraries
  cuda_libraries=$(find "${CUDA_HOME:-/usr/local/cuda}/" /usr/local /opt -name 'libcublasLt.so.*' 2>/dev/null |
    xargs -r -n1 dirname | sort -u | tr '\n' ':')
  export LD_LIBRARY_PATH="/tmp/lutmul-gpu-libs:${cuda_libraries}${LD_LIBRARY_PATH:-}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  if ldd "$tests_binary" "$bench_binary" | grep "not found"; then return 1; fi
}

stage_test() {
  { command -v nvidia-smi >/dev/null && nvidia-smi; } > "$results/nvidia-smi.txt" 2>&1
  cat "$results/nvidia-smi.txt"
  LUTMUL_CUDA_REQUIRE_DEVICE=1 "$tests_binary" --gtest_output="xml:$results/cuda_tests.xml" 2>&1 |
    tee "$results/cuda_tests.log" | grep -E "^\[  (FAILED|PASSED|SKIPPED) |^\[==========\]|Failure|device:"
}

sanitize() {  # tool, filter, log name
  local sanitizer
  sanitizer=$(find_tool compute-sanitizer) || { echo "compute-sanitizer not found"; return 1; }
  local extra=()
  # The tests provoke failing CUDA calls on purpose (an allocation too large, say) and check
  # that they become lutmul::Error; memcheck would count those as errors, so it reports memory
  # errors and leaks only. An unexpected failing call still fails its test.
  [ "$1" = memcheck ] && extra=(--leak-check full --report-api-errors no)
  LUTMUL_CUDA_REQUIRE_DEVICE=1 "$sanitizer" --tool "$1" ${extra[@]+"${extra[@]}"} --error-exitcode 99 --print-limit 50 \
    "$tests_binary" --gtest_filter="$2" > "$results/$3" 2>&1
  local status=$?
  grep -E "ERROR SUMMARY|RACECHECK SUMMARY|LEAK SUMMARY|^\[  (FAILED|PASSED) " "$results/$3"
  return $status
}

stage_memcheck() {
  sanitize memcheck "${MEMCHECK_FILTER:-NoDevice*:Runtime*:MaddnessGpu.*:DenseGpu.*:Int8Gpu.*:LoraGpu.*:*Grid*/*7}" \
    compute_sanitizer_memcheck.log
}

stage_racecheck() {  # shared memory: the encoder's tile, the scan's tables and staging, LoRA
  sanitize racecheck "${RACECHECK_FILTER:-MaddnessGpu.LargeCodebook*:MaddnessGpu.OneColumn*:*MaddnessGpuGrid*/*9:LoraGpu.Mixed*:LoraGpu.ManyAdapters*}" \
    compute_sanitizer_racecheck.log
}

stage_bench() {
  "$bench_binary" --benchmark_repetitions="${BENCH_REPETITIONS:-5}" --benchmark_report_aggregates_only=true \
    ${BENCH_MIN_TIME:+--benchmark_min_time="$BENCH_MIN_TIME"} --benchmark_filter="${BENCH_FILTER:-.}" --benchmark_out="$results/bench_cuda.json" --benchmark_out_format=json \
    2>&1 | tee "$results/bench_cuda.txt"
}

stage_table() {
  python3 bench/cuda_table.py "$results/bench_cuda.json" | tee "$results/performance_cuda.md"
}

for stage in "${stages[@]}"; do
  echo "== gpu_check: $stage"
  if ! declare -F "stage_$stage" >/dev/null; then
    echo "unknown stage '$stage' (build test memcheck racecheck bench table bundle unpack)"
    exit 2
  fi
  start=$(date +%s)
  if "stage_$stage"; then status=ok; else status=FAILED; failed+=("$stage"); fi
  echo "== gpu_check: $stage $status ($(( $(date +%s) - start )) s)"
done

if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then cp -r "$results" "$OUT/lutmul_gpu_results"; fi
echo "== gpu_check: results in $root/$results"
if ((${#failed[@]})); then
  echo "== gpu_check: FAILED stages: ${failed[*]}"
  exit 1
fi
echo "== gpu_check: all stages passed"
