"""lutmul: fast approximate matrix multiplication with learned table lookups (MADDNESS).

Quick start::

    import numpy as np, lutmul
    model = lutmul.Maddness(ncodebooks=16).fit(A_train, B)   # A_train: (n, D), B: (D, M)
    Y = model(A)                                            # ≈ A @ B, float32 (N, M)
    model.save("layer.lutmul"); same = lutmul.load("layer.lutmul")

Operators (``Y = X @ W + bias``) are built one way, ``Kind.from_dense(W, bias, ...)``, or by
kind name with ``lutmul.build("int8", W, bias, ...)``; ``lutmul.load`` reads every file
lutmul writes. ``lutmul.runtime.load_encoder(path)`` runs a BERT sentence encoder whose linear
layers are these operators (the ``runtime`` extra; command line: ``lutmul embed``, ``lutmul info``).

Arrays: float32 arrays in C or Fortran order (or with a unit stride along one axis) are
read in place, without copies. Other float or integer dtypes, and other strides, are
converted once to float32 (a copy). Complex, object, boolean and string arrays raise
``TypeError``. Wrong shapes, NaN or infinite values and empty arrays raise ``ValueError``
naming the shapes. Heavy calls release the GIL; one fitted model may be used from several
Python threads at once.
"""

from ._core import (
    Accumulation, ActivationScaling, ChannelPruningConfig, Int8Backend, Int8Config, LowRankConfig, LutmulError,
    MaddnessConfig, PrototypeMethod, PrunedChannels, RankRule, SparseConfig, TableMode)
from ._version import __version__
from .builder import build, kinds
from .channel_pruned import ChannelPrunedLinear
from .cpu import exact_product_backend, isa, num_threads, set_isa, set_num_threads, supported_isas
from .bf16 import Bf16Linear
from .dense import DenseLinear
from .int8 import Int8Linear
from .io import load, load_operator, peft_modules, read_safetensors
from .lora import LoraLinear
from .lowrank import LowRankLinear
from .maddness import Maddness, MaddnessLinear
from .operator import Operator
from .sparse import Sparse24Linear, SparseLinear, prune_globally

__all__ = [
    # MADDNESS, the model
    "Maddness",
    # operators, one class per kind, and the builder
    "Operator", "DenseLinear", "Bf16Linear", "Int8Linear", "SparseLinear", "Sparse24Linear", "ChannelPrunedLinear",
    "MaddnessLinear", "LowRankLinear", "LoraLinear", "prune_globally", "build", "kinds",
    # the C++ settings, as the C++ structs and enums
    "MaddnessConfig", "Accumulation", "PrototypeMethod", "TableMode", "Int8Config", "ActivationScaling", "Int8Backend",
    "SparseConfig", "ChannelPruningConfig", "PrunedChannels", "LowRankConfig", "RankRule",
    # files
    "load", "load_operator", "read_safetensors", "peft_modules",
    # kernels and threads
    "isa", "supported_isas", "set_isa", "set_num_threads", "num_threads", "exact_product_backend",
    "LutmulError", "__version__",
]
