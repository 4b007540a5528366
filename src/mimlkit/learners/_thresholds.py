"""Decision thresholds chosen on training data (never on a test split).

Every bag learner has ``threshold_mode``:

* ``"fixed"``: the learner's own threshold (0 for ±1-trained outputs, 0.5 for
  probabilities; the papers' rule) and the T-criterion as the ``t_criterion`` parameter says;
* ``"hamming"`` (default): per label, the threshold that makes the fewest errors on
  out-of-fold scores of the training bags. "Never predict this label" is one of the
  candidates and wins unless a finite threshold saves errors **beyond noise**: its gain
  over never predicting, ``TP - FP`` among the bags it predicts positive, must be at least
  ``_MIN_GAIN`` of the calibration bags and ``z * sqrt(TP + FP)`` (a one-sided sign test
  that the precision of those predictions exceeds 1/2), where ``z`` is ``MARGIN_Z`` = 1.645
  (the 5 % level) raised by a Benjamini-Hochberg step-up over the labels (false-discovery
  rate ``FDR_Q`` = 5 %, ``fdr_margin``): at 5 % per label, about one in twenty labels the
  learner cannot predict would pass by luck, and on data with dozens of rare labels those
  lucky labels cost more errors than the real ones save. When most labels pass easily the
  margin stays 1.645; when few do, it rises towards the Bonferroni margin. A label the
  learner cannot separate, or one so rare that a few lucky held-out bags would decide it, is
  then not predicted, and the hamming loss stays at or below the empty predictor's on new
  data, not just on the calibration bags. An optional cross-check (``cross_check=True``:
  the threshold chosen on one half of the calibration bags must also save errors on the
  other half) is off by default. ``benchmarks/select_threshold_margin.py`` chose the rule
  on inner splits only;
* ``"f1"``: per label, the threshold that maximises that label's F1 on the out-of-fold
  scores (more labels, higher recall; hamming loss may rise);
* ``"rate"``: per label, the threshold that predicts as many positives as the training
  label frequency.

``t_criterion="auto"`` (default) applies the T-criterion (every bag keeps its top label)
only when no training bag has an empty label set **and** it does not add errors on the
out-of-fold scores (the top label of a bag left empty is right more often than wrong, by
a sign-test margin ``TC_MARGIN_Z`` = 1.645).

The held-out scores come from bag-level folds of the training data; how many depends on
the data size (``MIMLClassifierMixin._fit_and_calibrate``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["THRESHOLD_MODES", "MARGIN_Z", "FDR_Q", "choose_thresholds", "fdr_margin",
           "rate_capped", "t_criterion_helps", "fold_indices"]

THRESHOLD_MODES = ("fixed", "hamming", "f1", "rate")
_MIN_GAIN = 0.005  # a finite threshold must save at least this share of calibration bags
MARGIN_Z = 1.645  # gain TP - FP must reach z * sqrt(TP + FP): one-sided sign test, 5 %
CROSS_CHECK = False  # (off: the BH margin replaced it) keep a label only if its threshold
#                     also helps on calibration bags it was not chosen on
TC_MARGIN_Z = 1.645  # the T-criterion's sign-test margin
FLOOR_NATIVE = False  # hamming thresholds may not fall below the learner's native one
FDR_Q = 0.05  # Benjamini-Hochberg false-discovery rate over labels (0: per-label margin only)


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


def _counts(s: np.ndarray, y: np.ndarray, cand: np.ndarray):
    """(TP, FP) of ``score > t`` for every candidate ``t`` (vectorised: one sort)."""
    order = np.argsort(s, kind="stable")
    ss, yy = s[order], y[order]
    idx = np.searchsorted(ss, cand, side="right")  # number of scores <= t
    cum_pos = np.concatenate([[0], np.cumsum(yy)])  # positives among the lowest i scores
    tp = int(yy.sum()) - cum_pos[idx]
    return tp, (ss.size - idx) - tp


def _closest(c: np.ndarray, native: float) -> float:
    """The finite candidate closest to the native threshold (else the first)."""
    finite = np.isfinite(c)
    if finite.any():
        c = c[finite]
        return float(c[np.argmin(np.abs(c - native))])
    return float(c[0])


def _table(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate thresholds of one label and their (TP, FP) counts."""
    cand = _candidates(s)
    return (cand, *_counts(s, y, cand))


