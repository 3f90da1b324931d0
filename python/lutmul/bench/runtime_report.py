"""What the runtime benchmark shows: the terminal table, ``runtime_report.md`` and
``runtime_speed.png`` (sentences/s per engine at each thread count, ratios to lutmul's exact
runtime, or to ONNX Runtime fp32 where lutmul's runtime was not measured)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

from .report import _machine_lines


def _threads_name(n: str) -> str:
    return "1 thread" if n == "1" else f"{n} threads"


def baseline_key(result: dict) -> Optional[str]:
    """The engine the ratios are taken against."""
    keys = [e["key"] for e in result["engines"]]
    return next((k for k in ("lutmul", "ort-fp32") if k in keys), keys[0] if keys else None)


def ratios(result: dict, n: str) -> dict:
    """Each engine's sentences/s over the baseline's, at ``n`` threads."""
    base = next(e for e in result["engines"] if e["key"] == baseline_key(result))["sentences_per_second"][n]
    return {e["key"]: e["sentences_per_second"][n] / base for e in result["engines"]}


def bars(result: dict) -> List[str]:
    """Issue 15's speed bars for lutmul's exact runtime (and issue 18's for its bf16 precision), each
    with its measured value and verdict."""
    engines = {e["key"]: e for e in result["engines"]}
    if "lutmul" not in engines:
        return []
    lutmul = engines["lutmul"]
    lines = []

    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    for n in map(str, result["thread_counts"]):
        rate = lutmul["sentences_per_second"][n]
        for key, bar in (("ort-fp32", 1.3), ("openvino-f32", 1.0), ("numpy", 3.0)):
            if key in engines:
                ratio = rate / engines[key]["sentences_per_second"][n]
                lines.append(f"{_threads_name(n)}: sentences/s >= {bar:.1f}x {engines[key]['title']}: {ratio:.2f}x, "
                             f"{verdict(ratio >= bar)}")
        peers = [engines[k]["sentences_per_second"][n] for k in ("ort-fp32", "openvino-f32") if k in engines]
        if peers:
            ratio = rate / max(peers)
            lines.append(f"{_threads_name(n)}: goal 1.3x the faster of ONNX Runtime fp32 and OpenVINO f32: {ratio:.2f}x, "
                         f"{verdict(ratio >= 1.3)}")
        if "ort-fp32" in engines:
            ours, theirs = lutmul["latency_seconds"][n], engines["ort-fp32"]["latency_seconds"][n]
            lines.append(f"{_threads_name(n)}: batch-1 latency <= ONNX Runtime fp32's: {ours * 1e3:.2f} ms against "
                         f"{theirs * 1e3:.2f} ms, {verdict(ours <= theirs)}")
        if "lutmul-bf16" in engines and "openvino-default" in engines:  # issue 18's bar for precision bf16
            bf16 = engines["lutmul-bf16"]
            ratio = bf16["sentences_per_second"][n] / engines["openvino-default"]["sentences_per_second"][n]
            cosine = bf16["accuracy"]["cosine_min"]
            lines.append(f"{_threads_name(n)}: lutmul bf16 >= 1.0x {engines['openvino-default']['title']} at cosine "
                         f">= 0.9999: {ratio:.2f}x, minimum cosine {cosine:.5f}, {verdict(ratio >= 1.0 and cosine >= 0.9999)}")
    return lines


def _batch(engine: dict, n: str) -> str:
    batching = engine["batching"][n]
    size = "own groups" if batching["batch_size"] is None else str(batching["batch_size"])
    return size + (f", {batching['hint']}" if "hint" in batching else "")


def _memory(engine: dict) -> str:
    memory = engine.get("memory")
    if not memory:
        return "not measured"
    if "error" in memory:
        return "failed"
    return f"{memory['growth'] / 2**20:.0f} MB (of {memory['rss_peak'] / 2**20:.0f})"


def terminal_table(result: dict) -> str:
    threads = [str(n) for n in result["thread_counts"]]
    base = baseline_key(result)
    head = f"{'engine':<40}" + "".join(f"{'sent/s ' + n + 't':>14}{'x' + n + 't':>7}{'batch':>8}" for n in threads)
    head += f"{'lat ms 1t':>10}{'cos mean':>10}{'cos min':>9}{'top10':>7}{'mem MB':>8}"
    lines = [head, "-" * len(head)]
    per_n = {n: ratios(result, n) for n in threads}
    for e in result["engines"]:
        row = f"{e['title'][:39]:<40}"
        for n in threads:
            size = e["batching"][n]["batch_size"]
            row += f"{e['sentences_per_second'][n]:>14.1f}{per_n[n][e['key']]:>7.2f}{'-' if size is None else size:>8}"
        memory = e.get("memory") or {}
        row += (f"{e['latency_seconds'][threads[0]] * 1e3:>10.2f}{e['accuracy']['cosine_mean']:>10.5f}"
                f"{e['accuracy']['cosine_min']:>9.4f}{e['accuracy']['top10_overlap']:>7.3f}"
                f"{(memory['growth'] / 2**20 if 'growth' in memory else float('nan')):>8.0f}")
        lines.append(row)
    lines.append(f"x: sentences/s over {base}'s at the same thread count; cos/top10 against the numpy reference; "
                 "mem: peak resident growth while embedding")
    for skipped in result["skipped_engines"]:
        lines.append(f"skipped {skipped['key']}: {skipped['reason']}")
    lines += [f"bar: {line}" for line in bars(result)]
    return "\n".join(lines)


def write_plot(result: dict, folder: Path) -> Path:
    """Sentences/s per engine, one group of bars per thread count, ratios to the baseline on top."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = [str(n) for n in result["thread_counts"]]
    engines = result["engines"]
    base = baseline_key(result)
    fig, ax = plt.subplots(figsize=(2.2 + 1.6 * len(engines), 4.2))
    width = 0.8 / len(threads)
    for j, n in enumerate(threads):
        rates = [e["sentences_per_second"][n] for e in engines]
        xs = [i + (j - (len(threads) - 1) / 2) * width for i in range(len(engines))]
        bars = ax.bar(xs, rates, width, label=_threads_name(n), color=("tab:blue", "tab:orange", "tab:green")[j % 3])
        for bar, engine in zip(bars, engines):
            ax.annotate(f"{ratios(result, n)[engine['key']]:.2f}x", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(range(len(engines)))
    ax.set_xticklabels([e["title"].replace(" (", "\n(") for e in engines], fontsize=7)
    ax.set_ylabel("sentences / s (higher is better)")
    ax.set_title(f"all-MiniLM-L6-v2, {result['sentences']['count']} real sentences; ratios to {base}", fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.25)
    fig.tight_layout()
    path = folder / "runtime_speed.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_tradeoff_plot(result: dict, folder: Path) -> Optional[Path]:
    """Sentences/s at 1 thread against embedding cosine, one point per engine: the compiled
    engines (one per budget) trace lutmul's curve, the peers sit beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = str(result["thread_counts"][0])
    engines = [e for e in result["engines"] if e["key"] != "numpy"]
    if not engines:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    compiled = sorted((e for e in engines if "compiled" in e), key=lambda e: e["accuracy"]["cosine_mean"])
    if compiled:
        ax.plot([1 - e["accuracy"]["cosine_mean"] for e in compiled], [e["sentences_per_second"][n] for e in compiled],
                "-o", color="tab:blue", label="lutmul compiled (one point per budget)")
    for e in engines:
        if "compiled" in e:
            continue
        ax.plot(1 - e["accuracy"]["cosine_mean"], e["sentences_per_second"][n], "s", label=e["title"])
    for e in engines:
        ax.annotate(e["key"], (1 - e["accuracy"]["cosine_mean"], e["sentences_per_second"][n]), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("symlog", linthresh=1e-6)
    ax.set_xlabel("1 − mean cosine to the exact embeddings (lower is better)")
    ax.set_ylabel(f"sentences / s, {_threads_name(n)} (higher is better)")
    ax.set_title("all-MiniLM-L6-v2: speed against embedding error", fontsize=9)
    ax.grid(True, alpha=0.25)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = folder / "runtime_tradeoff.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _compiled_lines(result: dict) -> List[str]:
    """Each compiled engine's plan: what every layer became and what it cost and kept."""
    from lutmul.runtime.plan import plan_table

    out = []
    for e in result["engines"]:
        if "compiled" not in e:
            continue
        c, s = e["compiled"], e["compiled"]["summary"]
        how = "reused from an earlier run" if c["reused"] else f"compiled in {c['compile_seconds']:.0f} s"
        out += ["", f"### {e['title']}", "",
                f"{s['calibration_sentences']} calibration sentences (never measured; {s['heldout_sentences']} of them "
                f"held out), {how}; held-out mean cosine {s['heldout_cosine']:.5f} against the budget "
                f"{s['min_cosine']}; {s['layers_replaced']} of {len(c['plan'])} layers replaced; timed on "
                f"{s['cpu']} ({s['isa']}) at {s['threads']} thread.", "", "```", plan_table(c["plan"]), "```"]
    return out


def markdown(result: dict, plot: Optional[Path], folder: Path, tradeoff: Optional[Path] = None) -> str:
    threads = [str(n) for n in result["thread_counts"]]
    base = baseline_key(result)
    s = result["sentences"]
    versions = result["machine"]["versions"]
    out = ["# lutmul runtime against its peers: all-MiniLM-L6-v2 sentence embeddings", "",
           f"Produced by `{result['command']}` on {result['started']} in {result['elapsed_seconds']:.0f} s.", "",
           "## Machine", ""]
    out += _machine_lines(result["machine"])
    out.append("- " + ", ".join(f"{name} {version or 'not installed'}" for name, version in versions.items()))
    flags = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
             if f in result["machine"].get("cpu_flags", [])]
    out.append(f"- CPU features the peers choose kernels by: {', '.join(flags) or 'none of AVX2, AVX-512, AMX'}")
    load = result["load_average"]
    if load["before"] is not None:
        out.append(f"- One-minute load average {load['before']:.1f} before and {load['after']:.1f} after "
                   f"({result['machine']['threads_available']} CPUs): above that, other work shared the cores.")
    out += ["", "## How it is measured", "",
            f"- {s['count']} real English sentences ({s['source']}, seed {s['seed']}), {s['tokens_mean']:.1f} tokens on "
            f"average (median {s['tokens_median']:.0f}, longest {s['tokens_max']}). Sentences in, unit-length embeddings "
            "out: tokenisation (the model's tokenizer.json, `tokenizers`) is inside every timing.",
            f"- Sentences/s: the median of {result['repeats']} passes over all the sentences, the engines in a new "
            "random order on every pass, each pass after a 16-sentence settling call.",
            f"- Batching: every padded engine sorts by token count and pads each batch to its own longest; the batch "
            f"size is chosen per engine and thread count by one pass over {s['sweep_sentences']} of the sentences per "
            "candidate, OpenVINO's performance hint (LATENCY: one request on all threads; THROUGHPUT: streams fed "
            "asynchronously) by one pass each at batch 32 before that. The numpy reference groups sentences of equal "
            "length (no padding).",
            f"- Latency: the median of at least 20 calls (about 1 s) embedding one sentence of "
            f"{result['latency_sentence']['tokens']} tokens: \"{result['latency_sentence']['text']}\" (OpenVINO with "
            "its LATENCY hint), each engine alone in a fresh process (in the measuring process the other engines' "
            "thread pools share the cores).",
            "- Memory: each engine alone in a fresh process at one thread, with its 1-thread batching: loaded, one sentence embedded "
            "(lazy set-up), peak resident set reset, then all the sentences embedded; the growth is the peak over the "
            "loaded resident set.",
            "- Accuracy: each engine's embeddings of all the sentences (1-thread pass) against the numpy reference "
            "(float32, no padding): cosine per sentence (mean, min) and the mean share of each sentence's 10 nearest "
            "neighbours (among all the sentences) that the reference shares.",
            f"- Ratios: sentences/s over `{base}`'s at the same thread count."]
    fusions = result["onnx"]["ort_fusions"]
    out.append("- ONNX graph: built by `lutmul.bench.onnx_graph` from the packaged safetensors (opset 12, exported-BERT "
               f"form), {result['onnx']['bytes']['fp32'] / 2**20:.0f} MiB; int8 by `quantize_dynamic(per_channel=True, "
               f"weight_type=QInt8)`, {result['onnx']['bytes']['int8'] / 2**20:.0f} MiB. ONNX Runtime's fused operators "
               "(ORT_ENABLE_ALL): fp32 " + ", ".join(f"{op} x{c}" for op, c in fusions["fp32"].items())
               + "; int8 " + ", ".join(f"{op} x{c}" for op, c in fusions["int8"].items()) + ".")
    for e in result["engines"]:
        if e["key"].startswith("openvino"):
            hints = "; ".join(f"{_threads_name(n)}: " + ", ".join(f"{h} {v:.0f}/s" for h, v in
                                                                  e["batching"][n]["hint_trial"].items())
                              + f" -> {e['batching'][n]['hint']}" for n in threads)
            out.append(f"- {e['title']}: runs at `{e['info'].get('precision_used')}` (requested "
                       f"{e['info']['requested_precision']}); hint trial {hints}.")
    for skipped in result["skipped_engines"]:
        out.append(f"- Not measured: `{skipped['key']}` ({skipped['reason']}).")

    head = "| engine |"
    for n in threads:
        head += f" sentences/s, {_threads_name(n)} | vs {base} | batch |"
    head += "".join(f" batch-1 latency, {_threads_name(n)} |" for n in threads)
    head += " memory growth (peak) | cosine mean | cosine min | top-10 overlap |"
    out += ["", "## Results", "", head, "|" + "---|" * (head.count("|") - 1)]
    per_n = {n: ratios(result, n) for n in threads}
    for e in result["engines"]:
        row = f"| {e['title']} |"
        for n in threads:
            row += f" {e['sentences_per_second'][n]:.1f} | {per_n[n][e['key']]:.2f}x | {_batch(e, n)} |"
        row += "".join(f" {e['latency_seconds'][n] * 1e3:.2f} ms |" for n in threads)
        a = e["accuracy"]
        row += f" {_memory(e)} | {a['cosine_mean']:.5f} | {a['cosine_min']:.4f} | {a['top10_overlap']:.3f} |"
        out.append(row)
    out += ["", "Every pass (sentences/s): " + "; ".join(
        f"{e['key']} " + " / ".join(", ".join(f"{v:.1f}" for v in e["throughput"][n]) for n in threads)
        for e in result["engines"]) + "."]
    if bars(result):
        out += ["", "## Issue 15's bars for lutmul's exact runtime", ""]
        out += [f"- {line}" for line in bars(result)]
        out.append("- The memory bar (20,000 sentences, growth over the loaded model <= 150 MB) is not this run's: "
                   f"the growth above is over {s['count']} sentences.")
    if plot is not None:
        out += ["", f"![sentences/s per engine]({Path(os.path.relpath(plot, folder)).as_posix()})"]
    compiled = _compiled_lines(result)
    if compiled:
        out += ["", "## Compiled models (lutmul.runtime.compile)"] + compiled
    if tradeoff is not None:
        out += ["", f"![speed against embedding error]({Path(os.path.relpath(tradeoff, folder)).as_posix()})"]
    return "\n".join(out) + "\n"


def write(result: dict, folder: Path, markdown_path: Optional[Path] = None) -> Path:
    """Writes the plot into ``folder`` and the report to ``markdown_path`` (default folder/runtime_report.md)."""
    markdown_path = markdown_path or folder / "runtime_report.md"
    plot = write_plot(result, folder) if result["engines"] else None
    tradeoff = write_tradeoff_plot(result, folder) if result["engines"] else None
    markdown_path.write_text(markdown(result, plot, markdown_path.parent, tradeoff))
    return markdown_path


