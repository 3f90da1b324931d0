"""The bfloat16 operator: weights in bfloat16, activations rounded on the fly, float output."""

from __future__ import annotations

from . import _core
from ._arrays import as_bias, as_matrix
from ._delegate import core_property
from .operator import Operator


class Bf16Linear(Operator, kind="bf16"):
    """``X @ W + bias`` with ``W`` and ``X`` rounded to bfloat16 (8-bit mantissa), float
    accumulation and output. Half the bytes of :class:`DenseLinear`; through oneDNN about
    1.5–1.8x its speed on CPUs with AVX512-BF16, about 4x with AMX. On AVX2 CPUs lutmul's own
    product on bfloat16 weights: float speed on large batches, faster on a few rows. Elsewhere
    the same rounded values go through the float product. The same result up to summation
    order on every path. Build with :meth:`from_dense`."""

    path = core_property(
        "path", 'Which product runs: "oneDNN <implementation>", "lutmul bfloat16 panels" or the float fallback.'
    )

    @classmethod
    def from_dense(cls, W, bias=None) -> "Bf16Linear":
        """The operator for ``W`` (K, M) and ``bias`` (M,) or None; ``W`` is rounded to bfloat16."""
        W = as_matrix(W, "W")
        return cls._from_core(_core.Bf16Linear(W, as_bias(bias, W.shape[1])))
