"""The service's metrics in Prometheus' text exposition format (version 0.0.4), kept by hand:
a few counters, gauges and one histogram need no client library."""

from __future__ import annotations

import bisect
from typing import Callable, Dict, List, Sequence, Tuple

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(labels: Tuple[Tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    escaped = (value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') for _, value in labels)
    return "{" + ",".join(f'{name}="{value}"' for (name, _), value in zip(labels, escaped)) + "}"


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Counters (by label set), gauges read when scraped, one latency histogram."""

    def __init__(self, prefix: str = "lutmul"):
        self.prefix = prefix
        self._counters: Dict[str, Tuple[str, Dict[Tuple, float]]] = {}
        self._gauges: Dict[str, Tuple[str, Callable[[], float]]] = {}
        self._buckets: Sequence[float] = LATENCY_BUCKETS
        self._bucket_counts: List[int] = [0] * len(LATENCY_BUCKETS)
        self._latency_sum = 0.0
        self._latency_count = 0

    def counter(self, name: str, help: str) -> None:
        self._counters[name] = (help, {})

    def gauge(self, name: str, help: str, read: Callable[[], float]) -> None:
        self._gauges[name] = (help, read)

    def add(self, name: str, amount: float = 1, **labels: str) -> None:
        values = self._counters[name][1]
        key = tuple(sorted(labels.items()))
        values[key] = values.get(key, 0) + amount

    def value(self, name: str, **labels: str) -> float:
        return self._counters[name][1].get(tuple(sorted(labels.items())), 0)

    def observe_latency(self, seconds: float) -> None:
        index = bisect.bisect_left(self._buckets, seconds)
        if index < len(self._bucket_counts):
            self._bucket_counts[index] += 1
        self._latency_sum += seconds
        self._latency_count += 1

    def render(self) -> str:
        lines = []
        for name, (help, values) in self._counters.items():
            full = f"{self.prefix}_{name}"
            lines += [f"# HELP {full} {help}", f"# TYPE {full} counter"]
            lines += [f"{full}{_labels(key)} {_number(value)}" for key, value in sorted(values.items())] or \
                [f"{full} 0"]
        for name, (help, read) in self._gauges.items():
            full = f"{self.prefix}_{name}"
            lines += [f"# HELP {full} {help}", f"# TYPE {full} gauge", f"{full} {_number(read())}"]
        full = f"{self.prefix}_request_seconds"
        lines += [f"# HELP {full} Time from a request's arrival to its answer, every status.",
                  f"# TYPE {full} histogram"]
        cumulative = 0
        for bound, count in zip(self._buckets, self._bucket_counts):
            cumulative += count
            lines.append(f'{full}_bucket{{le="{_number(bound)}"}} {cumulative}')
        lines.append(f'{full}_bucket{{le="+Inf"}} {self._latency_count}')
        lines.append(f"{full}_sum {_number(self._latency_sum)}")
        lines.append(f"{full}_count {self._latency_count}")
        return "\n".join(lines) + "\n"
