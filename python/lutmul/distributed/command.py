"""``lutmul serve``: the HTTP service (:mod:`.service`) on uvicorn, its workers on Ray.

    lutmul serve --model PATH [--address auto|HOST:PORT|ray://HOST:10001] [--workers N] [--port 8000]

This module imports only argparse until the command runs, so ``lutmul --help`` stays fast
and works without the ``distributed`` extra.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PORT = 8000


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value
    return parse


def add_arguments(parser: argparse.ArgumentParser, packaged_model: str, precisions) -> None:
    from .service import ServiceLimits

    defaults = ServiceLimits()
    parser.add_argument("--model", required=True, metavar="PATH",
                        help=f"model folder every Ray node can read, or {packaged_model} (found on each node)")
    parser.add_argument("--address", metavar="ADDRESS",
                        help="Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 (default: start a local one)")
    parser.add_argument("--workers", type=_positive(int), metavar="N",
                        help="actors, each holding the model (default: the cluster's CPUs / --threads)")
    parser.add_argument("--threads", type=_positive(int), default=1, metavar="N",
                        help="lutmul threads and Ray CPUs per actor (1)")
    parser.add_argument("--precision", choices=precisions, default="f32", help="f32 (exact) or bf16")
    parser.add_argument("--ship-model", action="store_true",
                        help="read the model folder here and ship it to the actors through Ray's object store")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on ({DEFAULT_PORT})")
    parser.add_argument("--max-sentences", type=_positive(int), default=defaults.max_sentences, metavar="N",
                        help=f"sentences per request at most; more: 413 ({defaults.max_sentences})")
    parser.add_argument("--max-sentence-chars", type=_positive(int), default=defaults.max_sentence_chars,
                        metavar="N", help=f"characters per sentence at most; more: 422 ({defaults.max_sentence_chars})")
    parser.add_argument("--max-queued-rows", type=_positive(int), default=defaults.max_queued_rows, metavar="N",
                        help=f"sentences admitted and not answered at most; past it: 503 ({defaults.max_queued_rows})")
    parser.add_argument("--timeout", type=_positive(float), default=defaults.timeout_seconds, metavar="SECONDS",
                        help=f"per request; past it: 504 ({defaults.timeout_seconds:g})")
    parser.add_argument("--part-rows", type=_positive(int), default=defaults.part_rows, metavar="N",
                        help=f"sentences per part sent to one actor at most ({defaults.part_rows})")


def run(args) -> int:
    """Connects to Ray, starts the actors, serves until SIGINT/SIGTERM, then stops them."""
    try:
        import uvicorn
    except ImportError as error:
        raise ImportError("lutmul serve needs uvicorn and FastAPI: pip install 'lutmul[distributed]'") from error
    from ._ray import connected
    from .pool import WorkerPool
    from .service import ServiceLimits, create_app

    limits = ServiceLimits(max_sentences=args.max_sentences, max_sentence_chars=args.max_sentence_chars,
                           max_queued_rows=args.max_queued_rows, timeout_seconds=args.timeout,
                           part_rows=args.part_rows)
    with connected(args.address):
        pool = WorkerPool(args.model, args.workers, precision=args.precision, threads=args.threads,
                          ship_model=args.ship_model)
        try:
            try:
                described = pool.describe(timeout=300)
            except Exception as error:
                print(f"lutmul: error: the workers could not load the model {args.model!r}: {error}", file=sys.stderr)
                return 1
            print(f"lutmul serve: {len(described)} workers ({', '.join(d['name'] for d in described)}) with "
                  f"{described[0]['model']}; http://{args.host}:{args.port}/embed", file=sys.stderr, flush=True)
            app = create_app(pool, limits, model_name=args.model)
            uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
        finally:
            pool.shutdown()
    return 0
