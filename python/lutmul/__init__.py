"""lutmul: fast approximate matrix multiplication with learned table lookups (MADDNESS).

Quick start::

    import numpy as np, lutmul
    model = lutmul.Maddness(ncodebooks=16).fit(A_train, B)   # A_train: (n, D), B: (D, M)
    Y = model(A)                                            # ≈ A @ B, float32 (N, M)
    model.save("layer.lutmul"); same = lutmul.load("layer.lutmul")

Arrays: float32 arrays in C or Fortran order (or with a unit stride along one axis) are
read in place, without copies. Other float or integer dtypes, and other strides, are
converted once to float32 (a copy). Complex, object, boolean and string arrays raise
``TypeError``. Wrong shapes, NaN or infinite values and empty arrays raise ``ValueError``
naming the shapes. Heavy calls release the GIL; one fitted model may be used from several
Python threads at once.
"""

from __future__ import annotations

import os
from typing import Callable, Optional, Sequence, Union

import numpy as np

from . import _core
from ._core import LutmulError

__all__ = ["Maddness", "DenseLinear", "Int8Linear", "SparseLinear", "ChannelPrunedLinear", "MaddnessLinear",
           "prune_globally", "load_operator", "load", "isa", "supported_isas", "set_isa", "set_num_threads", "num_threads", "LutmulError"]
__version__ = "0.2.0"

PathLike = Union[str, "os.PathLike[str]"]


def isa() -> str:
    """The SIMD kernel level in use ("scalar", "avx2", "avx512", "avx512vbmi" or "neon").

    Chosen from the CPU at first use; the environment variable ``LUTMUL_ISA`` forces one.
    """
    return _core.isa()


def supported_isas() -> list:
    """Every kernel level this CPU and build can run, best last."""
    return list(_core.supported_isas())


def set_isa(name: str) -> None:
    """Forces a kernel level for this process; ``ValueError`` if the CPU lacks it."""
    _core.set_isa(name)


def set_num_threads(n: int) -> None:
    """Sets how many threads lutmul's own loops use (``n >= 1``)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    _core.set_num_threads(int(n))


def num_threads() -> int:
    """The thread count lutmul uses."""
    return _core.num_threads()


def _as_matrix(x, name: str) -> np.ndarray:
    """A 2-D float32 array usable in place, converting once when it must."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {x.shape}")
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    s0, s1 = x.strides
    row_major_ok = (s1 == 4 or x.shape[1] <= 1) and s0 % 4 == 0 and s0 // 4 >= x.shape[1]
    col_major_ok = (s0 == 4 or x.shape[0] <= 1) and s1 % 4 == 0 and s1 // 4 >= x.shape[0]
    if not (row_major_ok or col_major_ok):
        x = np.ascontiguousarray(x)
    return x


def _check_finite(x: np.ndarray, name: str) -> None:
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise ValueError(f"{name} of shape {x.shape} has a non-finite value at {tuple(int(i) for i in bad)}")


def _as_bias(bias, m: int) -> Optional[np.ndarray]:
    """A contiguous float32 (m,) vector with finite values, or None."""
    if bias is None:
        return None
    bias = np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
    if bias.shape != (m,):
        raise ValueError(f"bias must have shape ({m},), got {bias.shape}")
    _check_finite(bias[None, :], "bias")
    return bias


