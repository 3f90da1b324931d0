"""How int8 smoothing (Int8Linear's ``smoothing`` α) changes a whole model: every linear layer
of the packaged all-MiniLM-L6-v2 replaced by int8 at each α, each fitted on the rows the exact
model gives it for calibration sentences, then the embeddings of other real sentences against
the exact model's (mean cosine, top-10 neighbour overlap). docs/quality.md keeps a run.

    python -m lutmul.bench.int8_smoothing [--alphas 0,0.3,0.5,0.6,0.7,0.8] [--sentences 1000]
        [--calibration 500] [--static]
"""

import argparse
from typing import List, Sequence

import lutmul

from .._progress import progress_bar
from .runtime_bench import calibration_sentences, sample_sentences


def all_int8(encoder, calibration: Sequence[str], alpha: float, static: bool):
    """``encoder`` with every linear layer in int8 at smoothing ``alpha``."""
    out = encoder
    for block, name in encoder.linear_layers():
        op = encoder.linear(block, name)
        X = encoder.layer_inputs(calibration, block, name) if (alpha > 0 or static) else None
        settings = dict(activations="static", percentile=99.99) if static else {}
        out = out.with_linear(block, name, lutmul.Int8Linear.from_dense(op.weights, op.bias, smoothing=alpha,
                                                                        calibration=X, **settings))
    return out


def main(argv: Sequence[str] = None) -> List[dict]:
    from lutmul.runtime import load_encoder
    from lutmul.runtime.quality import mean_cosine, neighbour_overlap

    parser = argparse.ArgumentParser(prog="python -m lutmul.bench.int8_smoothing", description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", default="0,0.3,0.5,0.6,0.7,0.8")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--calibration", type=int, default=500)
    parser.add_argument("--static", action="store_true", help="static activation scales (99.99th percentile)")
    args = parser.parse_args(argv)
    alphas = [float(a) for a in args.alphas.split(",")]
    encoder = load_encoder(None)
    measured = sample_sentences(args.sentences)
    calibration = calibration_sentences(measured, args.calibration)
    reference = encoder.embed(measured)
    rows = []
    bar = progress_bar(True, total=len(alphas), desc="int8 smoothing", unit="α")
    for alpha in alphas:
        embedded = all_int8(encoder, calibration, alpha, args.static).embed(measured)
        rows.append(dict(alpha=alpha, cosine=mean_cosine(embedded, reference),
                         overlap=neighbour_overlap(embedded, reference)))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    scaling = "static (99.99th percentile)" if args.static else "dynamic"
    print(f"every linear layer int8, {scaling} activation scales; {len(measured)} sentences, "
          f"{len(calibration)} calibration sentences")
    print("| α | mean cosine | top-10 overlap |\n|---|---|---|")
    for row in rows:
        print(f"| {row['alpha']:g} | {row['cosine']:.5f} | {row['overlap']:.3f} |")
    return rows


if __name__ == "__main__":
    main()
