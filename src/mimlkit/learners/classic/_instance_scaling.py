"""Instance-feature scaling and ragged segment helpers shared by MIMLfast, MIMLmiSVM,
MIMLBoost and DeepMIML.

The classic MIML data (e.g. Scene: features in [-248.5, 255]) are unscaled, and the kernel
widths / norm constraints of these learners are scale dependent, so every learner here takes
``scale="standard" | "minmax" | None`` and stores the fitted statistics as plain numpy arrays
(``scale_offset_``, ``scale_factor_``) so that skops persistence works.
"""

from __future__ import annotations

import numpy as np

__all__ = ["fit_scaling", "apply_scaling", "segment_max", "segment_argmax", "gather_rows"]

_SCALES = ("standard", "minmax", None, "none")


def fit_scaling(X: np.ndarray, how: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(offset, factor) so that ``(X - offset) * factor`` is scaled; identity for ``None``."""
    if how not in _SCALES:
        raise ValueError(f"scale must be one of 'standard', 'minmax' or None, got {how!r}")
    d = X.shape[1]
    if how is None or how == "none":
        return np.zeros(d), np.ones(d)
    X = np.asarray(X, dtype=np.float64)
    if how == "standard":
        off = X.mean(axis=0)
        spread = X.std(axis=0)
    else:
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
