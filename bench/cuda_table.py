#!/usr/bin/env python3
"""Turns a lutmul_bench_cuda JSON run into the Markdown tables for docs/performance.md,
with the issue's bars checked and a roofline estimate beside each MADDNESS figure.

    scripts/gpu_check.sh bench table      # or:
    python3 bench/cuda_table.py build/gpu/results/bench_cuda.json

Times are medians of the repetitions (run with --benchmark_repetitions and
--benchmark_report_aggregates_only=true), GPU time between CUDA events.
"""
import json
import sys

# Data-sheet peaks of the H100 SXM used for the roofline (the memory peak also comes from
# the device itself, in the run's context).
H100_FP32_FLOPS = 67e12
H100_BF16_FLOPS = 990e12


def load(path):
    run = json.load(open(path))
    medians = {}
    for b in run["benchmarks"]:
        name = b["name"]
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") != "median":
                continue
            name = b["run_name"]
        seconds = b["real_time"] * {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
        medians[name.replace("/manual_time", "")] = dict(b, seconds=seconds)
    return run["context"], medians


def us(entry):
    return f"{entry['seconds'] * 1e6:.1f}"


def main(path):
    context, m = load(path)
    peak = float(context.get("gpu_peak_bandwidth_GBps", "nan")) * 1e9
    copy = m.get("device_copy/1024")
    measured = copy["bytes/s"] if copy else float("nan")
    out = []
    out.append("## CUDA (measured)\n")
    out.append(f"- Device: {context.get('gpu', '?')}, {context.get('gpu_multiprocessors', '?')} SMs, "
               f"peak memory bandwidth {peak / 1e9:.0f} GB/s from its clock and bus; device-to-device copy "
               f"measured {measured / 1e9:.0f} GB/s (read + write). CUDA runtime {context.get('cuda_runtime', '?')}.")
    out.append(f"- Host: {context.get('host_name', '?')}, run {context.get('date', '?')}. "
               "Medians of the repetitions, GPU time between CUDA events, data already on the device.\n")

    out.append("### MADDNESS encode (N = 65 536, D = 512)\n")
    out.append("| C | A layout | time (µs) | bytes it must read (GB/s) | % of peak | % of measured copy | bar ≥ 60 % of peak |")
    out.append("|---|---|---|---|---|---|---|")
    for c in (8, 16, 32):
        for layout, name in (("row-major", "maddness_gpu_encode"), ("column-major", "maddness_gpu_encode_colmajor")):
            e = m.get(f"{name}/65536/512/{c}")
            if not e:
                continue
            rate = e["touched_bytes/s"]
            out.append(f"| {c} | {layout} | {us(e)} | {rate / 1e9:.0f} | {100 * rate / peak:.0f} % | "
                       f"{100 * rate / measured:.0f} % | {'met' if rate >= 0.6 * peak else 'NOT met'} |")

    out.append("\n### MADDNESS scan (N = 65 536)\n")
    out.append("| M | C | time (µs) | lookups/s (G) |")
    out.append("|---|---|---|---|")
    for name, label in (("maddness_gpu_scan", ""), ("maddness_gpu_scan_averaged", " (averaged)")):
        for c in (8, 16, 32):
            for mm in (10, 100):
                e = m.get(f"{name}/65536/{mm}/{c}")
                if e:
                    out.append(f"| {mm} | {c}{label} | {us(e)} | {e['lookups/s'] / 1e9:.0f} |")

    out.append("\n### MADDNESS matmul against cuBLAS (N = 65 536, D = 512, M = 100)\n")
    n, d, mo = 65536, 512, 100
    flops = 2 * n * d * mo
    baselines = [("dense_gpu_fp32", "cuBLAS fp32, TF32 off"), ("dense_gpu_tf32", "cuBLAS TF32"),
                 ("dense_gpu_bf16", "cuBLAS bf16, X converted in the call"),
                 ("dense_gpu_bf16_converted", "cuBLAS bf16 GEMM alone (X already bf16)")]
    out.append("| product | time (µs) | TFLOP/s (dense-equivalent) |")
    out.append("|---|---|---|")
    for key, label in baselines:
        e = m.get(f"{key}/{n}/{d}/{mo}")
        if e:
            out.append(f"| {label} | {us(e)} | {flops / e['seconds'] / 1e12:.1f} |")
    for c in (8, 16, 32):
        for name, layout in (("maddness_gpu_matmul", "row-major A"), ("maddness_gpu_matmul_colmajor", "column-major A")):
            e = m.get(f"{name}/{n}/{d}/{mo}/{c}")
            if e:
                out.append(f"| MADDNESS C = {c}, {layout} | {us(e)} | {flops / e['seconds'] / 1e12:.1f} |")
    checked = m.get(f"maddness_gpu_matmul_checked/{n}/{d}/{mo}/16")
    if checked:
        out.append(f"| MADDNESS C = 16, row-major, NaN check (one sync) | {us(checked)} | "
                   f"{flops / checked['seconds'] / 1e12:.1f} |")
    target = m.get(f"maddness_gpu_matmul/{n}/{d}/{mo}/16")
    if target:
        out.append("\n| ratio (C = 16, row-major A) | speed-up | bar |")
        out.append("|---|---|---|")
        for key, label in baselines:
            e = m.get(f"{key}/{n}/{d}/{mo}")
            if e:
                ratio = e["seconds"] / target["seconds"]
                bar = ("≥ 3x: " + ("met" if ratio >= 3 else "NOT met")) if key == "dense_gpu_fp32" else "reported"
                out.append(f"| against {label} | {ratio:.2f}x | {bar} |")
        # Roofline: A read once (fp32, or bf16 for the converted GEMM), Y written once.
        a32, a16, y = 4 * n * d, 2 * n * d, 4 * n * mo
        out.append("\nRoofline (lower bounds from the data sheet: HBM at the peak above, "
                   f"fp32 {H100_FP32_FLOPS / 1e12:.0f} TFLOP/s, bf16 {H100_BF16_FLOPS / 1e12:.0f} TFLOP/s dense):")
        enc = m.get(f"maddness_gpu_encode/{n}/{d}/16")
        touched = enc["touched_bytes/s"] * enc["seconds"] if enc else a32
        out.append(f"- MADDNESS, row-major A: read the 32-byte sectors holding split columns ({touched / 1e6:.0f} MB of "
                   f"A's {a32 / 1e6:.0f} MB) + write Y ({y / 1e6:.0f} MB) = {(touched + y) / peak * 1e6:.1f} µs "
                   f"(all of A: {(a32 + y) / peak * 1e6:.1f} µs); "
                   f"measured {us(target)} µs.")
        out.append(f"- cuBLAS fp32: max(compute {flops / H100_FP32_FLOPS * 1e6:.1f} µs, memory "
                   f"{(a32 + y) / peak * 1e6:.1f} µs).")
        out.append(f"- cuBLAS bf16 (X already bf16): max(compute {flops / H100_BF16_FLOPS * 1e6:.1f} µs, memory "
                   f"{(a16 + y) / peak * 1e6:.1f} µs).")

    out.append("\n### LoRA: grouped kernels against one adapter at a time (K = M = 4096, r = 16)\n")
    out.append("| rows | adapters | grouped (µs) | one at a time (µs) | speed-up | bar ≥ 3x (256 rows, 16 adapters) |")
    out.append("|---|---|---|---|---|---|")
    for rows, count in ((256, 16), (4096, 64)):
        g = m.get(f"lora_gpu_grouped/{rows}/4096/4096/16/{count}")
        p = m.get(f"lora_gpu_per_adapter/{rows}/4096/4096/16/{count}")
        if g and p:
            ratio = p["seconds"] / g["seconds"]
            bar = ("met" if ratio >= 3 else "NOT met") if (rows, count) == (256, 16) else ""
            out.append(f"| {rows} | {count} | {us(g)} | {us(p)} | {ratio:.1f}x | {bar} |")

    out.append("\n### int8 against fp16 (N = K = M = 4096)\n")
    out.append("| product | time (µs) | TOPS |")
    out.append("|---|---|---|")
    f = 2 * 4096 ** 3
    for key, label in (("int8_gpu", "int8: quantise X + cuBLASLt int8 + float epilogue"),
                       ("dense_gpu_fp16", "cuBLAS fp16, X converted in the call"),
                       ("dense_gpu_fp16_converted", "cuBLAS fp16 GEMM alone"),
                       ("dense_gpu_bf16_converted", "cuBLAS bf16 GEMM alone"),
                       ("dense_gpu_fp32", "cuBLAS fp32, TF32 off")):
        e = m.get(f"{key}/4096/4096/4096")
        if e:
            out.append(f"| {label} | {us(e)} | {f / e['seconds'] / 1e12:.0f} |")
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