class Maddness:
    """MADDNESS approximate matrix product ``A @ B (+ bias)`` with B known ahead of time.

    Each row of A is hashed by ``ncodebooks`` learned 4-level trees into 4-bit codes; each
    output is the sum of ``ncodebooks`` 8-bit table entries built from B. More codebooks:
    lower error, more time. Each codebook reads 4 columns of A, so ``ncodebooks <= D``.

    Parameters
    ----------
    ncodebooks : int
        C, the number of codebooks (1 <= C <= D).
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

    def __init__(self, ncodebooks: int = 16, *, split_candidates: int = 4, ridge: bool = True,
                 ridge_lambdas: Optional[Sequence[float]] = None, heldout_fraction: float = 0.2, seed: int = 0,
                 accumulation: str = "exact", float_tables: bool = False):
        if accumulation not in ("exact", "averaged"):
            raise ValueError(f"accumulation must be 'exact' or 'averaged', got {accumulation!r}")
        self._settings = dict(ncodebooks=int(ncodebooks), split_candidates=int(split_candidates), ridge=bool(ridge),
                              ridge_lambdas=[float(v) for v in (ridge_lambdas or [])],
                              heldout_fraction=float(heldout_fraction), seed=int(seed),
                              averaged=accumulation == "averaged", float_tables=bool(float_tables))
        self._core = _core.Maddness(**self._settings)

    # ---- training ----
    def fit(self, A_train, B, bias=None, *, progress: Union[bool, Callable[[str, int, int], None]] = False) -> "Maddness":
        """Learns the encoder from sample rows ``A_train`` (n, D) and builds tables for ``B`` (D, M).

        ``bias`` (M,) is added to every output row. ``progress=True`` shows a tqdm bar
        (if tqdm is installed); a callable receives ``(stage, done, total)``. Returns self.
        """
        A_train = _as_matrix(A_train, "A_train")
        B = _as_matrix(B, "B")
        if A_train.size == 0:
            raise ValueError(f"A_train is empty (shape {A_train.shape})")
        if B.shape[0] != A_train.shape[1]:
            raise ValueError(f"B must have as many rows as A_train has columns: A_train is {A_train.shape}, B is {B.shape}")
        if B.size == 0:
            raise ValueError(f"B is empty (shape {B.shape})")
        _check_finite(A_train, "A_train")
        _check_finite(B, "B")
        bias = self._bias(bias, B.shape[1])
        callback, bar = _progress_callback(progress)
        try:
            self._core.fit(A_train, B, bias, callback)
        finally:
            if bar is not None:
                bar.close()
        return self

    def fit_encoder(self, A_train, *, progress: Union[bool, Callable[[str, int, int], None]] = False) -> "Maddness":
        """Learns the encoder alone; attach weights with :meth:`set_weights` (any number of times)."""
        A_train = _as_matrix(A_train, "A_train")
        if A_train.size == 0:
            raise ValueError(f"A_train is empty (shape {A_train.shape})")
        _check_finite(A_train, "A_train")
        callback, bar = _progress_callback(progress)
        try:
            self._core.fit_encoder(A_train, callback)
        finally:
            if bar is not None:
                bar.close()
        return self

    def set_weights(self, B, bias=None) -> "Maddness":
        """Builds lookup tables for weights ``B`` (D, M) and optional ``bias`` (M,). Returns self."""
        B = _as_matrix(B, "B")
        if B.size == 0:
            raise ValueError(f"B is empty (shape {B.shape})")
        if self._core.encoder_fitted and B.shape[0] != self._core.input_dim:
            raise ValueError(f"B must have D = {self._core.input_dim} rows, got shape {B.shape}")
        _check_finite(B, "B")
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
        """The 4-bit code of every row in every codebook: uint8 (N, C), values 0..15."""
        if not self._core.encoder_fitted:
            raise ValueError("the encoder is not fitted (call fit or fit_encoder first)")
        return self._core.encode(self._input(A))

    def scan(self, codes) -> np.ndarray:
        """Outputs from codes made by :meth:`encode`: float32 (N, M)."""
        self._require_weights()
        codes = np.ascontiguousarray(codes, dtype=np.uint8)
        if codes.ndim != 2 or codes.shape[1] != self.ncodebooks:
            raise ValueError(f"codes must have shape (N, {self.ncodebooks}), got {codes.shape}")
        if codes.size and codes.max() > 15:
            raise ValueError("codes must be in 0..15")
        out = np.empty((codes.shape[0], self._core.output_dim), dtype=np.float32)
        self._core.scan(codes, out)
        return out

    # ---- settings and learned state ----
    @property
    def accumulation(self) -> str:
        """'exact' or 'averaged' (settable)."""
        return "averaged" if self._core.averaged else "exact"

    @accumulation.setter
    def accumulation(self, mode: str) -> None:
        if mode not in ("exact", "averaged"):
            raise ValueError(f"accumulation must be 'exact' or 'averaged', got {mode!r}")
        self._core.set_accumulation(mode == "averaged")

    @property
    def float_tables_mode(self) -> bool:
        """True when float tables are used instead of 8-bit ones (settable)."""
        return self._core.float_tables_mode

    @float_tables_mode.setter
    def float_tables_mode(self, on: bool) -> None:
        self._core.set_float_tables(bool(on))

    @property
    def ncodebooks(self) -> int:
        return self._core.ncodebooks

    @property
    def input_dim(self) -> int:
        """D (0 before fitting)."""
        return self._core.input_dim

    @property
    def output_dim(self) -> int:
        """M (0 before weights are set)."""
        return self._core.output_dim

    @property
    def split_dims(self) -> np.ndarray:
        """int32 (C, 4): the column of A each tree level reads."""
        return self._core.split_dims()

    @property
    def prototypes(self) -> np.ndarray:
        """Read-only float32 view (C, 16, D) of the prototypes."""
        return self._core.prototypes_view()

    @property
    def tables(self) -> np.ndarray:
        """Read-only float32 view (M, C, 16) of the unquantised tables."""
        self._require_weights()
        return self._core.float_tables_view()

    @property
    def quantized_tables(self) -> np.ndarray:
        """Read-only uint8 view (M, ceil(C/2), 32) of the 8-bit tables, as the scan reads them."""
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

    @property
    def ridge_lambda(self) -> float:
        """The ridge strength fit chose (multiples of the mean bucket size; inf: bucket means)."""
        return self._core.chosen_ridge_lambda

    # ---- persistence ----
    def save(self, path: PathLike) -> None:
        """Writes the model to ``path`` atomically (versioned format with a checksum)."""
        self._core.save(os.fspath(path))

    def __getstate__(self):
        return {"settings": self._settings, "model": self._core.serialize() if self._core.encoder_fitted else None}

    def __setstate__(self, state):
        self._settings = state["settings"]
        self._core = _core.Maddness.deserialize(state["model"]) if state["model"] is not None else _core.Maddness(**self._settings)

    def __repr__(self) -> str:
        state = f"D={self.input_dim}, M={self.output_dim}" if self._core.encoder_fitted else "unfitted"
        return f"lutmul.Maddness(ncodebooks={self.ncodebooks}, {state}, isa={isa()!r})"

    # ---- helpers ----
    @staticmethod
    def _bias(bias, m: int) -> Optional[np.ndarray]:
        return _as_bias(bias, m)

    def _require_weights(self) -> None:
        if not self._core.has_weights:
            raise ValueError("the model has no weights (call fit or set_weights first)")

    def _input(self, A) -> np.ndarray:
        A = _as_matrix(A, "A")
        if A.shape[1] != self._core.input_dim:
            raise ValueError(f"A must have D = {self._core.input_dim} columns, got shape {A.shape}")
        return A


def load(path: PathLike) -> Maddness:
    """Reads a model written by :meth:`Maddness.save`; ``ValueError`` for a damaged or foreign file."""
    model = Maddness.__new__(Maddness)
    model._core = _core.Maddness.load(os.fspath(path))
    model._settings = dict(ncodebooks=model._core.ncodebooks, split_candidates=4, ridge=True, ridge_lambdas=[],
                           heldout_fraction=0.2, seed=0, averaged=model._core.averaged,
                           float_tables=model._core.float_tables_mode)
    return model


from .operators import (  # noqa: E402  (operators use _as_matrix above)
    ChannelPrunedLinear, DenseLinear, Int8Linear, MaddnessLinear, SparseLinear, load_operator, prune_globally)
from .lowrank import LoraLinear, LowRankLinear, peft_modules, read_safetensors  # noqa: E402

__all__ += ["LowRankLinear", "LoraLinear", "read_safetensors", "peft_modules"]


def _progress_callback(progress):
    """(callback for the C++ fit, tqdm bar to close or None)."""
    if callable(progress):
        return progress, None
    if not progress:
        return None, None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are optional
        return None, None
    bar = tqdm(total=0, desc="lutmul fit", unit="step")
    current = {"stage": None}

    def update(stage: str, done: int, total: int) -> None:
        if current["stage"] != stage:
            current["stage"] = stage
            bar.reset(total=total)
            bar.set_description(f"lutmul fit: {stage}", refresh=False)
        bar.n = done
        bar.refresh()

    return update, bar
