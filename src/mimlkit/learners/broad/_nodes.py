"""Shared machinery of the broad learners: global (bag-level) features, BLS node maps,
ridge solves and row-block iteration.

The node maps follow the reference BLS of Chen & Liu (TNNLS 2018; spec ``bmiml.md`` §1.2):

* input scaling (per-feature standardisation by default; ``'bls'`` = per-row z-score) and a
  constant bias column of 0.1;
* ``n_windows`` feature windows of ``n_nodes_per_window`` linear nodes, each window's random
  weight refined by a sparse auto-encoder (lasso solved by ADMM, ``sparse_bls``) and its output
  min–max scaled per column to [0, 1] with training statistics;
* enhancement nodes ``tansig(s · [Z, 0.1] W_h / max)`` with orthonormal ``W_h`` and one global
  shrink scalar computed on the calibration data (seed 000, Eqs. 1–2).

Every map is frozen by a *calibration* pass; afterwards nodes are computed block by block, so
the design matrix ``A`` is never materialised for large data (``conventions.md`` §6c).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import scipy.linalg

from mimlkit.bags import Bags

__all__ = [
    "POOLINGS", "compute_global_features", "sparse_bls", "orthonormal", "tribas",
    "ridge_solve", "loo_lambda", "row_blocks", "BroadNodesMixin",
]

POOLINGS = ("meanmax", "mean", "max", "concat")
_BIAS = 0.1  # the reference BLS appends a constant 0.1 column


# ----------------------------------------------------------------------------- global view
def compute_global_features(bags: Bags, pooling: str | Callable = "meanmax") -> np.ndarray:
    """Bag-level ("global view") vectors, one row per bag.

    ``'meanmax'`` (default): mean- and max-pooled instance features concatenated (2d columns);
    when every bag holds exactly one instance the instance itself is returned (d columns).
    ``'mean'`` / ``'max'``: one pooling. ``'concat'``: instances concatenated in order (all bags
    must have the same size). A callable receives the ``Bags`` and returns an (n_bags, D) array.
    """
    if callable(pooling):
        G = np.asarray(pooling(bags))
        if G.ndim != 2 or G.shape[0] != bags.n_bags:
            raise ValueError(f"pooling callable returned shape {G.shape}, expected "
                             f"({bags.n_bags}, D)")
        return G
    if pooling == "meanmax":
        if np.all(bags.sizes == 1):
            return np.asarray(bags.instances)
        return np.hstack([bags.pool("mean"), bags.pool("max")])
    if pooling in ("mean", "max"):
        return bags.pool(pooling)
    if pooling == "concat":
        sizes = bags.sizes
        if np.any(sizes != sizes[0]):
            bad = int(np.flatnonzero(sizes != sizes[0])[0])
            raise ValueError(f"pooling='concat' needs equal bag sizes; bag {bad} has "
                             f"{sizes[bad]} instances, bag 0 has {sizes[0]}")
        return np.asarray(bags.instances).reshape(bags.n_bags, -1)
    raise ValueError(f"pooling must be one of {POOLINGS} or a callable, got {pooling!r}")


# ----------------------------------------------------------------------------- primitives
def tribas(x: np.ndarray) -> np.ndarray:
    """Triangular basis ``max(0, 1 - |x|)`` (MATLAB ``tribas``; spec §1.3)."""
    return np.maximum(0.0, 1.0 - np.abs(x))


def orthonormal(M: np.ndarray) -> np.ndarray:
    """Orthonormal columns when M is tall, orthonormal rows when M is wide (the reference
    BLS's ``orth`` rule for the enhancement weights); QR instead of SVD."""
    r, c = M.shape
    if r >= c:
        q, _ = np.linalg.qr(M)
        return q
    q, _ = np.linalg.qr(M.T)
    return q.T


def sparse_bls(A: np.ndarray, B: np.ndarray, lam: float = 1e-3, n_iter: int = 50) -> np.ndarray:
    """Lasso ``min_X ½‖A X − B‖² + lam‖X‖₁`` by ADMM with ρ = 1 (the reference ``sparse_bls``).

    Returns X of shape (A.shape[1], B.shape[1]). The normal equations are factorised once
    (Cholesky of ``AᵀA + I``); no explicit inverse.
    """
    AtA = A.T @ A
    AtA[np.diag_indices_from(AtA)] += 1.0
    fac = scipy.linalg.cho_factor(AtA, check_finite=False)
    L2 = scipy.linalg.cho_solve(fac, A.T @ B, check_finite=False)
    o = np.zeros_like(L2)
    u = np.zeros_like(L2)
    for _ in range(int(n_iter)):
        c = L2 + scipy.linalg.cho_solve(fac, o - u, check_finite=False)
        v = c + u
        o = np.sign(v) * np.maximum(np.abs(v) - lam, 0.0)
        u += c - o
    return o


def ridge_solve(G: np.ndarray, R: np.ndarray, lam: float) -> np.ndarray:
    """Solve ``(G + lam·I) W = R`` for symmetric positive semi-definite G (float64).

    Cholesky first; if that fails (G numerically indefinite and lam tiny) fall back to
    ``scipy.linalg.solve(assume_a='sym')``, then to least squares. Never forms an inverse.
    """
    M = np.array(G, dtype=np.float64, copy=True)
    M[np.diag_indices_from(M)] += lam
    R = np.asarray(R, dtype=np.float64)
    try:
        fac = scipy.linalg.cho_factor(M, check_finite=False, overwrite_a=False)
        return scipy.linalg.cho_solve(fac, R, check_finite=False)
    except np.linalg.LinAlgError:
        try:
            return scipy.linalg.solve(M, R, assume_a="sym", check_finite=False)
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgWarning):
            return scipy.linalg.lstsq(M, R, check_finite=False)[0]


