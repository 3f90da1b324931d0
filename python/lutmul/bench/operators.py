"""The operator settings the harness builds for each product, one family at a time.

A setting knows how to build itself from a product's weights and training rows; what it
builds has ``forward(X, out)`` and a byte count. lutmul's operators are built by
``lutmul.build(kind, W, b, calibration, **params)``, the settings' ``params`` passed as they
are recorded. Kinds the installed lutmul lacks are left out, never faked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np

import lutmul

from .pq import ProductQuantizer
from .products import Product


@dataclass
class Built:
    """A ready operator: ``forward(X, out=None)`` returns ``X @ W + b`` (approximately)."""

    forward: Callable[..., np.ndarray]
    bytes: int
    info: Dict[str, object] = field(default_factory=dict)


@dataclass
class Setting:
    key: str
    family: str
    label: str
    params: Dict[str, object]
    implementation: str
    build: Callable[[Product], Built]


# Families in the order tables and plots list them.
FAMILIES = ("exact", "bf16", "maddness", "pq", "int8", "lowrank", "pruned", "2:4", "channels")
FAMILY_NAMES = {"exact": "exact", "bf16": "bfloat16", "maddness": "MADDNESS", "pq": "product quantisation", "int8": "int8",
                "lowrank": "low-rank", "pruned": "unstructured pruning", "2:4": "2:4 pruning",
                "channels": "channel pruning"}


def maddness_bytes(model: lutmul.Maddness) -> int:
    """Bytes MADDNESS keeps for inference: the 8-bit tables (M·ceil(C/2)·32 with 16 leaves,
    M·C·64 with 64), per codebook a split column (int32) per level, K - 1 thresholds and a
    table offset (float32), one scale, M biases."""
    c, m, k = model.ncodebooks, model.output_dim, model.leaves
    depth = 6 if k == 64 else 4
    return int(model.quantized_tables.nbytes + c * (depth * 4 + (k - 1) * 4 + 4) + 4 + m * 4)


def _lutmul(kind: str, calibrated: bool = False, **params) -> Callable[[Product], Built]:
    """Builds operator ``kind`` with ``params`` (and the training rows as calibration)."""

    def build(p: Product) -> Built:
        op = lutmul.build(kind, p.W, p.bias, calibration=p.X_train if calibrated else None, **params)
        return Built(forward=op.forward, bytes=int(op.bytes))

    return build


def _numpy_exact(p: Product) -> Built:
    w, b = p.W, p.bias

    def forward(x, out=None):
        out = np.matmul(x, w, out=out)
        out += b
        return out

    return Built(forward=forward, bytes=int(w.nbytes + b.nbytes))


def _maddness(c: int, leaves: int = 16) -> Callable[[Product], Built]:
    def build(p: Product) -> Built:
        model = lutmul.Maddness(ncodebooks=c, leaves=leaves).fit(p.X_train, p.W, p.bias)
        # What the 8-bit tables cost: the same model with float tables, on the held-out rows.
        model.float_tables_mode = True
        exact = p.exact_test()
        float_error = float(np.linalg.norm(exact - model(p.X_test)) / np.linalg.norm(exact))
        model.float_tables_mode = False
        return Built(forward=model.matmul, bytes=maddness_bytes(model),
                     info={"ridge_lambda": model.ridge_lambda, "error_float_tables": float_error})

    return build


def _pq(c: int) -> Callable[[Product], Built]:
    def build(p: Product) -> Built:
        pq = ProductQuantizer(c).fit(p.X_train, p.W, p.bias)
        return Built(forward=pq.forward, bytes=pq.bytes)

    return build


def has_lowrank() -> bool:
    return "low_rank" in lutmul.kinds()


def has_two_four() -> bool:
    return "sparse24" in lutmul.kinds()


def settings_for(product: Product, quick: bool) -> List[Setting]:
    """Every setting measured on ``product``: fewer in quick mode."""
    k, m = product.shape
    native = f"lutmul C++ ({lutmul.isa()})"
    backend = lutmul.exact_product_backend()
    # The faster of the two exact settings is every ratio's baseline (harness.py).
    out = [
        Setting("exact/numpy", "exact", "exact (numpy)", {}, "numpy matmul, its bundled OpenBLAS", _numpy_exact),
        Setting("exact/dense", "exact", "exact (lutmul.DenseLinear)", {},
                f"lutmul DenseLinear, {backend['library']} {backend['version']} ({backend['isa']})", _lutmul("dense")),
    ]
    out.append(Setting("bf16", "bf16", "bfloat16 (lutmul.Bf16Linear)", {},
                       f"oneDNN {backend['version']}, {lutmul.Bf16Linear.from_dense(np.eye(16, dtype=np.float32)).path}",
                       _lutmul("bf16")))
    for c in ([4, 8, 16] if quick else [4, 8, 16, 32, 64]):
        if c <= k:
            out.append(Setting(f"maddness/C={c}", "maddness", f"MADDNESS C={c}", {"ncodebooks": c}, native, _maddness(c)))
    # 64-leaf trees (6 levels, 64-byte tables): more accuracy per codebook at more scan time.
    for c in ([] if quick else [8, 16, 32]):
        if c <= k:
            out.append(Setting(f"maddness/C={c}/K=64", "maddness", f"MADDNESS C={c} K=64", {"ncodebooks": c, "leaves": 64},
                               native, _maddness(c, leaves=64)))
    for c in ([16] if quick else [8, 16, 32]):
        if c <= k:
            out.append(Setting(f"pq/C={c}", "pq", f"PQ C={c} (numpy)", {"ncodebooks": c},
                               "numpy (k-means encoder, float tables)", _pq(c)))
    int8_probe = np.ones((k, m), dtype=np.float32)
    int8_path = lutmul.Int8Linear.from_dense(int8_probe).path
    out.append(Setting("int8/dynamic", "int8", "int8", {"activations": "dynamic"}, f"lutmul C++: {int8_path}",
                       _lutmul("int8", activations="dynamic")))
    # oneDNN's u8·s8 product beside the own kernels where the automatic choice is not already
    # it (it is where the CPU has AMX): the same bits, another speed.
    try:
        onednn_path = lutmul.Int8Linear.from_dense(int8_probe, backend="onednn").path
    except ValueError:  # no exact oneDNN int8 product on this CPU
        onednn_path = None
    if onednn_path is not None and not int8_path.startswith("oneDNN"):
        out.append(Setting("int8/dynamic/onednn", "int8", "int8 (oneDNN)", {"activations": "dynamic", "backend": "onednn"},
                           onednn_path, _lutmul("int8", activations="dynamic", backend="onednn")))
    if not quick:
        out.append(Setting("int8/static", "int8", "int8 static (p99.9)", {"activations": "static", "percentile": 99.9},
                           native, _lutmul("int8", calibrated=True, activations="static", percentile=99.9)))
    if has_lowrank():
        fractions = [1 / 8, 1 / 4] if quick else [1 / 16, 1 / 8, 1 / 4, 1 / 2]
        for rank in sorted({max(1, int(round(min(k, m) * f))) for f in fractions}):
            out.append(Setting(f"lowrank/r={rank}", "lowrank", f"low-rank r={rank}", {"rank": rank}, native,
                               _lutmul("low_rank", rank=rank)))
            if not quick:  # whitened by the training rows' second moment: error judged on X @ W
                out.append(Setting(f"lowrank/r={rank}/calibrated", "lowrank", f"low-rank r={rank} (data-aware)",
                                   {"rank": rank, "calibrated": True}, native,
                                   _lutmul("low_rank", calibrated=True, rank=rank, data_aware=True)))
    for sparsity in ([0.5, 0.9] if quick else [0.5, 0.75, 0.9, 0.95]):
        out.append(Setting(f"pruned/{sparsity:g}", "pruned", f"pruned {sparsity:.0%} (Wanda)",
                           {"sparsity": sparsity, "calibrated": True}, native,
                           _lutmul("sparse", calibrated=True, sparsity=sparsity)))
    if not quick:
        out.append(Setting("pruned/0.5/magnitude", "pruned", "pruned 50% (magnitude)", {"sparsity": 0.5}, native,
                           _lutmul("sparse", sparsity=0.5)))
    if has_two_four():
        out.append(Setting("2:4", "2:4", "pruned 2:4", {"pattern": "2:4"}, native, _lutmul("sparse24")))
    for fraction, channels in ([(0.5, "inputs")] if quick else [(0.25, "inputs"), (0.5, "inputs"), (0.25, "outputs")]):
        out.append(Setting(f"channels/{channels}/{fraction:g}", "channels", f"{fraction:.0%} of {channels} pruned",
                           {"fraction": fraction, "channels": channels}, native,
                           _lutmul("channel_pruned", fraction=fraction, channels=channels)))
    return out


def families_missing() -> List[str]:
    """Operator families this lutmul does not have yet (named in the report)."""
    missing = []
    if not has_lowrank():
        missing.append("low-rank (lutmul.LowRankLinear)")
    if not has_two_four():
        missing.append("2:4 pruning (lutmul.Sparse24Linear)")
    return missing


def find(settings: List[Setting], key: str) -> Optional[Setting]:
    return next((s for s in settings if s.key == key), None)
