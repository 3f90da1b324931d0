"""The run: build the products, build and measure every operator setting on each, write the
record, the report and the plots."""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from . import analysis, report
from .operators import families_missing, settings_for
from .products import MinilmSetup, Product, digits, minilm_layers
from .timing import all_threads, load_thread_pools, machine, median, threads, timed_samples

FORMAT_VERSION = 1


@dataclass
class Config:
    quick: bool = False
    out: Path = Path("lutmul-bench")
    markdown: Optional[Path] = None  # where report.md goes (default: inside `out`)
    products: Optional[Sequence[str]] = None  # key prefixes to run ("digits", "minilm.0"); None: all
    families: Optional[Sequence[str]] = None  # operator families to measure besides exact; None: all
    repeats: Optional[int] = None
    seed: int = 0
    progress: bool = True
    command: List[str] = field(default_factory=lambda: list(sys.argv))

    @property
    def repeat_count(self) -> int:
        return self.repeats if self.repeats is not None else (5 if self.quick else 9)

    @property
    def sample_seconds(self) -> float:
        """Each timed sample calls the operator for about this long."""
        return 0.005 if self.quick else 0.03

    @property
    def passes(self) -> int:
        return 1 if self.quick else 2

    def settle_seconds(self, threads: int) -> float:
        """Time an operator runs untimed before its samples (longer with several threads, see timing)."""
        return (0.15 if self.quick else 0.25) if threads > 1 else (0.02 if self.quick else 0.1)

    def minilm(self) -> MinilmSetup:
        if not self.quick:
            return MinilmSetup()
        return MinilmSetup(train_sentences=400, test_sentences=96, metric_sentences=32, max_train_rows=8000,
                           layers=((0, "query"), (0, "ffn_in"), (5, "attn_out"), (5, "ffn_out")))

    def wants(self, key: str) -> bool:
        return self.products is None or any(key == p or key.startswith(p + ".") or p.startswith(key + ".")
                                            for p in self.products)


