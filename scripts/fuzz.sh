#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, the library instrumented with ASan + UBSan) into
# build/fuzz and runs each on its seed corpus and dictionary, one after another:
#   scripts/fuzz.sh --time 60          about a minute each (what scripts/test.sh runs)
#   scripts/fuzz.sh --runs 1000000     the long run of docs/fuzzing.md
#   scripts/fuzz.sh --time 60 fuzz_safetensors    one target
# New corpus entries go to build/fuzz/corpus/<target>/ (kept between runs), crash inputs to
# build/fuzz/artifacts/. Exits non-zero when any target finds a crash, a leak or a timeout;
# a crash input becomes a regression test under tests/cpp/data/fuzz/ (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=60)
case "${1:-}" in
  --time) limit=(-max_total_time="$2"); shift 2 ;;
  --runs) limit=(-runs="$2"); shift 2 ;;
esac
targets=("$@")
((${#targets[@]})) || targets=(fuzz_operator_file fuzz_maddness_file fuzz_safetensors fuzz_peft_adapter fuzz_encoder_file fuzz_encoder_config)

cmake -S . -B build/fuzz -DCMAKE_CXX_COMPILER=clang++ -DLUTMUL_FUZZ=ON -DLUTMUL_TESTS=OFF -DLUTMUL_BENCH=OFF \
  -DLUTMUL_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build/fuzz -j "$(nproc)" --target "${targets[@]}"

mkdir -p build/fuzz/artifacts
status=0
for target in "${targets[@]}"; do
  mkdir -p "build/fuzz/corpus/$target"
  log="build/fuzz/$target.log"
  echo "-- $target (${limit[*]}), log in $log"
  # -timeout: one input taking 10 s is a finding (a reader must not hang on a file).
  if ! "build/fuzz/fuzz/$target" "${limit[@]}" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      -dict="fuzz/$target.dict" -artifact_prefix="build/fuzz/artifacts/$target-" \
      "build/fuzz/corpus/$target" "fuzz/corpus/$target" >"$log" 2>&1; then
    status=1
    echo "   FAILED: $(grep -m1 -E 'ERROR|runtime error|fuzz check failed' "$log" || tail -n 3 "$log")"
    ls -1 "build/fuzz/artifacts/$target-"* 2>/dev/null | sed 's/^/   input: /'
  fi
  # The last status line (executions, coverage, corpus) and the final statistics.
  grep -E '^#[0-9]+' "$log" | tail -n 1 | sed 's/^/   /'
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | sed 's/^/   /'
done
exit $status
