"""Batch-1 latency of one runtime engine alone in its own process, with the harness's own
sentence and timing (runtime_bench.batch1_latency): the harness measures every engine in one
process, where the thread pools of the others can share the cores.

    python -m lutmul.bench.latency_alone ENGINE THREADS [--models FOLDER]

ENGINE is one of the harness's keys (lutmul, ort-fp32, ...); FOLDER keeps the ONNX files the
peers run (written on first use)."""

import argparse
import tempfile
from pathlib import Path

import lutmul

from . import peers, runtime_bench
from .minilm import model_dir


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lutmul.bench.latency_alone", description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=peers.ENGINE_KEYS)
    parser.add_argument("threads", type=int)
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "lutmul-peer-models")
    args = parser.parse_args(argv)
    args.models.mkdir(parents=True, exist_ok=True)
    fp32, int8 = args.models / "minilm_fp32.onnx", args.models / "minilm_int8.onnx"
    needs_onnx = args.engine.startswith(("ort-", "openvino-"))
    models = peers.PeerModels.build(args.models) if needs_onnx and not int8.exists() else \
        peers.PeerModels(args.models, fp32, int8)
    model_path = model_dir()
    batcher = peers.Batcher(model_path)
    engine = peers.make_engine(args.engine, models, model_path, batcher)
    lutmul.set_num_threads(args.threads)  # the harness's setting for lutmul's engines
    engine.prepare(args.threads)
    seconds = runtime_bench.batch1_latency(engine, runtime_bench.latency_sentence(batcher), 2.0)
    print(f"{args.engine}, {args.threads} thread(s): batch-1 latency {seconds * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