def _pick(cand: np.ndarray, tp: np.ndarray, fp: np.ndarray, n: int, native: float,
          z: float) -> float:
    """The hamming rule on one label's table: the error-minimising threshold whose gain over
    never predicting (TP - FP) passes ``_MIN_GAIN`` of the ``n`` bags and
    ``z * sqrt(TP + FP)``; else ``+inf``."""
    if not np.isfinite(z):
        return np.inf
    gain = tp - fp
    ok = (gain > 0) & (gain >= _MIN_GAIN * n) & (gain >= z * np.sqrt(tp + fp))
    if not ok.any():
        return np.inf
    return _closest(cand[ok & (gain == gain[ok].max())], native)


def _fewest_errors(s: np.ndarray, y: np.ndarray, native: float, z: float) -> float:
    """``_pick`` on the scores ``s`` and labels ``y`` of one label."""
    return _pick(*_table(s, y), s.size, native, z)


def _best_z(tp: np.ndarray, fp: np.ndarray, n: int) -> float:
    """The largest sign-test statistic ``(TP - FP) / sqrt(TP + FP)`` of a label's table over
    the thresholds whose gain passes ``_MIN_GAIN`` (``-inf`` when none saves an error)."""
    gain = tp - fp
    ok = (gain > 0) & (gain >= _MIN_GAIN * n)
    if not ok.any():
        return -np.inf
    return float((gain[ok] / np.sqrt(tp[ok] + fp[ok])).max())


def _bh_margin(stats: list[float], z: float, q: float) -> float:
    """Benjamini-Hochberg step-up at rate ``q`` over the labels' best statistics (one-sided
    normal p-values): the margin of the last discovery, never below ``z``; ``+inf`` when
    no label is discovered; ``z`` when ``q <= 0`` or there is no label to test."""
    from scipy.stats import norm

    if q <= 0 or not stats:
        return z
    p = np.sort(norm.sf(np.asarray(stats)))
    m = p.size
    passed = np.flatnonzero(p <= q * np.arange(1, m + 1) / m)
    if passed.size == 0:
        return np.inf
    return max(z, float(norm.isf(q * (passed[-1] + 1) / m)))


def fdr_margin(S: np.ndarray, Y: np.ndarray, z: float, q: float) -> float:
    """The sign-test margin after a Benjamini-Hochberg step-up over the labels at false-
    discovery rate ``q`` (one-sided normal p-value of each label's best statistic; labels
    with no positive calibration bag cannot be discovered and are not counted). Never below
    ``z``; ``+inf`` when no label is discovered."""
    stats = []
    for k in range(S.shape[1]):
        obs = Y[:, k] >= 0
        y = Y[obs, k] == 1
        if y.any():
            _, tp, fp = _table(S[obs, k], y)
            stats.append(_best_z(tp, fp, y.size))
    return _bh_margin(stats, z, q)


def cross_checked_gain(s: np.ndarray, y: np.ndarray, native: float = 0.0,
                       margin_z: float = 0.0) -> int:
    """Errors saved on held-out bags by the hamming rule's threshold when it is chosen on
    the *other* half of the calibration bags (two halves, seeded, each way; summed).

    The threshold of the fewest errors is an optimistic pick on the bags it was chosen on;
    on bags it has not seen, a label whose gain was luck loses errors instead."""
    perm = np.random.default_rng(0).permutation(s.size)
    halves = (perm[::2], perm[1::2])
    total = 0
    for fit, ev in ((halves[0], halves[1]), (halves[1], halves[0])):
        t = _fewest_errors(s[fit], y[fit], native, margin_z)
        pred = s[ev] > t
        total += int((pred & y[ev]).sum()) - int((pred & ~y[ev]).sum())
    return total


