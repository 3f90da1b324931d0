"""One builder for every operator kind: ``lutmul.build(kind, W, b, calibration, **params)``."""

from __future__ import annotations

# Every family registers its kind when its module is imported; the builder serves them all.
from . import bf16, channel_pruned, dense, int8, lora, lowrank, maddness, sparse  # noqa: F401  (registration)
from .operator import Operator, build_kind, kinds


def build(kind: str, W, b=None, calibration=None, **params) -> Operator:
    """The operator of ``kind`` for weights ``W`` (K, M) and bias ``b`` (M,) or None.

    ``kind`` is one of :func:`lutmul.kinds`: "dense", "bf16", "int8", "sparse", "sparse24",
    "channel_pruned", "maddness", "low_rank" or "lora"; the kind's class's ``from_dense`` does
    the work. ``calibration`` rows (N, K) go to the kinds that use them (required by
    "maddness"); ``params`` are the keyword arguments of that ``from_dense``, e.g.
    ``build("sparse", W, b, sparsity=0.75)``, ``build("low_rank", W, b, rank=16)``,
    ``build("lora", W, b, base="int8")``.

    Raises ``ValueError`` for an unknown kind and ``TypeError`` for settings the kind does not
    take, naming them and the ones it does.
    """
    return build_kind(kind, W, b, calibration, **params)


__all__ = ["build", "kinds"]
