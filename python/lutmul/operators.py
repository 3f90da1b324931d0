"""Where lutmul 0.2 kept its operators; each now has its own module (lutmul.dense,
lutmul.int8, lutmul.sparse, ...) and is re-exported by the package. Importing from here still
works for one release, with a ``DeprecationWarning``.
"""

from __future__ import annotations

import warnings

from . import channel_pruned, dense, int8, io, maddness, operator, sparse

_MOVED = {"DenseLinear": dense, "Int8Linear": int8, "SparseLinear": sparse, "prune_globally": sparse,
          "ChannelPrunedLinear": channel_pruned, "MaddnessLinear": maddness, "load_operator": io}


def _from_bytes(data: bytes):
    """What 0.2 pickles of operators call to rebuild them (kept so that they still load)."""
    return operator.from_bytes(data)


def __getattr__(name: str):
    if name in _MOVED:
        warnings.warn(f"lutmul.operators.{name} is deprecated and will be removed in the next release; use "
                      f"lutmul.{name}", DeprecationWarning, stacklevel=2)
        return getattr(_MOVED[name], name)
    raise AttributeError(f"module 'lutmul.operators' has no attribute {name!r}")
