"""int8 quantisation: int8 weights (per output channel) and int8 activations."""

from __future__ import annotations

from typing import Union

from . import _core
from ._arrays import as_bias, as_matrix, optional_matrix
from ._delegate import core_property
from .operator import Operator

_SCALING = {"dynamic": _core.ActivationScaling.dynamic_per_row, "static": _core.ActivationScaling.static_per_tensor}
_BACKENDS = {"auto": _core.Int8Backend.automatic, "own": _core.Int8Backend.own_kernels,
             "onednn": _core.Int8Backend.onednn}


def int8_config(activations: Union[str, _core.ActivationScaling] = "dynamic", percentile: float = 100.0,
                backend: Union[str, _core.Int8Backend] = "auto", smoothing: float = 0.0) -> _core.Int8Config:
    """The C++ ``Int8Config`` for these settings (``activations``: "dynamic", "static" or an
    :class:`lutmul.ActivationScaling`; ``backend``: "auto", "own", "onednn" or an
    :class:`lutmul.Int8Backend`)."""
    if not isinstance(activations, _core.ActivationScaling):
        if activations not in _SCALING:
            raise ValueError(f"activations must be 'dynamic' or 'static', got {activations!r}")
        activations = _SCALING[activations]
    if not isinstance(backend, _core.Int8Backend):
        if backend not in _BACKENDS:
            raise ValueError(f"backend must be 'auto', 'own' or 'onednn', got {backend!r}")
        backend = _BACKENDS[backend]
    return _core.Int8Config(activations=activations, calibration_percentile=float(percentile),
                            smoothing=float(smoothing), backend=backend)


class Int8Linear(Operator, kind="int8"):
    """int8 weights (symmetric, per output channel) and int8 activations.

    Build with :meth:`from_dense`. Activations are quantized per row on the fly by default;
    ``activations="static"`` uses one scale from ``calibration`` rows (the ``percentile`` of
    ``|x|`` maps to 127; larger values saturate).

    ``smoothing`` (α in [0, 1], SmoothQuant) moves the range of outlier input channels into
    the weights: each input channel k is divided by s[k] = c[k]^α / w[k]^(1−α),
    where c[k] is the largest ``|x_k|`` over ``calibration`` and w[k] the largest weight of row
    k of W, and row k of W is multiplied by it. 0 (the default) smooths nothing; 0.5 to 0.7 suit
    transformer activations, whose few outlier channels otherwise set every row's scale.

    ``backend`` picks what computes the integer sums: ``"auto"`` (oneDNN's u8·s8 matmul where
    it runs AMX tiles, else lutmul's own kernels), ``"own"``, or ``"onednn"`` (a ``ValueError``
    where it has no exact int8 product). Every backend gives the same result bit for bit;
    :attr:`path` says which runs. Saved files do not keep the choice.
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, activations: Union[str, _core.ActivationScaling] = "dynamic",
                   calibration=None, percentile: float = 100.0,
                   backend: Union[str, _core.Int8Backend] = "auto", smoothing: float = 0.0) -> "Int8Linear":
        config = int8_config(activations, percentile, backend, smoothing)
        W = as_matrix(W, "W")
        if config.activations == _core.ActivationScaling.static_per_tensor and calibration is None:
            raise ValueError("static activation scaling needs calibration rows")
        if config.smoothing != 0 and calibration is None:
            raise ValueError("smoothing needs calibration rows")
        calibration = optional_matrix(calibration, "calibration")
        return cls._from_core(_core.Int8Linear(W, as_bias(bias, W.shape[1]), config, calibration))

    path = core_property("path", "What computes the integer sums: oneDNN's kernel for blocks of rows and the own "
                                 "kernels for the rest, or the own kernels alone and why.")

    @property
    def smoothing(self) -> float:
        """The smoothing strength α (0: none)."""
        return self._core.smoothing

    @property
    def smoothing_factors(self):
        """s[k] per input channel, a float32 array of K (all ones without smoothing)."""
        return self._core.smoothing_factors

    @property
    def static_activation_scale(self) -> float:
        """The activation scale of static scaling (0 with dynamic scaling)."""
        return self._core.static_activation_scale