def loo_lambda(G: np.ndarray, R: np.ndarray,
               blocks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]],
               grid: np.ndarray | None = None) -> float:
    """Ridge λ with the smallest exact leave-one-out (PRESS) error, streamed over row blocks.

    ``G = AᵀA`` and ``R = AᵀT`` are the Gram statistics a block pass accumulates anyway;
    ``blocks()`` yields ``(A_block, T_block)`` again (one more pass, A never held whole).
    With ``G = VΛVᵀ``, ``P = A V`` and ``Q = VᵀR``: fitted values ``F(λ) = P diag(1/(Λ+λ)) Q``,
    hat diagonal ``h(λ) = (P∘P)(1/(Λ+λ))`` and LOO residuals ``(T − F)/(1 − h)`` (Allen's
    PRESS). Summed over the outputs. Unlike GCV this stays reliable when the nodes outnumber
    the rows. Default grid: the mean eigenvalue times 10^-6 … 10^2 (17 values).
    """
    lam_eig, V = np.linalg.eigh(np.asarray(G, dtype=np.float64))
    lam_eig = np.clip(lam_eig, 0.0, None)
    Q = V.T @ np.asarray(R, dtype=np.float64)
    if grid is None:
        grid = max(float(lam_eig.mean()), 1e-12) * np.logspace(-6, 2, 17)
    grid = np.asarray(grid, dtype=np.float64)
    press = np.zeros(len(grid))
    for A, T in blocks():
        P = np.asarray(A, dtype=np.float64) @ V
        P2 = P * P
        T = np.asarray(T, dtype=np.float64)
        for i, lam in enumerate(grid):
            inv = 1.0 / (lam_eig + lam)
            F = P @ (Q * inv[:, None])
            h = np.minimum(P2 @ inv, 1.0 - 1e-9)
            press[i] += float((((T - F) / (1.0 - h)[:, None]) ** 2).sum())
    return float(grid[int(np.argmin(press))])


def row_blocks(n: int, block_size: int) -> Iterator[slice]:
    """Consecutive row slices of at most ``block_size`` rows."""
    b = max(1, int(block_size))
    for s in range(0, n, b):
        yield slice(s, min(n, s + b))


def as_float_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype!r}")
    return dt


# ----------------------------------------------------------------------------- node maps
def resolve_enhancement(spec: int | str, n_rows: int) -> int:
    """N3, the enhancement nodes: an int as given; ``"auto"`` = the calibration rows (training
    bags) clipped to [100, 1000] — no more random nodes than bags to fit them on."""
    if isinstance(spec, str):
        if spec != "auto":
            raise ValueError(f"n_enhancement must be an int >= 0 or 'auto', got {spec!r}")
        return int(np.clip(n_rows, 100, 1000))
    return int(spec)


