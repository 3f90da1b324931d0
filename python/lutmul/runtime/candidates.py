"""What the model compiler may put in a linear layer's place: each candidate is an operator
kind with its settings, built from the layer's weights and the rows it reads."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..builder import build
from ..operator import Operator, kinds, operator_class


@dataclass(frozen=True)
class Candidate:
    """An operator kind (one of :func:`lutmul.kinds`) and the settings of its ``from_dense``.
    ``rank_fraction`` (low-rank only) gives the rank as a share of min(K, M), so one candidate
    fits every layer shape."""

    kind: str
    params: Tuple[Tuple[str, object], ...] = field(default=())
    rank_fraction: Optional[float] = None

    @property
    def label(self) -> str:
        settings = dict(self.params)
        if self.rank_fraction is not None:
            settings["rank"] = f"{self.rank_fraction:g}·min(K,M)"
        return self.kind + ("(" + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())) + ")" if settings else "")

    def settings(self, k: int, m: int) -> Dict[str, object]:
        """The keyword arguments of ``from_dense`` for a K × M layer."""
        settings = dict(self.params)
        if self.rank_fraction is not None:
            settings["rank"] = max(1, int(round(self.rank_fraction * min(k, m))))
        return settings

    def build(self, W: np.ndarray, bias: np.ndarray, calibration: np.ndarray, seed: int) -> Operator:
        settings = self.settings(*W.shape)
        accepted = inspect.signature(operator_class(self.kind).from_dense).parameters
        if "seed" in accepted:
            settings.setdefault("seed", seed)
        return build(self.kind, W, bias, calibration if "calibration" in accepted else None, **settings)


EXACT = Candidate("dense")


def default_candidates() -> List[Candidate]:
    """Every operator family at a few settings (docs/compile.md explains the choice)."""
    return [
        Candidate("bf16"),
        Candidate("int8", (("activations", "dynamic"),)),
        Candidate("int8", (("activations", "dynamic"), ("smoothing", 0.6))),
        Candidate("int8", (("activations", "static"), ("percentile", 99.99), ("smoothing", 0.6))),
        Candidate("low_rank", (("data_aware", True),), rank_fraction=0.5),
        Candidate("low_rank", (("data_aware", True),), rank_fraction=0.25),
        Candidate("sparse", (("sparsity", 0.5),)),
        Candidate("sparse", (("sparsity", 0.75),)),
        Candidate("sparse24"),
        Candidate("channel_pruned", (("fraction", 0.25),)),
        Candidate("maddness", (("ncodebooks", 16),)),
        Candidate("maddness", (("ncodebooks", 32),)),
        Candidate("maddness", (("ncodebooks", 64),)),
    ]


def as_candidates(candidates: Optional[Sequence]) -> List[Candidate]:
    """The compiler's candidate list: the defaults for None; else Candidate objects or kind
    names (each with its default settings). The exact layer is always a choice and is left out."""
    if candidates is None:
        return default_candidates()
    if isinstance(candidates, (str, bytes)) or not hasattr(candidates, "__iter__"):
        raise TypeError("candidates must be a list of lutmul.runtime.Candidate or kind names, or None")
    out = []
    for item in candidates:
        if isinstance(item, str):
            item = Candidate(item)
        if not isinstance(item, Candidate):
            raise TypeError(f"a candidate must be a lutmul.runtime.Candidate or a kind name, got {type(item).__name__}")
        if item.kind not in ("dense", "lora") and item not in out:
            out.append(item)
    unknown = sorted({c.kind for c in out} - set(kinds()))
    if unknown:
        raise ValueError(f"unknown operator kinds {unknown}; the kinds are {', '.join(kinds())}")
    if not out:
        raise ValueError("candidates names no operator to choose besides the exact one (dense and lora are not "
                         "candidates)")
    return out
