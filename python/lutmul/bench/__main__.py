"""Command line of the harness: ``python -m lutmul.bench --help``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .timing import CORETYPE_VARIABLE, openblas_core_for_this_cpu


def _ensure_fast_blas() -> None:
    """Re-executes this command with OPENBLAS_CORETYPE set when it is not: Debian's OpenBLAS
    reads it only when it loads, and may otherwise pick a slow generic kernel for this CPU,
    which would flatter every speed-up. LUTMUL_BENCH_KEEP_BLAS=1 keeps the environment as is."""
    if os.environ.get(CORETYPE_VARIABLE) or os.environ.get("LUTMUL_BENCH_KEEP_BLAS"):
        return
    core = openblas_core_for_this_cpu()
    if not core:
        return
    os.environ[CORETYPE_VARIABLE] = core
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "lutmul.bench", *sys.argv[1:]])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lutmul.bench", description=__doc__.splitlines()[0] + " "
                                     "Measures every lutmul operator on real products: error, task metric, bytes, "
                                     "time at one thread and at all threads.")
    parser.add_argument("--quick", action="store_true", help="fewer products, settings and repeats (under 2 minutes)")
    parser.add_argument("--out", type=Path, default=Path("lutmul-bench"),
                        help="folder for results.json, report.md and the plots (default: ./lutmul-bench)")
    parser.add_argument("--markdown", type=Path, default=None,
                        help="write the Markdown report here instead of OUT/report.md (image links follow)")
    parser.add_argument("--products", default=None,
                        help="comma-separated product keys or prefixes, e.g. 'digits,minilm.0' (default: all)")
    parser.add_argument("--families", default=None,
                        help="comma-separated operator families to measure besides the exact baselines, e.g. "
                             "'maddness,pq' (default: all)")
    parser.add_argument("--repeats", type=int, default=None, help="timed samples per setting (default 5 quick, 9 full)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                        help="measure nothing: redraw the report and plots of an earlier results.json (or "
                             "runtime_results.json) into --out")
    runtime = parser.add_argument_group("the runtime benchmark (--runtime): all-MiniLM-L6-v2 end to end in lutmul's "
                                        "runtime, ONNX Runtime fp32/int8, OpenVINO f32/default and the numpy reference")
    runtime.add_argument("--runtime", action="store_true",
                         help="run it instead of the operator harness: OUT/runtime_results.json, runtime_report.md, "
                              "runtime_speed.png (needs the bench-runtime extra)")
    runtime.add_argument("--sentences", type=int, default=None, help="real sentences embedded per pass (default 2000; "
                                                                      "300 with --quick)")
    runtime.add_argument("--engines", default=None,
                         help="comma-separated engines (default: all): numpy, ort-fp32, ort-int8, openvino-f32, "
                              "openvino-default, lutmul, lutmul-bf16, lutmul-compiled-0.99, lutmul-compiled-0.995, "
                              "lutmul-compiled-0.999 (each compiled here first, on 2000 sentences never measured)")
    runtime.add_argument("--no-memory", action="store_true", help="skip the peak-memory processes")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.sentences is not None and args.sentences < 20:
        parser.error("--sentences must be at least 20")


    import json

    if args.runtime or (args.render is not None and "engines" in json.loads(args.render.read_text())):
        return _runtime(args, argv)

    from .harness import Config, render, run
    from .operators import FAMILIES
    from .report import summary_line, terminal_table

    families = [f.strip() for f in args.families.split(",")] if args.families else None
    unknown = sorted(set(families or []) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {', '.join(unknown)}: choose from {', '.join(FAMILIES)}")

    if args.render is not None:
        result = json.loads(args.render.read_text())
        args.out.mkdir(parents=True, exist_ok=True)
        print(terminal_table(result))
        print(f"\nreport: {render(result, args.out, args.markdown)}")
        return 0

    config = Config(quick=args.quick, out=args.out, markdown=args.markdown,
                    products=[p.strip() for p in args.products.split(",")] if args.products else None, families=families,
                    repeats=args.repeats, progress=not args.no_progress,
                    command=["python -m lutmul.bench", *(argv if argv is not None else sys.argv[1:])])
    result = run(config)
    print(terminal_table(result))
    for skipped in result["skipped_products"]:
        print(f"\nskipped {skipped['key']}: {skipped['reason']}")
    markdown = args.markdown or args.out / "report.md"
    print("\n" + summary_line(result, markdown))
    print(f"results: {args.out / 'results.json'}; plots: {args.out}/*.png")
    return 0


def _runtime(args, argv) -> int:
    import json

    from . import runtime_report
    from .runtime_bench import RuntimeConfig, run_runtime

    args.out.mkdir(parents=True, exist_ok=True)
    if args.render is not None:
        result = json.loads(args.render.read_text())
    else:
        from .peers import ENGINE_KEYS

        engines = [e.strip() for e in args.engines.split(",")] if args.engines else None
        unknown = sorted(set(engines or ()) - set(ENGINE_KEYS))
        if unknown:
            sys.exit(f"python -m lutmul.bench: error: unknown engines {', '.join(unknown)}; "
                     f"engines: {', '.join(ENGINE_KEYS)}")
        sentences = args.sentences or (300 if args.quick else 2000)
        config = RuntimeConfig(out=args.out, markdown=args.markdown, sentences=sentences, repeats=args.repeats or 3,
                               sweep_sentences=min(128, sentences) if not args.quick else min(96, sentences),
                               latency_seconds=0.3 if args.quick else 1.0, memory=not args.no_memory, engines=engines,
                               # --quick compiles on few sentences with two candidate kinds: a smoke run
                               calibration=120 if args.quick else 2000,
                               compile_options=dict(max_fit_rows=2048, screen_sentences=32, candidates=("int8", "bf16"))
                               if args.quick else {},
                               progress=not args.no_progress,
                               command=["python -m lutmul.bench", *(argv if argv is not None else sys.argv[1:])])
        result = run_runtime(config)
    print(runtime_report.terminal_table(result))
    report = result["report"] if args.render is None else runtime_report.write(result, args.out, args.markdown)
    print(f"\nreport: {report}; results: {args.render or args.out / 'runtime_results.json'}")
    return 0


if __name__ == "__main__":
    _ensure_fast_blas()
    sys.exit(main())
