"""What the harness shows: the terminal table, the Markdown report and the plots."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Optional

from . import analysis
from .operators import FAMILIES, FAMILY_NAMES

STYLE = {  # family: (colour, marker)
    "exact": ("black", "*"), "maddness": ("tab:red", "o"), "pq": ("tab:orange", "v"), "int8": ("tab:blue", "s"),
    "lowrank": ("tab:green", "D"), "pruned": ("tab:purple", "^"), "2:4": ("tab:pink", "P"),
    "channels": ("tab:brown", "X"), "bf16": ("tab:gray", "h"),
}


def short_label(record: dict) -> str:
    p, family = record["params"], record["family"]
    if family == "maddness":
        return f"C={p['ncodebooks']}" + ("K64" if p.get("leaves", 16) == 64 else "")
    if family == "pq":
        return f"PQ{p['ncodebooks']}"
    if family == "lowrank":
        return f"r={p['rank']}" + ("c" if p.get("calibrated") else "")
    if family == "pruned":
        return f"{p['sparsity']:.0%}" + ("" if p.get("calibrated") else "m")
    if family == "channels":
        return f"{p['channels'][:2]}{p['fraction']:.0%}"
    if family == "int8":
        return "int8" if p.get("activations") == "dynamic" else "int8s"
    return record["label"]


BASELINE_NAMES = {"exact/numpy": "numpy", "exact/dense": "lutmul.DenseLinear"}


def _baseline(product: dict, n: str) -> str:
    return BASELINE_NAMES.get(product["baseline"][n]["setting"], product["baseline"][n]["setting"])


def _threads_name(n: str) -> str:
    return "1 thread" if n == "1" else f"{n} threads"


def _ordered(records: List[dict]) -> List[dict]:
    return sorted(records, key=lambda r: (FAMILIES.index(r["family"]), records.index(r)))


def _metric_cell(record: dict, product: dict) -> str:
    if record["metric"] is None:
        return ""
    delta = record["metric"] - product["exact_metric"]
    return f"{record['metric']:.4f} ({delta:+.4f})"


def _bytes(n: float) -> str:
    return f"{n / 1024:.0f} KiB" if n >= 10 * 1024 else f"{n:.0f} B"


# ---------------------------------------------------------------------------- terminal
def terminal_table(result: dict) -> str:
    """A plain-text table per product (what `python -m lutmul.bench` prints)."""
    threads = [str(n) for n in result["thread_counts"]]
    groups = analysis.by_product(result["measurements"])
    lines = []
    for product in result["products"]:
        records = _ordered(groups.get(product["key"], []))
        lines.append(f"\n{product['title']}  (K={product['K']}, M={product['M']}, {product['timed_rows']} rows timed, "
                     f"{product['test_rows']} held out)")
        head = f"{'setting':<28}{'error':>8}{product['metric_name'] or '':>18}{'bytes':>10}"
        for n in threads:
            head += f"{'us/' + n + 't':>10}{'x' + n + 't':>8}"
        lines.append(head)
        lines.append("-" * len(head))
        for r in records:
            row = f"{r['label'][:27]:<28}{r['error']:>8.4f}{_metric_cell(r, product):>18}{_bytes(r['bytes']):>10}"
            for n in threads:
                mark = "*" if r["frontier"][n] else " "
                row += f"{r['seconds'][n] * 1e6:>10.0f}{r['speedup'][n]:>7.2f}{mark}"
            lines.append(row)
    lines.append("\n* on the speed/accuracy frontier at that thread count; x: speed-up over the fastest exact product")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- plots
def write_plots(result: dict, folder: Path) -> Dict[str, Path]:
    """One PNG per product: relative error against speed-up, a panel per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    threads = [str(n) for n in result["thread_counts"]]
    groups = analysis.by_product(result["measurements"])
    paths = {}
    for product in result["products"]:
        records = groups.get(product["key"], [])
        if not records:
            continue
        fig, axes = plt.subplots(1, len(threads), figsize=(5.2 * len(threads), 4.2), squeeze=False)
        for ax, n in zip(axes[0], threads):
            for family in FAMILIES:
                members = [r for r in records if r["family"] == family]
                if not members:
                    continue
                colour, marker = STYLE[family]
                ax.scatter([r["speedup"][n] for r in members], [r["error"] for r in members], c=colour, marker=marker,
                           s=90 if family == "exact" else 36, label=FAMILY_NAMES[family], zorder=3)
                if family != "exact":
                    for r in members:
                        ax.annotate(short_label(r), (r["speedup"][n], r["error"]), fontsize=7, xytext=(3, 3),
                                    textcoords="offset points")
            ax.annotate(f"exact baseline\n({_baseline(product, n)})", (1.0, 0.0), fontsize=7,
                        xytext=(4, 10), textcoords="offset points")
            edge = analysis.frontier(records, n)
            xs = [r["speedup"][n] for r in edge]
            ys = [r["error"] for r in edge]
            ax.step(xs, ys, where="post", color="grey", linestyle="--", linewidth=0.8, zorder=1, label="frontier")
            ax.axvline(1.0, color="grey", linewidth=0.5)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(f"speed-up over the fastest exact product ({_threads_name(n)})")
            ax.set_ylabel("relative error (held-out rows)")
            ax.set_ylim(bottom=-0.02)
            ax.grid(True, which="both", alpha=0.25)
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=7, frameon=False)
        fig.suptitle(f"{product['title']} (K={product['K']}, M={product['M']}, N={product['timed_rows']})", fontsize=10)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        path = folder / f"{product['key'].replace('.', '_')}.png"
        fig.savefig(path, dpi=72)
        plt.close(fig)
        paths[product["key"]] = path
    return paths


