"""Multi-label / MIML evaluation metrics (``specs/metrics.md``), vectorised.

Inputs: ``Y`` (ground truth, 0/1, n_bags x n_labels), ``S`` (real scores, larger = more
likely) and ``H`` (predicted 0/1 label sets). NumPy arrays, scipy.sparse matrices and torch
tensors are accepted. ``-1`` ("unobserved" in mimlkit's label convention) is rejected:
evaluation needs full labels (convert +-1 targets with :func:`from_pm1`).

Ranking metrics take ``convention="zhang"`` (default, the convention of the MIML tables:
degenerate bags -- no relevant label or all labels relevant -- are excluded; coverage
subtracts 1) or ``convention="sklearn"`` (all bags, as scikit-learn does). The convention
chooses the bags and the offset only. **Ties are pessimistic under every convention**
(``docs/metrics.md``, "Tie rules"): a relevant label tied with irrelevant ones is ranked after
them, so a constant or all-tied scorer gets the worst value of every example-based ranking
metric (one-error 1, coverage q - 1, ranking loss 1, AP the minimum over all rankings) and
cannot gain from ties. Without ties the values are those of the MIML toolboxes /
scikit-learn. Each ranking metric also accepts ``return_details=True`` and then returns
``(value, {"n_used": ..., "n_excluded": ...})``.

Speed: no Python loop over samples. Rank-based metrics sort each row once (``argsort``,
chunked over rows to bound memory) and read tie groups with a running maximum; coverage
and one-error need no sort at all; label-wise metrics sort columns in blocks.

Naming rule (spec section 1): ``average_precision`` is the example-based ranking metric of
the MIML tables; ``mean_average_precision`` (mAP) is the label-based metric of the SPMLL
tables. They are different numbers.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "hamming_loss", "one_error", "coverage", "ranking_loss", "average_precision",
    "macro_auc", "micro_f1", "macro_f1", "example_f1", "f1_micro", "f1_macro", "f1_example",
    "subset_accuracy", "mean_average_precision", "per_label_average_precision",
    "overall_score", "from_pm1", "MetricSpec", "METRICS", "DEFAULT_METRICS", "resolve_metric",
    "compute_metrics", "miml_report",
]

_CONVENTIONS = ("zhang", "sklearn")
#: target number of matrix cells per chunk (bounds the temporaries of the sorts)
_CHUNK_CELLS = 1 << 20


# ============================================================================ validation
def _to_numpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # torch tensor, without importing torch
        a = a.detach().cpu().numpy()
    if hasattr(a, "toarray"):  # scipy.sparse
        a = a.toarray()
    return np.asarray(a)


def _check_convention(convention: str) -> str:
    if convention not in _CONVENTIONS:
        raise ValueError(f"convention must be 'zhang' or 'sklearn', got {convention!r}")
    return convention


def _check_labels(Y: Any, name: str = "Y_true") -> np.ndarray:
    """0/1 label matrix -> bool (n x q). Raises on -1 and on any other value."""
    Y = _to_numpy(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_bags x n_labels), got {Y.ndim}-D")
    if Y.dtype.kind == "b":
        return Y
    if Y.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be numeric 0/1, got dtype {Y.dtype}")
    ok = (Y == 0) | (Y == 1)
    if not ok.all():
        bad_rows = np.flatnonzero(~ok.all(axis=1))
        row = int(bad_rows[0])
        val = Y[row][~ok[row]][0]
        if np.any(Y == -1):
            row = int(np.flatnonzero((Y == -1).any(axis=1))[0])
            raise ValueError(
                f"{name} holds -1 (unobserved) at row {row}: metrics need fully observed 0/1 "
                "labels (evaluate on a test set with full labels; convert +-1 targets with "
                "mimlkit.metrics.from_pm1)"
            )
        raise ValueError(f"{name} row {row} holds {val!r}; labels must be 0 or 1")
    return Y.astype(bool)


def _check_scores(S: Any, shape: tuple[int, int], name: str = "scores") -> np.ndarray:
    S = _to_numpy(S)
    if S.ndim == 1 and shape[1] == 1:
        S = S[:, None]
    if S.shape != shape:
        raise ValueError(f"{name} has shape {S.shape}, expected {shape} (same as Y_true)")
    if S.dtype.kind not in "f":
        S = S.astype(np.float64)
    elif S.dtype.itemsize < 4:
        S = S.astype(np.float32)
    finite = np.isfinite(S)
    if not finite.all():
        row = int(np.flatnonzero(~finite.all(axis=1))[0])
        raise ValueError(f"{name} row {row} holds a NaN or infinite score")
    return S


def _check_pair(Y: Any, S: Any) -> tuple[np.ndarray, np.ndarray]:
    Yb = _check_labels(Y)
    return Yb, _check_scores(S, Yb.shape)


def _check_pred(Y: Any, H: Any) -> tuple[np.ndarray, np.ndarray]:
    Yb = _check_labels(Y)
    Hb = _check_labels(H, "Y_pred")
    if Hb.shape != Yb.shape:
        raise ValueError(f"Y_pred has shape {Hb.shape}, expected {Yb.shape} (same as Y_true)")
    return Yb, Hb


def from_pm1(Y: Any) -> np.ndarray:
    """Convert +-1 targets (Zhang's MATLAB toolboxes) to 0/1 int8."""
    Y = _to_numpy(Y)
    ok = (Y == 1) | (Y == -1)
    if not ok.all():
        row = int(np.flatnonzero(~ok.all(axis=1) if Y.ndim == 2 else ~ok)[0])
        raise ValueError(f"from_pm1: row {row} holds a value other than +1/-1")
    return (Y == 1).astype(np.int8)


def _row_chunks(n_rows: int, n_cols: int) -> Iterable[tuple[int, int]]:
    step = max(1, _CHUNK_CELLS // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def _finish(total: float, n_used: int, n_all: int, details: bool, what: str):
    """Mean over the used bags (NaN with a warning when none is usable)."""
    if n_used == 0:
        warnings.warn(f"{what}: no usable bag (all are degenerate); returning NaN",
                      RuntimeWarning, stacklevel=3)
        value = float("nan")
    else:
        value = float(total / n_used)
    if details:
        return value, {"n_used": int(n_used), "n_excluded": int(n_all - n_used)}
    return value


# ============================================================================ threshold metrics
def hamming_loss(Y_true: Any, Y_pred: Any) -> float:
    """HL = (1/(p q)) sum_i |H_i xor Y_i| (spec 2.1)."""
    Y, H = _check_pred(Y_true, Y_pred)
    return float(np.count_nonzero(Y != H) / Y.size) if Y.size else float("nan")


def subset_accuracy(Y_true: Any, Y_pred: Any) -> float:
    """Fraction of bags whose predicted label set equals the true one exactly (spec 2.7)."""
    Y, H = _check_pred(Y_true, Y_pred)
    return float(np.mean((Y == H).all(axis=1))) if Y.shape[0] else float("nan")


def _confusion(Y: np.ndarray, H: np.ndarray, axis: int | None):
    tp = np.count_nonzero(Y & H, axis=axis)
    fp = np.count_nonzero(~Y & H, axis=axis)
    fn = np.count_nonzero(Y & ~H, axis=axis)
    return tp, fp, fn


def micro_f1(Y_true: Any, Y_pred: Any) -> float:
    """Micro-F1 = 2 sum TP / (2 sum TP + sum FP + sum FN), pooled over all cells (spec 2.7).
    0.0 when there is no true and no predicted positive at all (scikit-learn's default)."""
    Y, H = _check_pred(Y_true, Y_pred)
    tp, fp, fn = _confusion(Y, H, None)
    den = 2 * tp + fp + fn
    return float(2 * tp / den) if den else 0.0


def macro_f1(Y_true: Any, Y_pred: Any) -> float:
    """Macro-F1 = mean over labels of 2TP_l / (2TP_l + FP_l + FN_l); a label with no true
    and no predicted positive counts 0 (spec 2.7; not the harmonic mean of macro-P/R)."""
    Y, H = _check_pred(Y_true, Y_pred)
    tp, fp, fn = _confusion(Y, H, 0)
    den = 2 * tp + fp + fn
    f1 = np.divide(2.0 * tp, den, out=np.zeros(den.shape), where=den > 0)
    return float(f1.mean()) if f1.size else float("nan")


def example_f1(Y_true: Any, Y_pred: Any, *, convention: str = "zhang",
               zero_division: float | None = None) -> float:
    """Example-based F1 = (1/p) sum_i 2|H_i & Y_i| / (|H_i| + |Y_i|) (spec 2.7).

    A bag with ``H_i = Y_i = {}`` scores ``zero_division``: 1.0 under ``'zhang'`` (perfect
    prediction; our recommended default), 0.0 under ``'sklearn'`` (scikit-learn's default).
    """
    _check_convention(convention)
    if zero_division is None:
        zero_division = 1.0 if convention == "zhang" else 0.0
    Y, H = _check_pred(Y_true, Y_pred)
    inter = np.count_nonzero(Y & H, axis=1)
    den = np.count_nonzero(Y, axis=1) + np.count_nonzero(H, axis=1)
    f1 = np.divide(2.0 * inter, den, out=np.full(den.shape, float(zero_division)),
                   where=den > 0)
    return float(f1.mean()) if f1.size else float("nan")


f1_micro = micro_f1
f1_macro = macro_f1
f1_example = example_f1


# ============================================================================ ranking metrics
def one_error(Y_true: Any, scores: Any, *, convention: str = "zhang",
              return_details: bool = False):
    """OE = fraction of bags whose top-scored label is irrelevant (spec 2.2).

    Tie rule (both conventions, pessimistic): a bag is an error unless *every* label that
    attains the maximum score is relevant (the worst tie-break puts an irrelevant label on
    top), so a constant scorer errs on every bag that is not full. ``'zhang'``: degenerate
    bags excluded (constant scorer -> 1.0). ``'sklearn'``: all bags; an empty bag is always
    an error, a full bag never.
    """
    _check_convention(convention)
    Y, S = _check_pair(Y_true, scores)
    p, q = Y.shape
    total = 0
    n_used = 0
    for a, b in _row_chunks(p, q):
        y, s = Y[a:b], S[a:b]
        err = ((s == s.max(axis=1, keepdims=True)) & ~y).any(axis=1)
        if convention == "zhang":
            n_rel = np.count_nonzero(y, axis=1)
            use = (n_rel > 0) & (n_rel < q)
            total += int(np.count_nonzero(err & use))
            n_used += int(np.count_nonzero(use))
        else:
            total += int(np.count_nonzero(err))
            n_used += b - a
    return _finish(total, n_used, p, return_details, "one_error")


def coverage(Y_true: Any, scores: Any, *, normalize: bool = False, convention: str = "zhang",
             return_details: bool = False):
    """Coverage: how far down the ranking one must go to cover all relevant labels (2.3).

    Tie rule (both conventions, pessimistic): the lowest relevant label is ranked after every
    label tied with it, i.e. ``rank_i(l) = |{l' : F_il' >= F_il}|`` (scikit-learn's max rank),
    so a constant scorer needs all q labels on every non-empty bag.
    ``'zhang'``: ``mean_i max_{l in Y_i} rank_i(l) - 1`` over *all* bags; an empty bag adds 0
    before the ``- 1`` (so it counts -1, as the MATLAB code does; a warning is issued).
    Constant scorer -> q - 1 (the worst value). Without ties this is the MATLAB toolboxes'
    value; with ties they broke ties by label index, which could favour the model.
    ``'sklearn'``: scikit-learn's ``coverage_error`` (empty bag -> 0) = Zhang's value + 1.

    ``normalize=True`` divides by the number of labels q (seed 001's reporting): Zhang's
    value / q, or ``(coverage_error - 1) / q`` under ``'sklearn'``.
    No sort is needed: the lowest-ranked relevant label is the relevant one with the smallest
    score.
    """
    _check_convention(convention)
    Y, S = _check_pair(Y_true, scores)
    p, q = Y.shape
    total = 0
    n_empty = 0
    for a, b in _row_chunks(p, q):
        y, s = Y[a:b], S[a:b]
        n_empty += int(np.count_nonzero(~y.any(axis=1)))
        m = np.where(y, s, np.inf).min(axis=1, keepdims=True)
        total += int(np.count_nonzero(s >= m))  # 0 for an empty bag (m = +inf)
    if convention == "zhang" and n_empty:
        warnings.warn(
            f"coverage(convention='zhang'): {n_empty} bag(s) have no relevant label; each "
            "counts -1, as in Zhang's MATLAB code", RuntimeWarning, stacklevel=2)
    if p == 0:
        return _finish(0, 0, 0, return_details, "coverage")
    value = total / p
    if convention == "zhang":
        value -= 1.0
        if normalize:
            value /= q
    elif normalize:
        value = (value - 1.0) / q
    value = float(value)
    if return_details:
        return value, {"n_used": int(p), "n_excluded": 0, "n_empty": int(n_empty)}
    return value


def _lower_bound_rows(sorted_rows: np.ndarray, r: np.ndarray, v: np.ndarray,
                      side: str = "left") -> np.ndarray:
    """Vectorised per-row ``searchsorted``: for each query j, the number of entries of row
    ``r[j]`` of ``sorted_rows`` (ascending) that are ``< v[j]`` (``side='left'``) or
    ``<= v[j]`` (``'right'``). Branchless binary search: ceil(log2 q) gathers over the
    queries, no Python loop over rows."""
    q = sorted_rows.shape[1]
    less = np.less if side == "left" else np.less_equal
    flat = sorted_rows.ravel()
    base = r.astype(np.intp) * q
    pos = np.zeros(r.shape[0], dtype=np.intp)
    n = q
    while n > 1:
        half = n // 2
        cand = pos + half
        pos = np.where(less(flat[base + cand], v), cand, pos)
        n -= half
    pos += less(flat[base + pos], v)
    return pos


@dataclass
class _RelCounts:
    """Per relevant cell of a row chunk (see ``_relevant_counts``)."""

    r: np.ndarray  # row of the cell (within the chunk)
    lt_all: np.ndarray  # labels of the row scoring strictly below it
    lt_rel: np.ndarray  # relevant labels of the row scoring strictly below it
    n_rel: np.ndarray  # relevant labels per row
    # relevant labels with exactly the same score placed before it in a fixed order
    # (0 .. e-1 over a tie group holding e relevant labels)
    eq_rel_before: np.ndarray


def _relevant_counts(y: np.ndarray, s: np.ndarray) -> _RelCounts:
    """Rank counts of every relevant cell of a row chunk. The ranking metrics follow from
    them: ``#{F >= F_l} = q - lt_all`` (max rank, ties included).

    Sparse label rows (the usual case) use one value sort per row (``np.sort``), a binary
    search per relevant cell and an integer sort of the relevant cells only; dense ones
    (> 30% relevant) an argsort of the rows with tie groups.
    """
    if np.count_nonzero(y) > 0.3 * y.size:
        return _relevant_counts_dense(y, s)
    q = s.shape[1]
    r, c = np.nonzero(y)
    v = s[r, c]
    ss = np.sort(s, axis=1)
    lt_all = _lower_bound_rows(ss, r, v)
    n_rel = np.count_nonzero(y, axis=1)
    m = r.shape[0]
    if m == 0:
        return _RelCounts(r, lt_all, lt_all.copy(), n_rel, lt_all.copy())
    # rank among the relevant labels of the same row: sort the cells by (row, lt_all);
    # the sort is stable and the cells come in label order, so equal scores stay by index
    key = r.astype(np.int64) * (q + 1) + lt_all
    order = np.argsort(key, kind="stable")
    ks = key[order]
    idx = np.arange(m, dtype=np.intp)
    first = np.where(np.concatenate(([True], ks[1:] != ks[:-1])), idx, 0)
    np.maximum.accumulate(first, out=first)
    starts = np.concatenate(([0], np.cumsum(n_rel)[:-1]))
    lt_rel = np.empty(m, dtype=np.intp)
    lt_rel[order] = first - starts[r[order]]
    eq_rel_before = np.empty(m, dtype=np.intp)
    eq_rel_before[order] = idx - first
    return _RelCounts(r, lt_all, lt_rel, n_rel, eq_rel_before)


def _tie_groups(ss: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted ascending: ``new`` (a tie group starts here) and ``gstart`` (the
    position where each position's tie group starts)."""
    q = ss.shape[1]
    new = np.empty(ss.shape, dtype=bool)
    new[:, 0] = True
    np.not_equal(ss[:, 1:], ss[:, :-1], out=new[:, 1:])
    gstart = np.where(new, np.arange(q, dtype=np.intp), 0)
    np.maximum.accumulate(gstart, axis=1, out=gstart)
    return new, gstart


def _relevant_counts_dense(y: np.ndarray, s: np.ndarray) -> _RelCounts:
    """Same counts as ``_relevant_counts`` from a full argsort of the rows (tied relevant
    labels are ordered by their position in that sort)."""
    order = np.argsort(s, axis=1)
    ss = np.take_along_axis(s, order, axis=1)
    ys = np.take_along_axis(y, order, axis=1)
    _, gstart = _tie_groups(ss)
    before = np.cumsum(ys, axis=1, dtype=np.intp) - ys  # relevant strictly before j
    r, j = np.nonzero(ys)
    lt_all = gstart[r, j]
    lt_rel = before[r, lt_all]
    return _RelCounts(r, lt_all, lt_rel, np.count_nonzero(y, axis=1), before[r, j] - lt_rel)


def ranking_loss(Y_true: Any, scores: Any, *, convention: str = "zhang",
                 return_details: bool = False):
    """RL = mean_i |{(l, l') in Y_i x notY_i : F_il <= F_il'}| / (|Y_i| |notY_i|) (spec 2.4).

    Tie rule (both conventions, pessimistic): a tied (relevant, irrelevant) pair counts as
    an error (``<=``), as in the MATLAB toolboxes and scikit-learn, so a constant scorer gets
    1 on every non-degenerate bag. ``'zhang'``: degenerate bags excluded; ``'sklearn'``: they
    count 0 (= scikit-learn's ``label_ranking_loss``, also with ties).
    """
    _check_convention(convention)
    Y, S = _check_pair(Y_true, scores)
    p, q = Y.shape
    total = 0.0
    n_used = 0
    for a, b in _row_chunks(p, q):
        k = _relevant_counts(Y[a:b], S[a:b])
        # irrelevant labels scoring >= F_l = #{F >= F_l} - #{relevant F >= F_l}
        irr_ge = (q - k.lt_all) - (k.n_rel[k.r] - k.lt_rel)
        bad = np.bincount(k.r, weights=irr_ge, minlength=b - a)
        pairs = k.n_rel * (q - k.n_rel)
        use = pairs > 0
        total += float(np.sum(bad[use] / pairs[use]))
        n_used += int(np.count_nonzero(use)) if convention == "zhang" else b - a
    return _finish(total, n_used, p, return_details, "ranking_loss")


def average_precision(Y_true: Any, scores: Any, *, convention: str = "zhang",
                      return_details: bool = False):
    """Example-based (label-ranking) average precision (spec 2.5)::

        AP = mean_i (1/|Y_i|) sum_{l in Y_i} |{l' in Y_i : rank(l') <= rank(l)}| / rank(l)

    Tie rule (both conventions, pessimistic): strict ranks from the worst tie-break -- inside
    a group of tied scores the irrelevant labels come first, then the relevant ones -- so AP
    is the minimum over all orderings of the ties; a constant scorer gets
    ``(1/k) sum_{j=1..k} j / (q - k + j)`` for a bag with k relevant labels, the lowest AP
    any ranking can get. Without ties this equals the MATLAB toolboxes and scikit-learn's
    LRAP; with ties it is <= both (they break ties by label index / by max rank, which can
    favour the model).
    ``'zhang'``: degenerate bags excluded. ``'sklearn'``: empty and full bags score 1 and
    are included (as LRAP). Not the label-based mAP (see ``mean_average_precision``).
    """
    _check_convention(convention)
    Y, S = _check_pair(Y_true, scores)
    p, q = Y.shape
    total = 0.0
    n_used = 0
    for a, b in _row_chunks(p, q):
        k = _relevant_counts(Y[a:b], S[a:b])
        # tie group: g labels above (g_rel relevant), e_irr irrelevant and e relevant tied;
        # the u-th relevant one (u = eq_rel_before, counted from the bottom) sits at strict
        # rank g + e_irr + e - u with g_rel + e - u relevant labels at or above it
        num = k.n_rel[k.r] - k.lt_rel - k.eq_rel_before
        den = q - k.lt_all - k.eq_rel_before
        per_row = np.bincount(k.r, weights=num / den, minlength=b - a)
        degenerate = (k.n_rel == 0) | (k.n_rel == q)
        ok = ~degenerate
        if convention == "zhang":
            n_used += int(np.count_nonzero(ok))
        else:
            total += float(np.count_nonzero(degenerate))  # empty / full bags score 1
            n_used += b - a
        total += float(np.sum(per_row[ok] / k.n_rel[ok]))
    return _finish(total, n_used, p, return_details, "average_precision")


# ============================================================================ label-based metrics
def _per_label_auc(Y: np.ndarray, S: np.ndarray) -> np.ndarray:
    """ROC-AUC of every column: Mann-Whitney U (ties count 1/2) from the sorted negative
    scores and two ``searchsorted`` per label. NaN for a single-class column.
    One vectorised pass per label (the loop is over labels, never over samples)."""
    p, q = Y.shape
    out = np.full(q, np.nan)
    for l in range(q):
        s, y = S[:, l], Y[:, l]
        pos = np.sort(s[y])
        neg = np.sort(s[~y])
        if pos.size == 0 or neg.size == 0:
            continue
        below = np.searchsorted(neg, pos, "left")
        upto = np.searchsorted(neg, pos, "right")
        out[l] = (below.sum() + 0.5 * (upto - below).sum()) / (pos.size * neg.size)
    return out


def macro_auc(Y_true: Any, scores: Any, *, undefined: str | float = "drop",
              return_details: bool = False):
    """Mean over labels of the per-label ROC-AUC (spec 2.6).

    Tie rule: a tied (positive, negative) pair of bags counts 1/2 (Mann-Whitney, as
    scikit-learn). That is the expected AUC of a uniformly random tie-break, so ties can
    neither help nor hurt on average; a constant scorer gets 0.5 (chance), not the
    worst value 0, which would rank it below every informative scorer and below chance.

    A label whose test column has one class only is undefined: ``undefined='drop'``
    (default) leaves it out, a number (e.g. 0.5) substitutes it. ``return_details`` reports
    how many labels were undefined.
    """
    Y, S = _check_pair(Y_true, scores)
    auc = _per_label_auc(Y, S)
    bad = np.isnan(auc)
    n_bad = int(np.count_nonzero(bad))
    if isinstance(undefined, str):
        if undefined != "drop":
            raise ValueError("undefined must be 'drop' or a number")
        used = auc[~bad]
    else:
        used = np.where(bad, float(undefined), auc)
    if used.size == 0:
        warnings.warn("macro_auc: every label has a single class in Y_true; returning NaN",
                      RuntimeWarning, stacklevel=2)
        value = float("nan")
    else:
        value = float(used.mean())
    if return_details:
        return value, {"n_used": int(auc.size - n_bad), "n_excluded": n_bad}
    return value


def per_label_average_precision(Y_true: Any, scores: Any, *,
                                empty_label: str = "zero") -> np.ndarray:
    """Non-interpolated AP of every label column (spec 2.8), as scikit-learn's
    ``average_precision_score(average=None)``: ``AP_l = sum_n (R_n - R_{n-1}) P_n`` over the
    distinct score thresholds (tied samples enter together).

    A label with no positive sample gets 0 (``empty_label='zero'``) or NaN (``'skip'``).
    Tie rule: tied bags enter the ranking together (scikit-learn's rule); a column of
    constant scores gets AP = prevalence, below the expected AP of a random ordering, so
    ties cannot raise the value above chance.
    """
    if empty_label not in ("zero", "skip"):
        raise ValueError("empty_label must be 'zero' or 'skip'")
    Y, S = _check_pair(Y_true, scores)
    return _per_label_ap(Y, S, empty_label)


def _per_label_ap(Y: np.ndarray, S: np.ndarray, empty_label: str) -> np.ndarray:
    """AP_l = (1/n_pos) sum over positives of the precision at their score threshold,
    #{positives >= s} / #{samples >= s} (all samples tied at s enter together), from two
    sorted arrays and ``searchsorted`` per label."""
    p, q = Y.shape
    if p == 0:
        return np.full(q, np.nan)
    out = np.zeros(q)
    n_pos = np.count_nonzero(Y, axis=0)
    for l in range(q):
        if n_pos[l] == 0:
            continue
        s = S[:, l]
        pos = np.sort(s[Y[:, l]])
        ge_all = p - np.searchsorted(np.sort(s), pos, "left")
        ge_pos = pos.size - np.searchsorted(pos, pos, "left")
        out[l] = float(np.mean(ge_pos / ge_all))
    if empty_label == "skip":
        out[n_pos == 0] = np.nan
    return out


def mean_average_precision(Y_true: Any, scores: Any, *, empty_label: str = "zero",
                           return_details: bool = False):
    """Label-based mAP = mean over labels of ``per_label_average_precision`` (spec 2.8).

    Labels with no positive count 0 (``empty_label='zero'``, scikit-learn 1.9.1 and Cole et
    al.) or are left out (``'skip'``). Not the example-based ``average_precision``.
    Tie rule: see ``per_label_average_precision`` (constant scores -> mean prevalence).
    """
    if empty_label not in ("zero", "skip"):
        raise ValueError("empty_label must be 'zero' or 'skip'")
    Y, S = _check_pair(Y_true, scores)
    ap = _per_label_ap(Y, S, empty_label)
    n_empty = int(np.count_nonzero(~Y.any(axis=0)))
    used = ap[~np.isnan(ap)]
    value = float(used.mean()) if used.size else float("nan")
    if return_details:
        return value, {"n_used": int(used.size), "n_excluded": int(ap.size - used.size),
                       "n_empty_labels": n_empty}
    return value


def overall_score(Y_true: Any, scores: Any, Y_pred: Any) -> float:
    """Seed 002's "Overall": arithmetic mean of micro-F1, macro-F1, subset accuracy and mAP
    (spec section 4; not in the authors' code, matches their Table I)."""
    return float(np.mean([micro_f1(Y_true, Y_pred), macro_f1(Y_true, Y_pred),
                          subset_accuracy(Y_true, Y_pred),
                          mean_average_precision(Y_true, scores)]))


# ============================================================================ registry
@dataclass(frozen=True)
class MetricSpec:
    """How the runner calls a metric.

    ``input``: "scores" (needs real scores), "labels" (needs 0/1 predictions) or "both".
    ``convention``: whether ``fn`` takes the ``convention`` keyword.
    ``per_label``: ``fn`` returns one value per label (an array) instead of a float.
    """

    fn: Callable[..., Any]
    input: str
    greater_is_better: bool
    short: str
    convention: bool = False
    per_label: bool = False
    description: str = ""

    @property
    def arrow(self) -> str:
        return "↑" if self.greater_is_better else "↓"


METRICS: dict[str, MetricSpec] = {
    "hamming_loss": MetricSpec(hamming_loss, "labels", False, "HL",
                               description="Hamming loss"),
    "one_error": MetricSpec(one_error, "scores", False, "OE", convention=True,
                            description="one-error"),
    "coverage": MetricSpec(coverage, "scores", False, "Cov", convention=True,
                           description="coverage (raw)"),
    "coverage_norm": MetricSpec(functools.partial(coverage, normalize=True), "scores", False,
                                "Cov/q", convention=True,
                                description="coverage normalised by the number of labels"),
    "ranking_loss": MetricSpec(ranking_loss, "scores", False, "RL", convention=True,
                               description="ranking loss"),
    "average_precision": MetricSpec(average_precision, "scores", True, "AP", convention=True,
                                    description="example-based (label-ranking) average "
                                                "precision"),
    "macro_auc": MetricSpec(macro_auc, "scores", True, "macro-AUC",
                            description="mean per-label ROC-AUC (single-class labels dropped)"),
    "micro_f1": MetricSpec(micro_f1, "labels", True, "F1-micro", description="micro-F1"),
    "macro_f1": MetricSpec(macro_f1, "labels", True, "F1-macro", description="macro-F1"),
    "example_f1": MetricSpec(example_f1, "labels", True, "F1-ex", convention=True,
                             description="example-based F1"),
    "subset_accuracy": MetricSpec(subset_accuracy, "labels", True, "Acc",
                                  description="subset accuracy (exact match)"),
    "mean_average_precision": MetricSpec(mean_average_precision, "scores", True, "mAP",
                                         description="label-based mean average precision"),
    "overall": MetricSpec(overall_score, "both", True, "Overall",
                          description="mean of F1-micro, F1-macro, subset accuracy, mAP "
                                      "(seed 002)"),
    "per_label_ap": MetricSpec(per_label_average_precision, "scores", True, "AP_l",
                               per_label=True, description="per-label average precision"),
}

_ALIASES = {
    "hl": "hamming_loss", "oe": "one_error", "rl": "ranking_loss", "ap": "average_precision",
    "lrap": "average_precision", "map": "mean_average_precision", "auc": "macro_auc",
    "coverage_normalized": "coverage_norm", "coverage_normalised": "coverage_norm",
    "f1_micro": "micro_f1", "f1_macro": "macro_f1", "f1_example": "example_f1",
    "accuracy": "subset_accuracy", "overall_score": "overall",
    "per_label_average_precision": "per_label_ap",
}

#: the MIML five + macro-AUC + micro/macro F1 + mAP + subset accuracy
DEFAULT_METRICS: tuple[str, ...] = (
    "hamming_loss", "one_error", "coverage_norm", "ranking_loss", "average_precision",
    "macro_auc", "micro_f1", "macro_f1", "mean_average_precision", "subset_accuracy",
)


def resolve_metric(name: str) -> str:
    """Canonical registry name for ``name`` (case-insensitive; common aliases accepted)."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return key


def compute_metrics(Y: Any, scores: Any = None, Y_pred: Any = None,
                    metrics: Sequence[str] | None = None,
                    label_names: Sequence[str] | None = None, *,
                    convention: str = "zhang", return_details: bool = False):
    """Evaluate several metrics at once (what the runner calls per split).

    Returns ``{name: float}``; a per-label metric (``per_label_ap``) maps to
    ``{label_name: float}``. With ``metrics=None`` the ``DEFAULT_METRICS`` are used, and those
    that need ``Y_pred`` (or ``scores``) are skipped when it is not given; a metric named
    explicitly whose input is missing raises ``ValueError``. With ``return_details=True`` a
    second dict ``{name: {"n_excluded": ...}}`` is returned too.
    """
    _check_convention(convention)
    explicit = metrics is not None
    names = [resolve_metric(m) for m in (metrics if explicit else DEFAULT_METRICS)]
    Yb = _check_labels(Y)
    S = _check_scores(scores, Yb.shape) if scores is not None else None
    H = None
    if Y_pred is not None:
        H = _check_labels(Y_pred, "Y_pred")
        if H.shape != Yb.shape:
            raise ValueError(f"Y_pred has shape {H.shape}, expected {Yb.shape}")
    if label_names is None:
        label_names = [str(i) for i in range(Yb.shape[1])]
    elif len(label_names) != Yb.shape[1]:
        raise ValueError(f"{len(label_names)} label names for {Yb.shape[1]} labels")
    values: dict[str, Any] = {}
    details: dict[str, dict[str, int]] = {}
    for name in dict.fromkeys(names):
        spec = METRICS[name]
        need_s = spec.input in ("scores", "both")
        need_h = spec.input in ("labels", "both")
        if (need_s and S is None) or (need_h and H is None):
            if explicit:
                missing = "scores" if need_s and S is None else "Y_pred"
                raise ValueError(f"metric {name!r} needs {missing}")
            continue
        kw: dict[str, Any] = {"convention": convention} if spec.convention else {}
        if spec.input == "both":
            values[name] = spec.fn(Yb, S, H)
        elif spec.per_label:
            arr = spec.fn(Yb, S, **kw)
            values[name] = {str(n): float(v) for n, v in zip(label_names, arr)}
        else:
            arg = S if need_s else H
            if name in ("one_error", "coverage", "coverage_norm", "ranking_loss",
                        "average_precision", "macro_auc", "mean_average_precision"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    v, d = spec.fn(Yb, arg, return_details=True, **kw)
                values[name] = v
                details[name] = {"n_excluded": int(d.get("n_excluded", 0))}
            else:
                values[name] = spec.fn(Yb, arg, **kw)
    if return_details:
        return values, details
    return values


def miml_report(Y: Any, scores: Any = None, Y_pred: Any = None,
                metrics: Sequence[str] | None = None, convention: str = "zhang",
                label_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Alias of :func:`compute_metrics` with the spec's argument order (section 5)."""
    return compute_metrics(Y, scores, Y_pred, metrics, label_names, convention=convention)


from mimlkit.scoring import get_scorer  # noqa: E402,F401  (sklearn scorers for these metrics)
