"""Significance tests for comparing learners (issue 17 item 3; docs/metrics.md).

One dataset, repeated splits (paired by split):

- ``corrected_resampled_ttest``: Nadeau & Bengio (2003) corrected resampled t-test. The J
  differences come from overlapping training sets, so the plain paired t-test (variance
  ``s^2 / J``) is anti-conservative; the correction inflates it to
  ``(1/J + n_test/n_train) s^2``, Student t with J - 1 degrees of freedom.
- ``wilcoxon_signed_rank``: scipy's Wilcoxon signed-rank test (no normality assumption).
- ``holm``: Holm-Bonferroni step-down adjusted p-values.
- ``pairwise_comparisons``: all pairs (or every learner vs a reference) over tidy result rows.

Several datasets (Demšar, JMLR 7, 2006):

- ``average_ranks``: rank learners on each dataset (1 = best, ties share the average rank).
- ``friedman_test``: Friedman chi^2_F = 12N/(k(k+1)) [sum_j R_j^2 - k(k+1)^2/4] and the
  Iman-Davenport F_F = (N-1) chi^2_F / (N(k-1) - chi^2_F), F(k-1, (k-1)(N-1)).
- ``nemenyi_cd``: CD = q_alpha sqrt(k(k+1) / (6N)), q_alpha the studentized range quantile
  (infinite degrees of freedom) divided by sqrt(2).
- ``multi_dataset_summary``: the matrix (mean over splits), ranks, Friedman, CD and
  wins / ties / losses from tidy rows with a ``"dataset"`` key.

Tidy rows are those of ``results.json`` (``mimlkit evaluate`` / ``bench``):
``{"learner", "split", "metric", "value", ...}`` plus optionally ``"dataset"``; rows with a
``label`` (per-label metrics), a non-finite value or ``metric == "error"`` are ignored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from itertools import combinations
from typing import Any

import numpy as np
from scipy import stats as sps

__all__ = ["corrected_resampled_ttest", "wilcoxon_signed_rank", "holm",
           "pairwise_comparisons", "average_ranks", "friedman_test", "nemenyi_q",
           "nemenyi_cd", "cd_cliques", "multi_dataset_summary"]


# ============================================================================ paired tests
def _paired(a: Any, b: Any) -> np.ndarray:
    a = np.asarray(a, dtype=float).ravel()
    b = np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples need equal lengths, got {a.size} and {b.size}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("paired samples hold a NaN or infinite value")
    return a - b


def corrected_resampled_ttest(a: Sequence[float], b: Sequence[float], n_train: int,
                              n_test: int) -> tuple[float, float, float]:
    """Nadeau & Bengio's corrected resampled t-test of paired per-split scores.

    ``d_j = a_j - b_j`` over J splits; ``t = mean(d) / sqrt((1/J + n_test/n_train) s^2)``
    with ``s^2`` the sample variance (ddof 1) and a two-sided p-value from Student t with
    J - 1 degrees of freedom. Returns ``(t, p, mean_diff)``. All-equal differences give
    ``(0, 1, 0)`` when they are 0 and ``(+-inf, 0, mean)`` otherwise.
    """
    d = _paired(a, b)
    J = d.size
    if J < 2:
        raise ValueError(f"the corrected t-test needs at least 2 paired splits, got {J}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError(f"n_train and n_test must be positive, got {n_train}, {n_test}")
    mean = float(d.mean())
    var = float(d.var(ddof=1))
    if var <= 1e-300:
        if mean == 0.0:
            return 0.0, 1.0, 0.0
        return math.copysign(math.inf, mean), 0.0, mean
    t = mean / math.sqrt((1.0 / J + n_test / n_train) * var)
    p = float(2.0 * sps.t.sf(abs(t), df=J - 1))
    return float(t), p, mean


def wilcoxon_signed_rank(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test of paired scores (``scipy.stats.wilcoxon``,
    zero differences dropped). Returns ``(statistic, p)``; ``(0, 1)`` when every
    difference is zero."""
    d = _paired(a, b)
    if d.size == 0 or np.all(d == 0):
        return 0.0, 1.0
    res = sps.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values: with p_(1) <= ... <= p_(m),
    ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``, returned in the input order.
    NaN entries stay NaN and do not count in m."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return out
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = ok[np.argsort(p[ok], kind="stable")]
    adj = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adj)
    return out