class _Progress:
    """A tqdm bar over the run's steps whose total grows as the steps become known."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=0, unit="step", file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.total += n
            self.bar.refresh()

    def step(self, what: str) -> None:
        if self.bar is not None:
            self.bar.set_description_str(what[:60], refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _build_products(config: Config, progress: _Progress) -> tuple:
    products: List[Product] = []
    skipped: List[Dict[str, str]] = []
    if config.wants("digits"):
        progress.add(1)
        progress.step("digits: train the classifier")
        products.append(digits())
    setup = config.minilm()
    setup.layers = tuple(key for key in setup.layers if config.wants(f"minilm.{key[0]}.{key[1]}"))
    if setup.layers:
        progress.add(3)
        try:
            products.extend(minilm_layers(setup, step=progress.step, seed=config.seed))
        except ImportError as error:
            skipped.append({"key": "minilm", "reason": str(error)})
    return products, skipped


def _measure(product: Product, config: Config, thread_counts: List[int], progress: _Progress) -> tuple:
    settings = [s for s in settings_for(product, config.quick)
                if config.families is None or s.family == "exact" or s.family in config.families]
    progress.add(len(settings) + len(thread_counts))
    exact = product.exact_test()
    exact_norm = float(np.linalg.norm(exact))
    exact_metric = product.metric(lambda x: x @ product.W + product.bias) if product.metric else None
    records, built, skipped = [], {}, []
    load_before = _load_average()
    for setting in settings:
        progress.step(f"{product.key}: {setting.label}")
        start = time.perf_counter()
        try:
            op = setting.build(product)
        except (ValueError, TypeError) as error:  # an operator this lutmul cannot build here
            skipped.append({"setting": setting.key, "reason": f"{type(error).__name__}: {error}"})
            continue
        build_seconds = time.perf_counter() - start
        y = op.forward(product.X_test)
        built[setting.key] = op
        records.append({
            "product": product.key, "setting": setting.key, "family": setting.family, "label": setting.label,
            "params": setting.params, "implementation": setting.implementation,
            "error": float(np.linalg.norm(exact - y) / exact_norm),
            "metric": product.metric(op.forward) if product.metric else None,
            "bytes": op.bytes, "build_seconds": build_seconds, "info": op.info,
            "seconds": {}, "samples": {}, "speedup": {}, "frontier": {},
        })
    out = np.empty((product.X_time.shape[0], product.W.shape[1]), dtype=np.float32)  # shared: calls run one by one
    baselines = {}
    for n in thread_counts:
        progress.step(f"{product.key}: timing on {n} thread{'s' if n > 1 else ''}")
        calls = {key: (lambda op=op: op.forward(product.X_time, out)) for key, op in built.items()}
        with threads(n):
            samples = timed_samples(calls, config.repeat_count, config.sample_seconds, config.settle_seconds(n),
                                    config.passes, seed=config.seed + n)
        for record in records:
            record["samples"][str(n)] = samples[record["setting"]]
            record["seconds"][str(n)] = median(samples[record["setting"]])
        fastest = min((r for r in records if r["family"] == "exact"), key=lambda r: r["seconds"][str(n)])
        baselines[str(n)] = {"setting": fastest["setting"], "seconds": fastest["seconds"][str(n)]}
        for record in records:
            record["speedup"][str(n)] = baselines[str(n)]["seconds"] / record["seconds"][str(n)]
    dense_bytes = int(product.W.nbytes + product.bias.nbytes)
    for record in records:
        record["bytes_ratio"] = record["bytes"] / dense_bytes
    k, m = product.shape
    summary = {
        "key": product.key, "title": product.title, "source": product.source, "K": k, "M": m,
        "train_rows": int(product.X_train.shape[0]), "test_rows": int(product.X_test.shape[0]),
        "timed_rows": int(product.X_time.shape[0]), "metric_name": product.metric_name,
        "exact_metric": exact_metric, "baseline": baselines, "dense_bytes": dense_bytes,
        "skipped_settings": skipped, "info": product.info,
        "load_average": {"before": load_before, "after": _load_average()},
    }
    return summary, records


def _load_average() -> Optional[float]:
    """The one-minute load average (None where the OS has none): other work on the machine."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def run(config: Config) -> dict:
    """Runs the whole harness and writes ``results.json``, ``report.md`` and the plots."""
    started = time.time()
    progress = _Progress(config.progress)
    thread_counts = sorted({1, all_threads()})
    load_thread_pools()
    try:
        with threads(1):  # everything untimed runs on one thread (see timing)
            products, skipped_products = _build_products(config, progress)
            summaries, measurements = [], []
            for product in products:
                summary, records = _measure(product, config, thread_counts, progress)
                summaries.append(summary)
                measurements.extend(records)
    finally:
        progress.close()
    analysis.mark_frontiers(measurements, thread_counts)
    result = {
        "format": FORMAT_VERSION,
        "mode": "quick" if config.quick else "full",
        "command": " ".join(config.command),
        "started": datetime.datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "elapsed_seconds": time.time() - started,
        "machine": machine(),
        "thread_counts": thread_counts,
        "repeats": config.repeat_count,
        "sample_seconds": config.sample_seconds,
        "passes": config.passes,
        "settle_seconds": {str(n): config.settle_seconds(n) for n in thread_counts},
        "families_missing": families_missing(),
        "skipped_products": skipped_products,
        "products": summaries,
        "measurements": measurements,
    }
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "results.json").write_text(json.dumps(result, indent=1))
    render(result, config.out, config.markdown)
    return result


def render(result: dict, out: Path, markdown: Optional[Path] = None) -> Path:
    """Writes the plots into ``out`` and the report to ``markdown`` (default ``out/report.md``)."""
    markdown = markdown or out / "report.md"
    plots = report.write_plots(result, out)
    markdown.write_text(report.markdown(result, plots, markdown.parent))
    return markdown
