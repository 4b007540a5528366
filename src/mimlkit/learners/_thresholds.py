"""Decision thresholds chosen on training data (never on a test split).

Every bag learner has ``threshold_mode``:

* ``"fixed"``: the learner's own threshold (0 for ±1-trained outputs, 0.5 for
  probabilities; the papers' rule) and the T-criterion as the ``t_criterion`` parameter says;
* ``"hamming"`` (default): per label, the threshold that makes the fewest errors on
  out-of-fold scores of the training bags. "Never predict this label" is one of the
  candidates and wins unless a finite threshold makes strictly fewer errors (by
  ``_MIN_GAIN`` of the calibration bags), so a label the learner cannot separate is not
  predicted, and the training-side hamming loss is never above the empty predictor's;
* ``"f1"``: per label, the threshold that maximises that label's F1 on the out-of-fold
  scores (more labels, higher recall; hamming loss may rise);
* ``"rate"``: per label, the threshold that predicts as many positives as the training
  label frequency.

``t_criterion="auto"`` (default) applies the T-criterion (every bag keeps its top label)
only when no training bag has an empty label set **and** it does not add errors on the
out-of-fold scores (the top label of a bag left empty is right at least half the time).

The held-out scores come from bag-level folds of the training data; how many depends on
the data size (``MIMLClassifierMixin._fit_and_calibrate``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["THRESHOLD_MODES", "choose_thresholds", "t_criterion_helps", "fold_indices"]

THRESHOLD_MODES = ("fixed", "hamming", "f1", "rate")
_MIN_GAIN = 0.005  # a finite threshold must save at least this share of calibration bags


def fold_indices(n: int, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, held-out) index pairs: ``n_folds`` random folds, or one 75/25 split."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    if n_folds <= 1:
        cut = max(1, min(n - 1, int(round(0.8 * n))))
        return [(np.sort(perm[:cut]), np.sort(perm[cut:]))]
    parts = np.array_split(perm, n_folds)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1:])), np.sort(parts[i]))
            for i in range(n_folds)]


def _candidates(s: np.ndarray) -> np.ndarray:
    """Thresholds between consecutive distinct scores, plus -inf and +inf (predict ``> t``)."""
    u = np.unique(s[np.isfinite(s)])
    mids = (u[:-1] + u[1:]) / 2.0 if u.size > 1 else np.empty(0)
    lo = u[0] - 1.0 if u.size else 0.0
    return np.concatenate([[-np.inf, lo], mids, [np.inf]])


def choose_thresholds(S: np.ndarray, Y: np.ndarray, mode: str,
                      native: float | np.ndarray = 0.0) -> np.ndarray:
    """Per-label thresholds (predict ``score > t``) from held-out scores ``S`` and labels
    ``Y`` (1 / 0; -1 entries are ignored). ``+inf`` = never predict the label.

    Among equally good thresholds the one closest to the learner's native threshold is
    taken, so that small calibration sets do not move a threshold for nothing.
    """
    S = np.asarray(S, dtype=np.float64)
    Y = np.asarray(Y)
    n, K = S.shape
    native = np.broadcast_to(np.asarray(native, dtype=np.float64), (K,))
    out = np.empty(K)
    for k in range(K):  # K labels, each vectorised over its candidates
        obs = Y[:, k] >= 0
        s, y = S[obs, k], Y[obs, k] == 1
        if s.size == 0:
            out[k] = native[k]
            continue
        cand = _candidates(s)
        order = np.argsort(s, kind="stable")
        ss, yy = s[order], y[order]
        # predicted positive for candidate t: scores > t  ->  count via searchsorted
        idx = np.searchsorted(ss, cand, side="right")  # number of scores <= t
        pos_total = int(yy.sum())
        cum_pos = np.concatenate([[0], np.cumsum(yy)])  # positives among the lowest i scores
        fn = cum_pos[idx]
        tp = pos_total - fn
        n_pred = ss.size - idx
        fp = n_pred - tp
        if mode == "hamming":
            err = fp + fn
            never = pos_total  # errors when the label is never predicted
            best = err.min()
            if best > never - _MIN_GAIN * ss.size or best >= never:
                out[k] = np.inf
                continue
            good = np.flatnonzero(err == best)
        elif mode == "f1":
            f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
            if f1.max() <= 0:
                out[k] = np.inf
                continue
            good = np.flatnonzero(f1 == f1.max())
        elif mode == "rate":
            target = pos_total
            gap = np.abs(n_pred - target)
            good = np.flatnonzero(gap == gap.min())
        else:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {mode!r}")
        c = cand[good]
        finite = np.isfinite(c)
        if finite.any():
            c = c[finite]
            out[k] = float(c[np.argmin(np.abs(c - native[k]))])
        else:
            out[k] = float(c[0])
    return out


def t_criterion_helps(S: np.ndarray, Y: np.ndarray, thresholds: np.ndarray) -> bool:
    """Whether giving every bag left empty by ``thresholds`` its top label adds no error
    on held-out scores (right at least as often as wrong)."""
    S = np.asarray(S, dtype=np.float64)
    pred = S > thresholds
    empty = ~pred.any(axis=1)
    if not empty.any():
        return True
    rows = np.flatnonzero(empty)
    top = np.argmax(S[rows], axis=1)  # the label ``predict`` adds (the top-ranked one)
    hit = np.asarray(Y)[rows, top] == 1
    return bool(hit.sum() >= (~hit).sum())