# ============================================================================ tidy rows
def _records(rows: Any) -> list[Mapping[str, Any]]:
    if hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        rows = rows.to_dict("records")
    return list(rows)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _collect(rows: Any, metric: str) -> dict[Any, dict[str, dict[Any, float]]]:
    """{dataset: {learner: {split: value}}} for ``metric`` (scalar rows, finite values)."""
    out: dict[Any, dict[str, dict[Any, float]]] = {}
    n_seen = 0
    for i, r in enumerate(_records(rows)):
        if r.get("metric") != metric or not _is_missing(r.get("label")):
            continue
        n_seen += 1
        v = r.get("value")
        if _is_missing(v) or not math.isfinite(float(v)):
            continue
        ds = r.get("dataset")
        ds = None if _is_missing(ds) else ds
        per = out.setdefault(ds, {}).setdefault(str(r["learner"]), {})
        split = r.get("split")
        if split in per:
            raise ValueError(f"row {i}: learner {r['learner']!r} has two {metric!r} values for "
                             f"split {split!r}" + (f" on dataset {ds!r}" if ds else ""))
        per[split] = float(v)
    if n_seen == 0:
        raise ValueError(f"no row holds metric {metric!r}")
    return out


def _sizes(n: int | Mapping[Any, int], ds: Any, name: str) -> int:
    if isinstance(n, Mapping):
        if ds not in n:
            raise ValueError(f"{name} has no entry for dataset {ds!r}")
        return int(n[ds])
    return int(n)


def pairwise_comparisons(rows: Any, metric: str, higher_is_better: bool,
                         n_train: int | Mapping[Any, int], n_test: int | Mapping[Any, int],
                         reference: str | None = None, *,
                         alpha: float = 0.05) -> list[dict[str, Any]]:
    """Paired comparisons of learners over the same splits, per dataset.

    Pairs: all ``(a, b)`` in first-appearance order, or ``(learner, reference)`` for every
    other learner when ``reference`` is given. Each pair uses the splits both learners
    have. Tests: ``corrected_resampled_ttest`` (``n_train`` / ``n_test``: training / test
    bags per split, or a mapping dataset -> size) and ``wilcoxon_signed_rank``; each test's
    p-values are Holm-corrected over the pairs of one dataset.

    Returns one dict per pair: ``dataset, metric, learner_a, learner_b, n_splits, mean_a,
    mean_b, mean_diff`` (a - b), ``t, p_ttest, p_ttest_holm, wilcoxon_stat, p_wilcoxon,
    p_wilcoxon_holm`` and ``better``: the learner that is significantly better by the
    Holm-corrected corrected t-test at ``alpha`` (None if neither).
    """
    data = _collect(rows, metric)
    out: list[dict[str, Any]] = []
    for ds, per in data.items():
        learners = list(per)
        if reference is not None:
            if reference not in per:
                raise ValueError(f"reference learner {reference!r} has no {metric!r} value"
                                 + (f" on dataset {ds!r}" if ds is not None else "")
                                 + f"; learners: {', '.join(learners)}")
            pairs = [(ln, reference) for ln in learners if ln != reference]
        else:
            pairs = list(combinations(learners, 2))
        n_tr, n_te = _sizes(n_train, ds, "n_train"), _sizes(n_test, ds, "n_test")
        block = []
        for la, lb in pairs:
            common = [s for s in per[la] if s in per[lb]]
            a = np.array([per[la][s] for s in common])
            b = np.array([per[lb][s] for s in common])
            rec: dict[str, Any] = {
                "dataset": ds, "metric": metric, "learner_a": la, "learner_b": lb,
                "n_splits": len(common),
                "mean_a": float(a.mean()) if a.size else math.nan,
                "mean_b": float(b.mean()) if b.size else math.nan}
            if len(common) >= 2:
                t, p, md = corrected_resampled_ttest(a, b, n_tr, n_te)
                w, pw = wilcoxon_signed_rank(a, b)
            else:
                t = p = w = pw = math.nan
                md = float((a - b).mean()) if a.size else math.nan
            rec.update(mean_diff=md, t=t, p_ttest=p, wilcoxon_stat=w, p_wilcoxon=pw)
            block.append(rec)
        for key in ("p_ttest", "p_wilcoxon"):
            adj = holm([r[key] for r in block])
            for r, v in zip(block, adj):
                r[key + "_holm"] = float(v)
        for r in block:
            r["better"] = None
            if r["p_ttest_holm"] < alpha and r["mean_diff"] != 0:
                a_wins = (r["mean_diff"] > 0) == bool(higher_is_better)
                r["better"] = r["learner_a"] if a_wins else r["learner_b"]
        out += block
    return out


