"""MADDNESS: approximate ``A @ B`` by learned hashing into 16 buckets and 8-bit table lookups.

:class:`Maddness` is the model with its whole API (codes, tables, ``set_weights``);
:class:`MaddnessLinear` is the same model behind the operator contract.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _core
from ._arrays import as_bias, as_matrix, check_finite
from ._delegate import core_property
from ._progress import progress_callback
from .operator import Operator

PathLike = Union[str, "os.PathLike[str]"]


def _check_accumulation(mode) -> None:
    if mode not in ("exact", "averaged"):
        raise ValueError(f"accumulation must be 'exact' or 'averaged', got {mode!r}")


def _config(settings: dict) -> _core.MaddnessConfig:
    """The C++ ``MaddnessConfig`` of a :class:`Maddness`'s settings (the keys 0.2 pickled)."""
    return _core.MaddnessConfig(
        ncodebooks=settings["ncodebooks"], leaves=settings.get("leaves", 16),  # 0.2's pickles had no leaves
        split_candidates=settings["split_candidates"],
        prototypes=_core.PrototypeMethod.ridge if settings["ridge"] else _core.PrototypeMethod.bucket_means,
        ridge_lambdas=settings["ridge_lambdas"], heldout_fraction=settings["heldout_fraction"], seed=settings["seed"],
        accumulation=_core.Accumulation.averaged if settings["averaged"] else _core.Accumulation.exact,
        tables=_core.TableMode.float32 if settings["float_tables"] else _core.TableMode.uint8)