def choose_thresholds(S: np.ndarray, Y: np.ndarray, mode: str,
                      native: float | np.ndarray = 0.0,
                      margin_z: float | None = None,
                      cross_check: bool | None = None,
                      fdr: float | None = None,
                      floor_native: bool | None = None) -> np.ndarray:
    """Per-label thresholds (predict ``score > t``) from held-out scores ``S`` and labels
    ``Y`` (1 / 0; -1 entries are ignored). ``+inf`` = never predict the label.
    ``"hamming"`` mode: ``margin_z`` (default ``MARGIN_Z``) is the sign-test margin and
    ``cross_check`` (default ``CROSS_CHECK``) keeps a label only when the rule's threshold
    also saves errors on calibration bags it was not chosen on (``cross_checked_gain``);
    ``fdr`` (default ``FDR_Q``; 0 turns it off) raises the margin by a Benjamini-Hochberg
    step-up over the labels (``fdr_margin``); ``floor_native`` (default ``FLOOR_NATIVE``)
    never lets a finite threshold fall below the learner's native one.

    Among equally good thresholds the one closest to the learner's native threshold is
    taken, so that small calibration sets do not move a threshold for nothing.
    """
    S = np.asarray(S, dtype=np.float64)
    Y = np.asarray(Y)
    n, K = S.shape
    z = MARGIN_Z if margin_z is None else float(margin_z)
    check = CROSS_CHECK if cross_check is None else bool(cross_check)
    floor = FLOOR_NATIVE if floor_native is None else bool(floor_native)
    if mode not in THRESHOLD_MODES or mode == "fixed":
        raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    native = np.broadcast_to(np.asarray(native, dtype=np.float64), (K,))
    labels = []  # per label: observed scores, labels and their threshold table (one sort)
    for k in range(K):
        obs = Y[:, k] >= 0
        s, y = S[obs, k], Y[obs, k] == 1
        labels.append((s, y, _table(s, y) if s.size else None))
    if mode == "hamming":
        q = FDR_Q if fdr is None else float(fdr)
        z = _bh_margin([_best_z(tb[1], tb[2], s.size) for s, y, tb in labels if y.any()], z, q)
    out = np.empty(K)
    for k, (s, y, table) in enumerate(labels):  # each label vectorised over its candidates
        if table is None:
            out[k] = native[k]
            continue
        if mode == "hamming":
            t = _pick(*table, s.size, native[k], z)
            if np.isfinite(t) and check and cross_checked_gain(s, y, native[k], z) <= 0:
                t = np.inf
            if np.isfinite(t) and floor:
                t = max(t, float(native[k]))
            out[k] = t
            continue
        cand, tp, fp = table
        pos_total = int(y.sum())
        if mode == "f1":
            f1 = np.where(tp > 0, 2 * tp / np.maximum(tp + fp + pos_total, 1), 0.0)
            if f1.max() <= 0:
                out[k] = np.inf
                continue
            good = np.flatnonzero(f1 == f1.max())
        else:  # "rate"
            gap = np.abs((tp + fp) - pos_total)
            good = np.flatnonzero(gap == gap.min())
        out[k] = _closest(cand[good], native[k])
    return out


def rate_capped(S_held: np.ndarray, thresholds: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Thresholds raised so that no label is predicted (``score > t``) on a larger share of
    the rows of ``F`` (the final model's scores of its training bags) than on the held-out
    rows of ``S_held`` (the calibration clones' scores) at the chosen ``thresholds``.
    A label held at ``+inf`` stays there; thresholds never go down. Vectorised over labels."""
    S_held = np.asarray(S_held, dtype=np.float64)
    F = np.asarray(F, dtype=np.float64)
    K = F.shape[1]
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (K,)).copy()
    if F.shape[0] == 0 or S_held.shape[0] == 0:
        return thr
    rate = (S_held > thr).mean(axis=0)
    allowed = np.ceil(rate * F.shape[0] - 1e-9).astype(int)  # positives allowed in F
    over = np.isfinite(thr) & ((F > thr).sum(axis=0) > allowed)
    if over.any():
        desc = -np.sort(-F[:, over], axis=0)  # column-wise, largest first
        # at most ``allowed`` rows lie strictly above the (allowed + 1)-th largest score
        thr[over] = np.maximum(thr[over], desc[allowed[over], np.arange(int(over.sum()))])
    return thr


def t_criterion_helps(S: np.ndarray, Y: np.ndarray, thresholds: np.ndarray,
                      margin_z: float | None = None) -> bool:
    """Whether giving every bag left empty by ``thresholds`` its top label saves errors on
    held-out scores beyond noise: hits - misses >= ``margin_z * sqrt(hits + misses)``
    (``MARGIN_Z`` by default; no bag left empty: True)."""
    S = np.asarray(S, dtype=np.float64)
    pred = S > thresholds
    empty = ~pred.any(axis=1)
    if not empty.any():
        return True
    rows = np.flatnonzero(empty)
    top = np.argmax(S[rows], axis=1)  # the label ``predict`` adds (the top-ranked one)
    hit = np.asarray(Y)[rows, top] == 1
    z = TC_MARGIN_Z if margin_z is None else float(margin_z)
    h, m = int(hit.sum()), int((~hit).sum())
    return bool(h - m >= z * np.sqrt(h + m)) if z > 0 else bool(h >= m)