# ============================================================================ several datasets
def _matrix(matrix: Any) -> np.ndarray:
    M = np.asarray(matrix, dtype=float)
    if M.ndim != 2:
        raise ValueError(f"matrix must be 2-D (datasets x learners), got {M.ndim}-D")
    if not np.isfinite(M).all():
        r, c = np.argwhere(~np.isfinite(M))[0]
        raise ValueError(f"matrix row {r} (dataset), column {c} (learner) is not finite")
    return M


def _rank_rows(M: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Rank 1 = best on each row; ties share the average rank."""
    return sps.rankdata(-M if higher_is_better else M, method="average", axis=1)


def average_ranks(matrix: Any, higher_is_better: bool) -> np.ndarray:
    """Average rank of each learner (column) over the datasets (rows); 1 = best, ties get
    the average of the ranks they span (Demšar 2006, section 3.2.2)."""
    M = _matrix(matrix)
    if M.shape[0] == 0:
        raise ValueError("matrix has no dataset (row)")
    return _rank_rows(M, higher_is_better).mean(axis=0)


def friedman_test(matrix: Any, higher_is_better: bool) -> dict[str, Any]:
    """Friedman test over a datasets x learners matrix (Demšar 2006, eqs. for chi^2_F and
    F_F; no tie correction, as in the paper). Returns ``{"chi2", "p_chi2", "f", "p_f",
    "n_datasets", "k", "avg_ranks"}`` (ranks as a list in column order); ``p_f``
    (Iman-Davenport, less conservative than chi^2) is the one Demšar recommends."""
    M = _matrix(matrix)
    N, k = M.shape
    if N < 2 or k < 2:
        raise ValueError(f"the Friedman test needs >= 2 datasets and >= 2 learners, got "
                         f"{N} x {k}")
    R = _rank_rows(M, higher_is_better).mean(axis=0)
    chi2 = 12.0 * N / (k * (k + 1)) * (float(np.sum(R ** 2)) - k * (k + 1) ** 2 / 4.0)
    chi2 = max(chi2, 0.0)
    p_chi2 = float(sps.chi2.sf(chi2, k - 1))
    den = N * (k - 1) - chi2
    if den <= 1e-12:  # every dataset ranks the learners identically
        f, p_f = math.inf, 0.0
    else:
        f = (N - 1) * chi2 / den
        p_f = float(sps.f.sf(f, k - 1, (k - 1) * (N - 1)))
    return {"chi2": float(chi2), "p_chi2": p_chi2, "f": float(f), "p_f": p_f,
            "n_datasets": int(N), "k": int(k), "avg_ranks": [float(v) for v in R]}


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """q_alpha of the Nemenyi test: the studentized range quantile for k groups and
    infinite degrees of freedom, divided by sqrt(2) (Demšar's Table 5a)."""
    if k < 2:
        raise ValueError(f"k must be >= 2, got {k}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    return float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def nemenyi_cd(k: int, n_datasets: int, alpha: float = 0.05) -> float:
    """Nemenyi critical difference ``CD = q_alpha sqrt(k(k+1) / (6N))``: two learners whose
    average ranks over N datasets differ by at least CD differ significantly."""
    if n_datasets < 1:
        raise ValueError(f"n_datasets must be >= 1, got {n_datasets}")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def cd_cliques(avg_ranks: Mapping[str, float], cd: float) -> list[list[str]]:
    """Maximal groups of learners (sorted by rank) whose ranks span less than ``cd``: the
    bars of a critical-difference diagram. Singletons are left out."""
    items = sorted(avg_ranks.items(), key=lambda kv: kv[1])
    r = np.array([v for _, v in items])
    out: list[list[str]] = []
    last = -1
    for i in range(len(items)):
        j = int(np.searchsorted(r, r[i] + cd, side="left")) - 1  # ranks < r_i + cd
        if j > i and j > last:
            out.append([n for n, _ in items[i:j + 1]])
            last = j
    return out


def multi_dataset_summary(rows: Any, metric: str, higher_is_better: bool, *,
                          alpha: float = 0.05, tie_tol: float = 1e-12) -> dict[str, Any]:
    """Across-dataset comparison from tidy rows that carry a ``"dataset"`` key.

    The datasets x learners matrix holds the mean over splits; a dataset on which some
    learner has no finite value is dropped (listed in ``dropped_datasets``, with a warning).
    Returns ``{"metric", "higher_is_better", "datasets", "learners", "matrix",
    "avg_ranks": {learner: rank}, "friedman": friedman_test(...) or None (< 2 datasets or
    learners), "cd", "q_alpha", "alpha", "cliques", "wtl": {learner: {other: {"wins",
    "ties", "losses"}}}, "wtl_total": {learner: {"wins", "ties", "losses"}},
    "dropped_datasets"}``. Means within ``tie_tol`` count as ties.
    """
    data = _collect(rows, metric)
    if None in data:
        raise ValueError("multi_dataset_summary needs a 'dataset' key on every row; "
                         f"{len(data[None])} learner(s) have rows without one")
    learners = list(dict.fromkeys(ln for per in data.values() for ln in per))
    datasets, dropped, mat = [], [], []
    for ds, per in data.items():
        if any(not per.get(ln) for ln in learners):
            dropped.append(ds)
            continue
        datasets.append(ds)
        mat.append([float(np.mean(list(per[ln].values()))) for ln in learners])
    if dropped:
        warnings.warn(f"multi_dataset_summary({metric!r}): dropped dataset(s) "
                      f"{', '.join(map(str, dropped))} (a learner has no value there)",
                      RuntimeWarning, stacklevel=2)
    k = len(learners)
    M = np.array(mat, dtype=float).reshape(len(datasets), k)
    out: dict[str, Any] = {"metric": metric, "higher_is_better": bool(higher_is_better),
                           "datasets": datasets, "learners": learners,
                           "matrix": M.tolist(), "alpha": alpha,
                           "dropped_datasets": dropped}
    if len(datasets) == 0:
        raise ValueError(f"no dataset has a {metric!r} value for every learner")
    R = average_ranks(M, higher_is_better)
    out["avg_ranks"] = {ln: float(v) for ln, v in zip(learners, R)}
    ok = len(datasets) >= 2 and k >= 2
    out["friedman"] = friedman_test(M, higher_is_better) if ok else None
    out["q_alpha"] = nemenyi_q(k, alpha) if k >= 2 else math.nan
    out["cd"] = nemenyi_cd(k, len(datasets), alpha) if k >= 2 else math.nan
    out["cliques"] = cd_cliques(out["avg_ranks"], out["cd"]) if k >= 2 else []
    sign = 1.0 if higher_is_better else -1.0
    diff = sign * (M[:, :, None] - M[:, None, :])  # > 0: row learner better on that dataset
    wins = (diff > tie_tol).sum(axis=0)
    losses = (diff < -tie_tol).sum(axis=0)
    ties = len(datasets) - wins - losses
    wtl: dict[str, dict[str, dict[str, int]]] = {}
    total: dict[str, dict[str, int]] = {}
    for i, a in enumerate(learners):
        wtl[a] = {b: {"wins": int(wins[i, j]), "ties": int(ties[i, j]),
                      "losses": int(losses[i, j])} for j, b in enumerate(learners) if j != i}
        total[a] = {key: int(sum(v[key] for v in wtl[a].values()))
                    for key in ("wins", "ties", "losses")}
    out["wtl"], out["wtl_total"] = wtl, total
    return out
