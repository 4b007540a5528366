"""Instance-feature scaling and ragged segment helpers shared by MIMLfast, MIMLmiSVM,
MIMLBoost and DeepMIML.

The classic MIML data (e.g. Scene: features in [-248.5, 255]) are unscaled, and the kernel
widths / norm constraints of these learners are scale dependent, so every learner here takes
``scale="auto" | "robust" | "standard" | "minmax" | None`` and stores the fitted statistics as
plain numpy arrays (``scale_offset_``, ``scale_factor_``) so that skops persistence works.

``"auto"`` (the default of the distance and instance learners) decides from the training
instances: 0/1 indicator columns (bag-of-words, one-hot) are left as they are; when the
other features have commensurate spreads (largest / smallest standard deviation <=
``COMMENSURATE_RATIO``) they keep their relative scale and are divided by one common scale
(the root-mean-square standard deviation), as the features of one descriptor (colour
moments, normalised expression levels) should be; otherwise (ranges differing by orders of
magnitude) each feature is standardised on its own. ``"robust"`` centres on the median and
divides by IQR / 1.349, falling back to the standard deviation when the IQR is 0.
A constant feature is left unscaled.
Statistics come from the training instances only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_scaling", "apply_scaling", "resolve_rbf_gamma", "segment_max", "segment_argmax",
           "gather_rows"]

_SCALES = ("auto", "robust", "standard", "minmax", None, "none")
_ROBUST_SAMPLE = 200_000  # instances used for the medians / quartiles of large data


COMMENSURATE_RATIO = 10.0


def _sample_rows(X: np.ndarray) -> np.ndarray:
    """At most ``_ROBUST_SAMPLE`` rows of X (a fixed random subset) for the statistics."""
    if X.shape[0] <= _ROBUST_SAMPLE:
        return X
    rows = np.random.default_rng(0).choice(X.shape[0], _ROBUST_SAMPLE, replace=False)
    return X[np.sort(rows)]


def _robust(Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(median, IQR / 1.349, or the standard deviation where the IQR is 0) per feature."""
    q1, med, q3 = np.percentile(Xq, [25, 50, 75], axis=0)
    spread = (q3 - q1) / 1.349
    small = spread <= 1e-12 * np.maximum(1.0, np.abs(med))
    if small.any():
        spread[small] = Xq[:, small].std(axis=0)
    return med, spread


def _auto(Xq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``"auto"`` rule of the module docstring: (offset, spread) per feature."""
    off = Xq.mean(axis=0)
    spread = Xq.std(axis=0)
    binary = ((Xq == 0) | (Xq == 1)).all(axis=0)
    off[binary] = 0.0
    spread[binary] = 1.0
    cont = ~binary & (spread > 1e-12 * np.maximum(1.0, np.abs(off)))
    if cont.any():
        s = spread[cont]
        if s.max() <= COMMENSURATE_RATIO * s.min():
            spread[cont] = np.sqrt(np.mean(s**2))
    return off, spread


def fit_scaling(X: np.ndarray, how: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(offset, factor) so that ``(X - offset) * factor`` is scaled; identity for ``None``."""
    if how not in _SCALES:
        raise ValueError("scale must be one of 'auto', 'robust', 'standard', 'minmax' or None, "
                         f"got {how!r}")
    d = X.shape[1]
    if how is None or how == "none":
        return np.zeros(d), np.ones(d)
    if how in ("auto", "robust"):
        Xq = np.asarray(_sample_rows(X), dtype=np.float64)
        off, spread = _auto(Xq) if how == "auto" else _robust(Xq)
    elif how == "standard":
        X = np.asarray(X, dtype=np.float64)
        off = X.mean(axis=0)
        spread = X.std(axis=0)
    else:
        X = np.asarray(X, dtype=np.float64)
        off = X.min(axis=0)
        spread = X.max(axis=0) - off
    factor = np.where(spread > 1e-12, 1.0 / np.where(spread > 1e-12, spread, 1.0), 1.0)
    return off, factor


def apply_scaling(X: np.ndarray, offset: np.ndarray, factor: np.ndarray,
                  dtype=np.float64) -> np.ndarray:
    return ((np.asarray(X, dtype=dtype) - offset.astype(dtype)) * factor.astype(dtype))


def segment_max(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Row-segment maximum (n_segments x ...) of ``values`` split at ``offsets``."""
    return np.maximum.reduceat(values, offsets[:-1], axis=0)


def segment_argmax(values: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(max, global row of the first maximum) per segment, for 1-D or 2-D ``values``."""
    vmax = segment_max(values, offsets)
    sizes = np.diff(offsets)
    hit = values == np.repeat(vmax, sizes, axis=0)
    rows = np.arange(values.shape[0]).reshape((-1,) + (1,) * (values.ndim - 1))
    idx = np.where(hit, rows, values.shape[0])
    return vmax, np.minimum.reduceat(idx, offsets[:-1], axis=0)


def gather_rows(offsets: np.ndarray, bag_idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Instance rows of the bags ``bag_idx`` (in that order) and the new offsets."""
    starts = offsets[bag_idx]
    sizes = offsets[bag_idx + 1] - starts
    new_off = np.zeros(bag_idx.size + 1, dtype=np.int64)
    np.cumsum(sizes, out=new_off[1:])
    rows = np.repeat(starts - new_off[:-1], sizes) + np.arange(new_off[-1], dtype=np.int64)
    return rows, new_off


def resolve_rbf_gamma(gamma: float | str, Xs: np.ndarray, ref: float) -> float:
    """RBF width for scaled instances ``Xs``. A number is used as given. ``"auto"``:
    ``ref / (d * mean per-feature variance)``, i.e. a width relative to the typical squared
    distance between instances, so it carries over to any feature count; each learner's
    ``ref`` re-expresses the width chosen on an inner hold-out of a Scene training part
    (d = 15), so Scene keeps the tuned value while 72 or 1,000 features do not make the
    kernel the identity matrix."""
    if isinstance(gamma, str):
        if gamma != "auto":
            raise ValueError(f"gamma must be a positive number or 'auto', got {gamma!r}")
        Xq = np.asarray(_sample_rows(Xs), dtype=np.float64)
        spread = float(Xq.shape[1] * Xq.var(axis=0).mean())
        return ref / spread if spread > 1e-12 else 1.0
    g = float(gamma)
    if not g > 0:
        raise ValueError(f"gamma must be positive, got {gamma!r}")
    return g