class Maddness:
    """MADDNESS approximate matrix product ``A @ B (+ bias)`` with B known ahead of time.

    Each row of A is hashed by ``ncodebooks`` learned trees (4 levels and 16 leaves, or 6
    levels and 64) into codes; each output is the sum of ``ncodebooks`` 8-bit table entries
    built from B. More codebooks or more leaves: lower error, more time. ``ncodebooks <= D``.

    Parameters
    ----------
    ncodebooks : int
        C, the number of codebooks (1 <= C <= D).
    leaves : {16, 64}
        K, leaves per tree. 64 costs about 1.4x the scan time of 16 at the same C (AVX-512
        VBMI) and needs ``accumulation="exact"``.
    split_candidates : int
        Columns tried per tree level.
    ridge : bool
        Fit prototypes by ridge regression (λ chosen by cross-validation); False keeps the
        trees' bucket means.
    ridge_lambdas : sequence of float, optional
        Ridge strengths to try, in multiples of the mean bucket size.
    heldout_fraction : float
        λ is chosen by cross-validation over round(1 / heldout_fraction) folds (2 to 10).
    seed : int
        Seed of the fold shuffle; fits are deterministic.
    accumulation : {"exact", "averaged"}
        Exact integer sums, or sums of rounded pair averages (faster on CPUs without
        AVX-512 VBMI, slightly less accurate).
    float_tables : bool
        Use float tables and a plain loop instead of 8-bit SIMD tables (to measure what
        quantisation costs; slow).
    """

    def __init__(self, ncodebooks: int = 16, *, leaves: int = 16, split_candidates: int = 4, ridge: bool = True,
                 ridge_lambdas: Optional[Sequence[float]] = None, heldout_fraction: float = 0.2, seed: int = 0,
                 accumulation: str = "exact", float_tables: bool = False):
        _check_accumulation(accumulation)
        self._settings = dict(ncodebooks=int(ncodebooks), leaves=int(leaves), split_candidates=int(split_candidates),
                              ridge=bool(ridge),
                              ridge_lambdas=[float(v) for v in (ridge_lambdas or [])],
                              heldout_fraction=float(heldout_fraction), seed=int(seed),
                              averaged=accumulation == "averaged", float_tables=bool(float_tables))
        self._core = _core.Maddness(_config(self._settings))

    # ---- training ----
    def fit(self, A_train, B, bias=None, *, progress: Union[bool, Callable[[str, int, int], None]] = False) -> "Maddness":
        """Learns the encoder from sample rows ``A_train`` (n, D) and builds tables for ``B`` (D, M).

        ``bias`` (M,) is added to every output row. ``progress=True`` shows a tqdm bar
        (if tqdm is installed); a callable receives ``(stage, done, total)``. Returns self.
        """
        A_train = as_matrix(A_train, "A_train")
        B = as_matrix(B, "B")
        if A_train.size == 0:
            raise ValueError(f"A_train is empty (shape {A_train.shape})")
        if B.shape[0] != A_train.shape[1]:
            raise ValueError(f"B must have as many rows as A_train has columns: A_train is {A_train.shape}, B is {B.shape}")
        if B.size == 0:
            raise ValueError(f"B is empty (shape {B.shape})")
        check_finite(A_train, "A_train")
        check_finite(B, "B")
        bias = self._bias(bias, B.shape[1])
        callback, bar = progress_callback(progress)
        try:
            self._core.fit(A_train, B, bias, callback)
        finally:
            if bar is not None:
                bar.close()
        return self

    def fit_encoder(self, A_train, *, progress: Union[bool, Callable[[str, int, int], None]] = False) -> "Maddness":
        """Learns the encoder alone; attach weights with :meth:`set_weights` (any number of times)."""
        A_train = as_matrix(A_train, "A_train")
        if A_train.size == 0:
            raise ValueError(f"A_train is empty (shape {A_train.shape})")
        check_finite(A_train, "A_train")
        callback, bar = progress_callback(progress)
        try:
            self._core.fit_encoder(A_train, callback)
        finally:
            if bar is not None:
                bar.close()
        return self

    def set_weights(self, B, bias=None) -> "Maddness":
        """Builds lookup tables for weights ``B`` (D, M) and optional ``bias`` (M,). Returns self."""
        B = as_matrix(B, "B")
        if B.size == 0:
            raise ValueError(f"B is empty (shape {B.shape})")
        if self._core.encoder_fitted and B.shape[0] != self._core.input_dim:
            raise ValueError(f"B must have D = {self._core.input_dim} rows, got shape {B.shape}")
        check_finite(B, "B")
        self._core.set_weights(B, self._bias(bias, B.shape[1]))
        return self

    # ---- inference ----
    def matmul(self, A, out: Optional[np.ndarray] = None) -> np.ndarray:
        """``A @ B + bias`` approximately, for ``A`` of shape (N, D); float32 (N, M).

        ``out`` (N, M), float32, row-major, receives the result without allocation.
        """
        self._require_weights()
        A = self._input(A)
        if out is None:
            out = np.empty((A.shape[0], self._core.output_dim), dtype=np.float32)
        self._core.matmul_into(A, out)
        return out

    __call__ = matmul

    def encode(self, A) -> np.ndarray:
        """The code of every row in every codebook: uint8 (N, C), values 0..K-1."""
        if not self._core.encoder_fitted:
            raise ValueError("the encoder is not fitted (call fit or fit_encoder first)")
        return self._core.encode(self._input(A))

    def scan(self, codes) -> np.ndarray:
        """Outputs from codes made by :meth:`encode`: float32 (N, M)."""
        self._require_weights()
        codes = self._codes(codes)
        out = np.empty((codes.shape[0], self._core.output_dim), dtype=np.float32)
        self._core.scan(codes, out)
        return out

    # ---- narrow outputs ----
    def matmul_bf16(self, A) -> np.ndarray:
        """:meth:`matmul` rounded to bfloat16 (nearest even), bit for bit: uint16 (N, M) bit
        patterns, half the bytes of float32. ``(out.astype(np.uint32) << 16).view(np.float32)``
        gives the values."""
        self._require_weights()
        A = self._input(A)
        out = np.empty((A.shape[0], self._core.output_dim), dtype=np.uint16)
        self._core.matmul_bf16_into(A, out)
        return out

    def scan_sums(self, codes) -> np.ndarray:
        """The scan's integer sums for codes made by :meth:`encode`: uint16 (N, M), with
        ``float32(S) * sum_scales + sum_offsets`` equal to :meth:`scan`'s output. Needs 8-bit tables
        and at most 256 codebooks (512 with averaged accumulation)."""
        self._require_weights()
        codes = self._codes(codes)
        out = np.empty((codes.shape[0], self._core.output_dim), dtype=np.uint16)
        self._core.scan_sums_into(codes, out)
        return out

    @property
    def sum_scales(self) -> np.ndarray:
        """float32 (M,): the scale of :meth:`scan_sums` in the current accumulation mode."""
        self._require_weights()
        return self._core.sum_scales()

    @property
    def sum_offsets(self) -> np.ndarray:
        """float32 (M,): the offset of :meth:`scan_sums` (bias included)."""
        self._require_weights()
        return self._core.sum_offsets()

    # ---- settings and learned state ----
    @property
    def accumulation(self) -> str:
        """'exact' or 'averaged' (settable)."""
        return self._core.config.accumulation.name

    @accumulation.setter
    def accumulation(self, mode: str) -> None:
        _check_accumulation(mode)
        self._core.set_accumulation(_core.Accumulation.averaged if mode == "averaged" else _core.Accumulation.exact)

    @property
    def float_tables_mode(self) -> bool:
        """True when float tables are used instead of 8-bit ones (settable)."""
        return self._core.config.tables == _core.TableMode.float32

    @float_tables_mode.setter
    def float_tables_mode(self, on: bool) -> None:
        self._core.set_table_mode(_core.TableMode.float32 if on else _core.TableMode.uint8)

    config = core_property("config", "The settings as the C++ ``MaddnessConfig`` (a copy).")
    ncodebooks = core_property("ncodebooks", "C, the number of codebooks.")
    leaves = core_property("leaves", "K, the leaves per tree (16 or 64).")
    input_dim = core_property("input_dim", "D (0 before fitting).")
    output_dim = core_property("output_dim", "M (0 before weights are set).")

    @property
    def split_dims(self) -> np.ndarray:
        """int32 (C, depth): the column of A each tree level reads (depth 4 for 16 leaves, 6 for 64)."""
        return self._core.split_dims()

    @property
    def prototypes(self) -> np.ndarray:
        """Read-only float32 view (C, K, D) of the prototypes."""
        return self._core.prototypes_view()

    @property
    def tables(self) -> np.ndarray:
        """Read-only float32 view (M, C, K) of the unquantised tables."""
        self._require_weights()
        return self._core.float_tables_view()

    @property
    def quantized_tables(self) -> np.ndarray:
        """Read-only uint8 view of the 8-bit tables as the scan reads them: (M, ceil(C/2), 32) for
        16 leaves (codebook pairs), (M, C, 64) for 64."""
        self._require_weights()
        return self._core.quantized_tables_view()

    @property
    def table_scales(self) -> np.ndarray:
        """float32 (M,): output m's 8-bit tables are its float tables, less their minima, times this."""
        self._require_weights()
        return self._core.table_scales()

    @property
    def table_offsets(self) -> np.ndarray:
        """float64 (M,): the sum of output m's table minima over codebooks.

        ``Y[:, m] ≈ (Σ_c quantized[m, c, code_c]) / table_scales[m] + table_offsets[m] + bias[m]``.
        """
        self._require_weights()
        return self._core.table_offsets()

    ridge_lambda = core_property(
        "chosen_ridge_lambda", "The ridge strength fit chose (multiples of the mean bucket size; inf: bucket means).")

    # ---- persistence ----
    def save(self, path: PathLike) -> None:
        """Writes the model to ``path`` atomically (versioned format with a checksum)."""
        self._core.save(os.fspath(path))

    def __getstate__(self):
        return {"settings": self._settings, "model": self._core.serialize() if self._core.encoder_fitted else None}

    def __setstate__(self, state):
        self._settings = state["settings"]
        self._core = (_core.Maddness.deserialize(state["model"]) if state["model"] is not None
                      else _core.Maddness(_config(self._settings)))

    def __repr__(self) -> str:
        state = f"D={self.input_dim}, M={self.output_dim}" if self._core.encoder_fitted else "unfitted"
        return f"lutmul.Maddness(ncodebooks={self.ncodebooks}, leaves={self.leaves}, {state}, isa={_core.isa()!r})"

    # ---- helpers ----
    @staticmethod
    def _bias(bias, m: int) -> Optional[np.ndarray]:
        return as_bias(bias, m)

    def _require_weights(self) -> None:
        if not self._core.has_weights:
            raise ValueError("the model has no weights (call fit or set_weights first)")

    def _codes(self, codes) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.ncodebooks:
            raise ValueError(f"codes must have shape (N, {self.ncodebooks}), got {codes.shape}")
        if codes.size and codes.max() >= self.leaves:
            raise ValueError(f"codes must be in 0..{self.leaves - 1}")
        return codes

    def _input(self, A) -> np.ndarray:
        A = as_matrix(A, "A")
        if A.shape[1] != self._core.input_dim:
            raise ValueError(f"A must have D = {self._core.input_dim} columns, got shape {A.shape}")
        return A