# ---------------------------------------------------------------------------- Markdown
def _machine_lines(m: dict) -> List[str]:
    lines = [f"- CPU: {m['cpu']}, {m['threads_available']} threads available ({m['logical_cpus']} logical CPUs); "
             f"{m['platform']}",
             f"- lutmul {m['lutmul']} kernels: `{m['lutmul_isa']}`; Python {m['python']}, numpy {m['numpy']}, "
             f"scikit-learn {m['scikit_learn']}",
             f"- OPENBLAS_CORETYPE: `{m['openblas_coretype']}`"]
    for lib in m["blas_libraries"]:
        if lib["internal_api"] == "openblas":
            lines.append(f"- BLAS: `{os.path.basename(lib['filepath'])}` {lib['version']}, kernel "
                         f"`{lib['architecture']}`, {lib['threading_layer']} threads")
    return lines


def _frontier_text(records: List[dict], n: str) -> str:
    edge = analysis.frontier(records, n)
    return ", ".join(f"{r['label']} ({r['speedup'][n]:.2f}x, {r['error']:.3f})" for r in edge)


def markdown(result: dict, plots: Dict[str, Path], folder: Path) -> str:
    """The report; image links are relative to ``folder`` (where the Markdown file goes)."""
    threads = [str(n) for n in result["thread_counts"]]
    groups = analysis.by_product(result["measurements"])
    all_n = threads[-1]
    out = [f"# lutmul: speed against accuracy on real products ({result['mode']} run)", "",
           f"Produced by `{result['command']}` on {result['started']} in {result['elapsed_seconds']:.0f} s.", "",
           "## Machine", ""]
    out += _machine_lines(result["machine"])
    out += ["", "## How it is measured", "",
            "- Relative error `||Y - Ŷ||_F / ||Y||_F` (bias included) on held-out rows, never the rows an operator "
            "learned from; `Y` is computed in float64. The task metric is computed with the operator in place.",
            f"- Time per product: the median of {result['repeats']} samples, each calling the operator for about "
            f"{result['sample_seconds'] * 1e3:.0f} ms on the timed rows (row-major float32 X, as a layer receives it, "
            "output written into a preallocated array). Each setting runs untimed first (caches warm, other thread "
            "pools asleep), then gives its samples; settings run in a random order"
            + (", and a second pass in the reverse order" if result["passes"] > 1 else "") + ". Everything untimed "
            "(training, errors, task metrics) runs on one thread.",
            f"- Speed-up: the fastest exact product of the same run and thread count divided by the setting's time, "
            f"at 1 thread and at {all_n} threads (lutmul's threads, both BLAS libraries' threads). The exact candidates "
            "are numpy's `matmul` (the OpenBLAS bundled with numpy) and `lutmul.DenseLinear` (the system OpenBLAS).",
            "- Bytes: what each operator keeps for inference (weights, tables, scales, bias); for MADDNESS the 8-bit "
            "tables and the encoder's split columns and thresholds.",
            "- PQ is a numpy implementation (k-means encoder by a BLAS product and argmin, float tables gathered by numpy), "
            "not a SIMD kernel: its times are what the algorithm costs in numpy.",
            "- MADDNESS, PQ, Wanda pruning, static int8 and data-aware low-rank learn from the product's training rows.",
            "- Frontier: settings that no other setting beats on both speed and error at that thread count."]
    busy = [p for p in result["products"] if (p["load_average"]["after"] or 0) > result["machine"]["threads_available"]]
    if busy:
        out.append(f"- The machine was shared and busy (one-minute load average above its "
                   f"{result['machine']['threads_available']} CPUs during {len(busy)} of {len(result['products'])} "
                   "products, listed under each): all-thread figures then measure the scheduler as much as the "
                   "operators, since every parallel region waits for a core someone else holds.")
    if result["families_missing"]:
        out.append("- Not measured, because this lutmul does not have them yet: " + "; ".join(result["families_missing"]) + ".")
    for skipped in result["skipped_products"]:
        out.append(f"- Skipped product `{skipped['key']}`: {skipped['reason']}")

    out += ["", "## Summary", "",
            "| product | K x M | exact baseline | frontier, 1 thread | frontier, " + _threads_name(all_n) + " |",
            "|---|---|---|---|---|"]
    for product in result["products"]:
        records = groups.get(product["key"], [])
        base = " / ".join(_baseline(product, n) for n in threads)
        out.append(f"| {product['title']} | {product['K']} x {product['M']} | {base} | "
                   f"{_frontier_text(records, '1')} | {_frontier_text(records, all_n)} |")
    out += ["", "Frontier entries read: setting (speed-up, relative error), fastest first."]

    for product in result["products"]:
        records = _ordered(groups.get(product["key"], []))
        out += ["", f"## {product['title']}", "",
                f"{product['source']}. K = {product['K']}, M = {product['M']}; {product['train_rows']} training rows, "
                f"{product['test_rows']} held-out rows, {product['timed_rows']} rows timed."]
        if product["metric_name"]:
            out.append(f"Task metric: {product['metric_name']}, exact {product['exact_metric']:.4f}.")
        for n in threads:
            out.append(f"Exact baseline at {_threads_name(n)}: {_baseline(product, n)}, "
                       f"{product['baseline'][n]['seconds'] * 1e6:.0f} µs.")
        load = product["load_average"]
        if load["before"] is not None:
            out.append(f"One-minute load average {load['before']:.1f} before and {load['after']:.1f} after.")
        head = "| setting | rel. error |"
        if product["metric_name"]:
            head += f" {product['metric_name']} (change) |"
        head += " bytes (of dense) |"
        for n in threads:
            head += f" {_threads_name(n)} µs | speed-up |"
        head += " frontier |"
        out += ["", head, "|" + "---|" * (head.count("|") - 1)]
        for r in records:
            row = f"| {r['label']} | {r['error']:.4f} |"
            if product["metric_name"]:
                row += f" {_metric_cell(r, product)} |"
            row += f" {_bytes(r['bytes'])} ({r['bytes_ratio']:.2f}) |"
            for n in threads:
                row += f" {r['seconds'][n] * 1e6:.0f} | {r['speedup'][n]:.2f}x |"
            row += " " + ", ".join(_threads_name(n) for n in threads if r["frontier"][n]) + " |"
            out.append(row)
        for skipped in product["skipped_settings"]:
            out.append(f"\nNot built: `{skipped['setting']}` ({skipped['reason']}).")
        if product["key"] in plots:
            link = Path(os.path.relpath(plots[product["key"]], folder)).as_posix()
            out += ["", f"![{product['title']}: error against speed-up]({link})"]
        out.append("")
        for n in threads:
            out.append(f"- Frontier at {_threads_name(n)}: {_frontier_text(records, n)}.")
        for n in threads:
            verdicts = analysis.maddness_verdicts(records, n)
            if verdicts:
                out.append(f"- MADDNESS at {_threads_name(n)}: " + " ".join(verdicts))
        trend = analysis.maddness_trend(records)
        if trend:
            out.append("- " + trend)
    return "\n".join(out) + "\n"


def summary_line(result: dict, markdown_path: Optional[Path] = None) -> str:
    n = len(result["measurements"])
    return (f"{n} measurements on {len(result['products'])} products in {result['elapsed_seconds']:.0f} s"
            + (f"; report: {markdown_path}" if markdown_path else ""))
