#!/usr/bin/env python3
"""Turns a lutmul_bench JSON run into the Markdown tables of docs/performance.md.

    build/release/bench/lutmul_bench --benchmark_repetitions=9 --benchmark_min_time=0.1 \\
        --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \\
        --benchmark_out=run.json --benchmark_out_format=json
    python3 bench/performance_table.py run.json > docs/performance.md

Every ratio is against the fastest exact product (OpenBLAS, Eigen or oneDNN) of the same shape
and thread count, measured in the same run. Times are medians of the repetitions.
"""
import json
import platform
import subprocess
import sys
from collections import defaultdict


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main(path: str) -> None:
    run = json.load(open(path))
    medians = {}
    counters = {}
    for b in run["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        medians[name] = b["real_time"] * scale
        counters[name] = {k: v for k, v in b.items() if k.endswith("/s")}

    ctx = run["context"]
    repetitions = max((b.get("repetitions", 0) for b in run["benchmarks"]), default=0)
    print("# Performance\n")
    print("Measured by `bench/lutmul_bench` (Google Benchmark) and tabulated by `bench/performance_table.py`;")
    print("reproduce with the two commands at the top of that script. Medians of "
          f"{repetitions} repetitions (`--benchmark_min_time=0.1`); one run, one machine.")
    print("The machine is a shared 2-vCPU VM: repeated runs move single figures by 10–20 % (two-thread")
    print("ratios the most), ratios within one run far less.\n")
    print(f"- Machine: {cpu_model()}, {ctx.get('num_cpus')} cores at {ctx.get('mhz_per_cpu')} MHz, "
          f"caches L2 1 MiB/core, L3 32 MiB; {platform.system()} {platform.release()}")
    print(f"- lutmul kernels: `{ctx.get('lutmul_isa')}`; exact baselines: OpenBLAS {ctx.get('blas_config', '')} "
          f"(kernel `{ctx.get('blas_core')}`), Eigen 3 built with `-march=native` and oneDNN {ctx.get('onednn', '')} "
          "(lutmul's own exact product, `dense_linear`); the fastest one per shape is the baseline.")
    print("- A is float32 (row-major unless noted), Y is float32 row-major, tables are prebuilt, exact accumulation "
          "unless the row says averaged. Threads: the last number in each name.\n")

    def exact_best(n, d, m, t):
        options = [(medians.get(f"{k}/{n}/{d}/{m}/{t}"), k) for k in ("exact_sgemm", "exact_eigen", "exact_onednn")]
        options = [o for o in options if o[0] is not None]
        return min(options) if options else (None, None)

    print("## End to end (encode + scan) against the exact product\n")
    print("| N | M | C | threads | exact best (ms) | baseline | MADDNESS col-major A (µs) | speed-up | "
          "row-major A (µs) | speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in sorted(medians, key=lambda k: [int(x) if x.isdigit() else x for x in k.split("/")]):
        parts = name.split("/")
        if parts[0] != "maddness_matmul_colmajor":
            continue
        n, d, m, c, t = parts[1:]
        col = medians[name]
        row = medians.get(f"maddness_matmul/{n}/{d}/{m}/{c}/{t}")
        best, which = exact_best(n, d, m, t)
        if best is None:
            continue
        row_cells = f"{row * 1e6:.0f} | {best / row:.1f}x" if row else "- | -"
        print(f"| {n} | {m} | {c} | {t} | {best * 1e3:.2f} | {which} | {col * 1e6:.0f} | {best / col:.1f}x | {row_cells} |")

    print("\n## Stages\n")
    print("| benchmark | median (µs) | rate |")
    print("|---|---|---|")
    for name in sorted(medians, key=lambda k: [int(x) if x.isdigit() else x for x in k.split("/")]):
        if not name.startswith(("maddness_scan", "maddness_encode", "maddness_fit")):
            continue
        rate = ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in counters[name].items())
        print(f"| `{name}` | {medians[name] * 1e6:.0f} | {rate} |")

    print("\n## Row-major encoder against the streaming bound\n")
    print("`stream_read` reads every byte of the row-major A with plain loads (one thread). With D = 512 and")
    print("16 or more codebooks every 64-byte line of a row holds a split column, so the encoder must")
    print("stream all of A too.\n")
    print("| N | stream_read (GB/s) | encoder C | encoder (GB/s on touched lines) | share of the bound |")
    print("|---|---|---|---|---|")
    for n in ("10016", "57600"):
        bound = counters.get(f"stream_read/{n}/512", {}).get("bytes/s")
        if not bound:
            continue
        for c in ("8", "16", "32"):
            enc = counters.get(f"maddness_encode/{n}/512/{c}/1", {}).get("touched_bytes/s")
            if enc:
                print(f"| {n} | {bound / 1e9:.1f} | {c} | {enc / 1e9:.1f} | {enc / bound:.0%} |")

    print("\n## The MADDNESS core issue's bars (N = 10 016, D = 512, one core unless noted)\n")
    def ratio(name, n="10016", m="100", t="1"):
        best, _ = exact_best(n, "512", m, t)
        return best / medians[name] if name in medians and best else float("nan")
    bars = [
        ("column-major A, M = 100, C = 16: at least 25x", ratio("maddness_matmul_colmajor/10016/512/100/16/1"), 25),
        ("column-major A, M = 10, C = 16: at least 10x", ratio("maddness_matmul_colmajor/10016/512/10/16/1", m="10"), 10),
        ("row-major A, M = 100, C = 16: at least 10x", ratio("maddness_matmul/10016/512/100/16/1"), 10),
        ("scan, C = 16, M = 100: at least 40 G lookups/s",
         counters.get("maddness_scan/10016/100/16/1", {}).get("lookups/s", 0) / 1e9, 40),
        ("two threads over one, column-major, M = 100, C = 16: at least 1.7x",
         medians.get("maddness_matmul_colmajor/10016/512/100/16/1", 0) / medians.get("maddness_matmul_colmajor/10016/512/100/16/2", 1), 1.7),
        ("fit, 10 000 rows, D = 512, C = 16, one thread: under 0.5 s (measured in s)",
         medians.get("maddness_fit/10000/512/16/1", float("nan")), 0.5),
    ]
    print("| bar | measured | met |")
    print("|---|---|---|")
    for label, value, target in bars:
        met = value <= target if "under" in label else value >= target
        print(f"| {label} | {value:.3g} | {'yes' if met else 'no'} |")

    print("\n## The MADDNESS kernel issue's bars (N = 10 016, D = 512, C = 16, one thread unless noted)\n")
    print("The scan's bound: the in-cache scan (N = 1 024, Y and the codes in L2) scaled to N = 10 016, plus")
    print("`store_y`, plain stores of all of Y. 64 leaves: `maddness_scan_k64`.\n")

    def scan_bound(m):
        small, store = medians.get(f"maddness_scan/1024/{m}/16/1"), medians.get(f"store_y/10016/{m}")
        return small * 10016 / 1024 + store if small and store else float("nan")
    def share(a, b):
        return medians[a] / medians[b] if a in medians and b in medians else float("nan")
    issue_bars = [
        ("column-major A, M = 100: at least 25x", ratio("maddness_matmul_colmajor/10016/512/100/16/1"), 25, True),
        ("column-major A, M = 10: at least 20x", ratio("maddness_matmul_colmajor/10016/512/10/16/1", m="10"), 20, True),
        ("row-major A, M = 100: at least 12x", ratio("maddness_matmul/10016/512/100/16/1"), 12, True),
        ("full-size scan, M = 100, within 1.3x of its bound",
         medians.get("maddness_scan/10016/100/16/1", float("nan")) / scan_bound("100"), 1.3, False),
        ("full-size scan, M = 10, within 1.3x of its bound",
         medians.get("maddness_scan/10016/10/16/1", float("nan")) / scan_bound("10"), 1.3, False),
        ("two threads over one, column-major A, M = 100: at least 1.75x",
         share("maddness_matmul_colmajor/10016/512/100/16/1", "maddness_matmul_colmajor/10016/512/100/16/2"), 1.75, True),
        ("64 leaves, scan, M = 100: at most 1.6x the time of 16 leaves",
         share("maddness_scan_k64/10016/100/16/1", "maddness_scan/10016/100/16/1"), 1.6, False),
        ("64 leaves, scan, M = 10: at most 1.6x the time of 16 leaves",
         share("maddness_scan_k64/10016/10/16/1", "maddness_scan/10016/10/16/1"), 1.6, False),
    ]
    print("| bar | measured | met |")
    print("|---|---|---|")
    for label, value, target, at_least in issue_bars:
        if value != value:  # not in this run
            continue
        met = value >= target if at_least else value <= target
        print(f"| {label} | {value:.2f}{'x' if at_least else ''} | {'yes' if met else 'no'} |")

    def by_shape(family):
        """Medians of one benchmark family in numeric order, as (name, the numbers in its name)."""
        for name in sorted(medians, key=lambda k: [int(x) if x.isdigit() else x for x in k.split("/")]):
            parts = name.split("/")
            if parts[0] == family:
                yield name, parts[1:]

    def operator_table(family, column, extra=None):
        """One row per shape against the exact product; `extra` is the index of a setting
        (sparsity) in the name, shown after N."""
        head = "| N |" + (" sparsity |" if extra is not None else "") + f" threads | exact best (µs) | baseline | {column} (µs) | speed-up |"
        print(head)
        print("|" + "---|" * (head.count("|") - 1))
        for name, args in by_shape(family):
            setting = args.pop(extra) if extra is not None else None
            n, k, m, t = args
            best, which = exact_best(n, k, m, t)
            if best:
                cells = [n] + ([f"{setting} %"] if setting is not None else []) + [
                    t, f"{best * 1e6:.0f}", which, f"{medians[name] * 1e6:.0f}", f"{best / medians[name]:.2f}x"]
                print("| " + " | ".join(cells) + " |")

    print("\n## Operators (K = M = 1024)\n")
    operator_table("int8_linear", "int8")
    print("\nint8: dynamic per-row activation scales, per-channel weights, AVX-512 VNNI kernel.\n")
    operator_table("sparse_linear", "pruned", extra=3)
    print("\nPruned: unstructured, CSC by output in blocks of 128 inputs, AVX-512 kernel.\n")
    operator_table("sparse24_linear", "2:4")
    print("\n2:4: two kept of every four inputs per output, values plus 2-bit positions, AVX-512 kernel.")

    def speedup(name, n, k="1024", m="1024", t="1"):
        best, _ = exact_best(n, k, m, t)
        return best / medians[name] if name in medians and best else float("nan")
    print("\n## The operators issue's bars (K = M = 1024, one thread, against the fastest exact product)\n")
    print("| bar | measured | met |")
    print("|---|---|---|")
    for label, value, target in [
        ("int8, N = 512: at least 2.5x", speedup("int8_linear/512/1024/1024/1", "512"), 2.5),
        ("int8, N = 1 (GEMV): at least 2x", speedup("int8_linear/1/1024/1024/1", "1"), 2.0),
        ("unstructured 90 %, N = 256: at least 4x", speedup("sparse_linear/256/1024/1024/90/1", "256"), 4.0),
        ("2:4, N = 256: at least 1.3x", speedup("sparse24_linear/256/1024/1024/1", "256"), 1.3),
    ]:
        print(f"| {label} | {value:.2f}x | {'yes' if value >= target else 'no'} |")

    print("\n## Low-rank and LoRA (K = M = 1024, one thread unless noted)\n")
    print("| benchmark | median (µs) | against |")
    print("|---|---|---|")
    for name in sorted(medians, key=lambda k: [int(x) if x.isdigit() else x for x in k.split("/")]):
        parts = name.split("/")
        if parts[0] == "lowrank_linear":
            best, which = exact_best(parts[1], parts[2], parts[3], parts[5])
            print(f"| `{name}` (rank {parts[4]}) | {medians[name] * 1e6:.0f} | {best / medians[name]:.2f}x faster than {which} |")
        elif parts[0].startswith("lora_"):
            print(f"| `{name}` | {medians[name] * 1e6:.0f} | |")
    lora = "256/1024/1024/16/16/1"
    base = medians.get("lora_base/256/1024/1024/1", float("nan"))
    print("\nLoRA names: N/K/M/r/adapters/threads; `lora_base` is the dense base alone.\n")
    print("| bar | measured | met |")
    print("|---|---|---|")
    for label, value, target, at_least in [
        ("low-rank r = 128, N = 512: at least 3x faster than exact",
         speedup("lowrank_linear/512/1024/1024/128/1", "512"), 3.0, True),
        ("adapter term, 256 rows over 16 adapters: grouped at least 3x faster than row by row",
         medians.get(f"lora_adapter_term_rowwise/{lora}", float("nan")) / medians.get(f"lora_adapter_term_grouped/{lora}", float("nan")),
         3.0, True),
        ("whole forward (dense base + 16 adapters) under 1.25x the base alone",
         medians.get(f"lora_forward/{lora}", float("nan")) / base, 1.25, False),
    ]:
        met = value >= target if at_least else value < target
        print(f"| {label} | {value:.2f}x | {'yes' if met else 'no'} |")

    print("\n## Exact baselines\n")
    print("| benchmark | median (ms) | GFLOP/s |")
    print("|---|---|---|")
    for name in sorted(medians):
        if name.startswith(("exact_", "dense_linear/")):
            rate = counters[name]
            gflops = (rate.get("GFLOP/s") or 2 * rate.get("GMAC/s", 0)) / 1e9
            print(f"| `{name}` | {medians[name] * 1e3:.2f} | {gflops:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1])