def load_maddness(path: PathLike) -> Maddness:
    """Reads a model written by :meth:`Maddness.save`; ``ValueError`` for a damaged or foreign file."""
    model = Maddness.__new__(Maddness)
    model._core = _core.Maddness.load(os.fspath(path))
    config = model._core.config
    model._settings = dict(ncodebooks=model._core.ncodebooks, leaves=model._core.leaves, split_candidates=4, ridge=True,
                           ridge_lambdas=[],
                           heldout_fraction=0.2, seed=0, averaged=config.accumulation == _core.Accumulation.averaged,
                           float_tables=config.tables == _core.TableMode.float32)
    return model


class MaddnessLinear(Operator, kind="maddness"):
    """MADDNESS behind the operator contract: trained on ``calibration`` rows for a known W.

    For the full MADDNESS API (codes, tables, set_weights) use :class:`lutmul.Maddness`.
    """

    @classmethod
    def from_dense(cls, W, bias=None, *, calibration, ncodebooks: int = 16, leaves: int = 16, split_candidates: int = 4,
                   ridge: bool = True, ridge_lambdas: Optional[Sequence[float]] = None, heldout_fraction: float = 0.2,
                   seed: int = 0, accumulation: str = "exact") -> "MaddnessLinear":
        """Trains the encoder on ``calibration`` rows (N, D), N >= leaves, and builds tables for
        ``W`` (D, M). The settings are those of :class:`lutmul.Maddness`."""
        _check_accumulation(accumulation)
        config = _config(dict(ncodebooks=int(ncodebooks), leaves=int(leaves), split_candidates=int(split_candidates),
                              ridge=bool(ridge),
                              ridge_lambdas=[float(v) for v in (ridge_lambdas or [])],
                              heldout_fraction=float(heldout_fraction), seed=int(seed),
                              averaged=accumulation == "averaged", float_tables=False))
        W = as_matrix(W, "W")
        calibration = as_matrix(calibration, "calibration")
        return cls._from_core(_core.MaddnessLinear(W, as_bias(bias, W.shape[1]), calibration, config))

    ncodebooks = core_property("ncodebooks", "C, the number of codebooks.")
    leaves = core_property("leaves", "K, the leaves per tree (16 or 64).")
