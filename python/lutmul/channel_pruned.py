"""Structured pruning: whole channels removed, a smaller dense product left."""

from __future__ import annotations

from typing import Union

from . import _core
from ._arrays import as_bias, as_matrix
from .operator import Operator

_CHANNELS = {"outputs": _core.PrunedChannels.outputs, "inputs": _core.PrunedChannels.inputs}


class ChannelPrunedLinear(Operator, kind="channel_pruned"):
    """Structured pruning: whole output (or input) channels with the smallest L2 norms removed,
    leaving a smaller dense product. Pruned outputs are their bias alone.
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, fraction: float = 0.5,
                   channels: Union[str, _core.PrunedChannels] = "outputs") -> "ChannelPrunedLinear":
        """``fraction`` of the ``channels`` ("outputs" or "inputs") removed."""
        if not isinstance(channels, _core.PrunedChannels):
            if channels not in _CHANNELS:
                raise ValueError(f"channels must be 'outputs' or 'inputs', got {channels!r}")
            channels = _CHANNELS[channels]
        W = as_matrix(W, "W")
        config = _core.ChannelPruningConfig(fraction=float(fraction), channels=channels)
        return cls._from_core(_core.ChannelPrunedLinear(W, as_bias(bias, W.shape[1]), config))

    @property
    def kept_inputs(self) -> list:
        return list(self._core.kept_inputs)

    @property
    def kept_outputs(self) -> list:
        return list(self._core.kept_outputs)