class BroadNodesMixin:
    """Calibration and block-wise evaluation of the BLS node maps.

    Uses the estimator parameters ``n_nodes_per_window``, ``n_windows``, ``n_enhancement``,
    ``shrink``, ``sparse_refine``, ``sparse_lambda``, ``sparse_iter``, ``input_scaling``,
    ``feature_activation`` and ``dtype``. Fitted attributes (all numpy arrays / floats):
    ``n_enhancement_`` (N3 resolved), ``input_mean_``, ``input_scale_``, ``window_weights_``
    ((D+1) x N1·N2, the refined β of all windows side by side), ``window_min_``,
    ``window_range_``, ``enhancement_weights_``, ``enhancement_scale_``. Subclasses extend
    ``_extra_calibrate`` / ``_extra_nodes``.
    """

    # -- global view -----------------------------------------------------------------
    def _global_view(self, bags: Bags, global_features: Any, *, reset: bool) -> np.ndarray:
        if global_features is None:
            if not reset and getattr(self, "global_source_", "pooled") == "user":
                raise ValueError(f"{type(self).__name__} was fitted with user-supplied "
                                 "global_features; pass global_features= here too")
            G = compute_global_features(bags, getattr(self, "pooling", "meanmax"))
            source = "pooled"
        else:
            if hasattr(global_features, "toarray"):
                global_features = global_features.toarray()
            G = np.asarray(global_features)
            if G.ndim != 2 or G.shape[0] != bags.n_bags:
                raise ValueError(f"global_features must have shape (n_bags={bags.n_bags}, D), "
                                 f"got {G.shape}")
            if not np.all(np.isfinite(G)):
                row = int(np.flatnonzero(~np.isfinite(G).all(axis=1))[0])
                raise ValueError(f"global_features row {row} (bag {row}) holds NaN or inf")
            source = "user"
        G = np.asarray(G, dtype=as_float_dtype(getattr(self, "dtype", "float64")))
        if reset:
            self.global_source_ = source
            self.n_global_features_ = G.shape[1]
        elif G.shape[1] != self.n_global_features_:
            raise ValueError(f"global features have {G.shape[1]} columns, the model was "
                             f"fitted with {self.n_global_features_}")
        return G

    # -- calibration -------------------------------------------------------------------
    def _scale_input(self, X: np.ndarray) -> np.ndarray:
        if self.input_scaling == "bls":
            mu = X.mean(axis=1, keepdims=True)
            sd = X.std(axis=1, ddof=1, keepdims=True) if X.shape[1] > 1 else np.ones_like(mu)
            sd[sd == 0] = 1.0
            return (X - mu) / sd
        if self.input_scaling == "standard":
            return (X - self.input_mean_) / self.input_scale_
        if self.input_scaling == "none":
            return X
        raise ValueError(f"input_scaling must be 'standard', 'bls' or 'none', "
                         f"got {self.input_scaling!r}")

    @staticmethod
    def _with_bias(X: np.ndarray) -> np.ndarray:
        return np.hstack([X, np.full((X.shape[0], 1), _BIAS, dtype=X.dtype)])

    def _calibrate_nodes(self, X: np.ndarray, rng: np.random.Generator) -> None:
        """Draw and freeze every random map from the calibration rows ``X`` (raw global
        features)."""
        dt = as_float_dtype(self.dtype)
        X = np.asarray(X, dtype=np.float64)
        N1, N2 = int(self.n_nodes_per_window), int(self.n_windows)
        # "auto" counts the bags the model is fitted on (a streaming fit calibrates on a
        # sample and says how many bags follow: ``_calibration_rows_hint``)
        N3 = resolve_enhancement(self.n_enhancement,
                                 getattr(self, "_calibration_rows_hint", None) or len(X))
        if min(N1, N2) < 1 or N3 < 0:
            raise ValueError("n_nodes_per_window and n_windows must be >= 1, n_enhancement >= 0")
        self.n_enhancement_ = N3
        mu = X.mean(axis=0)
        sd = X.std(axis=0)
        sd[sd == 0] = 1.0
        self.input_mean_, self.input_scale_ = mu, sd
        H1 = self._with_bias(self._scale_input(X))
        betas = []
        for _ in range(N2):
            we = rng.uniform(-1.0, 1.0, size=(H1.shape[1], N1))
            if self.sparse_refine:
                A1 = H1 @ we
                lo = A1.min(axis=1, keepdims=True)  # mapminmax: each row to [-1, 1]
                rg = A1.max(axis=1, keepdims=True) - lo
                rg[rg == 0] = 1.0
                A1 = 2.0 * (A1 - lo) / rg - 1.0
                beta = sparse_bls(A1, H1, self.sparse_lambda, self.sparse_iter).T
            else:
                beta = we
            betas.append(beta)
        Wz = np.hstack(betas)  # (D+1) x N1·N2
        T1 = H1 @ Wz
        lo = T1.min(axis=0)
        rg = T1.max(axis=0) - lo
        rg[rg == 0] = 1.0
        self.window_weights_ = Wz.astype(dt)
        self.window_min_, self.window_range_ = lo.astype(dt), rg.astype(dt)
        Z = self._activate_features((T1 - lo) / rg)
        if N3 > 0:
            Wh = orthonormal(2.0 * rng.uniform(size=(N1 * N2 + 1, N3)) - 1.0)
            # max / max-abs of the enhancement pre-activations, block by block (an n x N3
            # matrix would be the largest allocation of the whole fit)
            top, bottom = -np.inf, np.inf
            for sl in row_blocks(len(Z), self._rows_per_block()):
                T2 = self._with_bias(Z[sl]) @ Wh
                top, bottom = max(top, float(T2.max())), min(bottom, float(T2.min()))
            if top <= 0:
                top = max(abs(top), abs(bottom)) or 1.0
            self.enhancement_weights_ = Wh.astype(dt)
            self.enhancement_scale_ = float(self.shrink) / top
        else:
            self.enhancement_weights_ = np.zeros((N1 * N2 + 1, 0), dtype=dt)
            self.enhancement_scale_ = 1.0
        self._extra_calibrate(X, H1, Z, rng)

    def _rows_per_block(self) -> int:
        """Rows per block: ``block_size``, capped by ``memory_budget_mb`` when the learner has
        one (about ``8 * (D + 3 * #nodes)`` bytes of temporaries per row)."""
        block = int(getattr(self, "block_size", 8192))
        budget = getattr(self, "memory_budget_mb", None)
        if budget is None:
            return max(1, block)
        if budget <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {budget}")
        d = self.window_weights_.shape[0]
        n3 = getattr(self, "n_enhancement_", None)
        if n3 is None:  # a model saved before ``n_enhancement_`` existed
            n3 = self.enhancement_weights_.shape[1]
        p = self.window_weights_.shape[1] + int(n3)
        per_row = 8 * (d + 3 * p)
        return max(1, min(block, int(budget * 2**20 // per_row)))

    def _activate_features(self, Z: np.ndarray) -> np.ndarray:
        act = getattr(self, "feature_activation", "linear")
        if act == "linear":
            return Z
        if act == "sigmoid":
            return 1.0 / (1.0 + np.exp(-Z))
        raise ValueError(f"feature_activation must be 'linear' or 'sigmoid', got {act!r}")

    def _extra_calibrate(self, X, H1, Z, rng) -> None:  # pragma: no cover - hook
        return None

    # -- evaluation --------------------------------------------------------------------
    def _node_block(self, X: np.ndarray) -> np.ndarray:
        """Design-matrix rows ``A`` for raw global features ``X`` (one block)."""
        dt = self.window_weights_.dtype
        Xs = self._scale_input(np.asarray(X, dtype=dt)).astype(dt, copy=False)
        H1 = self._with_bias(Xs)
        Z = (H1 @ self.window_weights_ - self.window_min_) / self.window_range_
        Z = self._activate_features(Z).astype(dt, copy=False)
        H = np.tanh(self.enhancement_scale_ * (self._with_bias(Z) @ self.enhancement_weights_))
        return self._assemble(Xs, Z, H.astype(dt, copy=False))

    def _assemble(self, Xs: np.ndarray, Z: np.ndarray, H: np.ndarray) -> np.ndarray:
        return np.hstack([Z, H])

    @property
    def n_nodes_(self) -> int:
        """Number of columns of the design matrix A."""
        return int(self.coef_.shape[0])
