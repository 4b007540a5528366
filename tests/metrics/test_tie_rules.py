"""Tie rules of the ranking metrics (issue 13 item 7, docs/metrics.md "Tie rules").

Oracle: every example-based ranking metric must equal its *worst* value over all strict
orderings that agree with the scores (all tie-breaks), computed here by enumerating the
permutations of small rows. Hence a constant scorer gets the worst value any ranking can get.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

import mimlkit.metrics as M

CONVENTIONS = ("zhang", "sklearn")


def _strict_bag(y: np.ndarray, rank: np.ndarray) -> dict[str, float]:
    """Per-bag values for a strict ranking (rank 1 = top)."""
    q = len(y)
    rel = np.flatnonzero(y)
    irr = np.flatnonzero(~y)
    k = len(rel)
    out = {"oe": float(not y[np.argmin(rank)]),
           "cov": float(rank[rel].max()) if k else 0.0}
    if 0 < k < q:
        out["rl"] = float(np.mean(rank[rel][:, None] > rank[irr][None, :]))
        out["ap"] = float(np.mean([(rank[rel] <= rank[l]).sum() / rank[l] for l in rel]))
    return out


def _worst_over_tie_breaks(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    """Worst per-bag value over all orderings consistent with the scores."""
    q = len(y)
    worst: dict[str, float] = {}
    for perm in itertools.permutations(range(q)):
        if np.any(np.diff(s[list(perm)]) > 0):  # must be non-increasing along the order
            continue
        rank = np.empty(q, int)
        rank[list(perm)] = np.arange(1, q + 1)
        for key, v in _strict_bag(y, rank).items():
            better_low = key != "ap"
            if key not in worst:
                worst[key] = v
            else:
                worst[key] = max(worst[key], v) if better_low else min(worst[key], v)
    return worst


def _oracle(Y: np.ndarray, S: np.ndarray, convention: str) -> dict[str, float]:
    Y = Y.astype(bool)
    q = Y.shape[1]
    per = [_worst_over_tie_breaks(y, s) for y, s in zip(Y, S)]
    deg = np.array([y.sum() in (0, q) for y in Y])
    cov = np.mean([d["cov"] for d in per])
    if convention == "zhang":
        used = [d for d, g in zip(per, deg) if not g]
        mean = (lambda key: np.mean([d[key] for d in used])) if used else (lambda key: np.nan)
        return {"oe": mean("oe"), "rl": mean("rl"), "ap": mean("ap"), "cov": cov - 1}
    return {"oe": np.mean([d["oe"] for d in per]),
            "rl": np.mean([d.get("rl", 0.0) for d in per]),
            "ap": np.mean([d.get("ap", 1.0) for d in per]), "cov": cov}


def _ours(Y, S, convention):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return {"oe": M.one_error(Y, S, convention=convention),
                "rl": M.ranking_loss(Y, S, convention=convention),
                "ap": M.average_precision(Y, S, convention=convention),
                "cov": M.coverage(Y, S, convention=convention)}


@st.composite
def _tied_problem(draw):
    p = draw(st.integers(1, 6))
    q = draw(st.integers(1, 5))
    Y = draw(arrays(np.int8, (p, q), elements=st.integers(0, 1)))
    levels = draw(st.integers(1, 3))  # few distinct values -> heavy ties
    S = draw(arrays(np.float64, (p, q), elements=st.integers(0, levels - 1).map(float)))
    return Y, S


@settings(max_examples=150, deadline=None)
@given(_tied_problem())
def test_every_ranking_metric_is_its_worst_tie_break(problem):
    Y, S = problem
    for conv in CONVENTIONS:
        ours, ref = _ours(Y, S, conv), _oracle(Y, S, conv)
        for key in ref:
            np.testing.assert_allclose(ours[key], ref[key], atol=1e-12, err_msg=f"{conv} {key}")


@settings(max_examples=40, deadline=None)
@given(_tied_problem())
def test_sparse_and_dense_paths_agree_on_ties(problem):
    Y, S = problem
    # tile the rows: many labels per row -> dense path; one relevant column -> sparse path
    for Yx in (Y, np.zeros_like(Y)):
        Yx = Yx.copy()
        Yx[:, 0] = 1
        for conv in CONVENTIONS:
            np.testing.assert_allclose(_ours(Yx, S, conv)["ap"], _oracle(Yx, S, conv)["ap"],
                                       atol=1e-12)


@pytest.mark.parametrize("q", [2, 3, 5, 8])
def test_constant_scorer_gets_the_worst_value(q):
    rng = np.random.default_rng(q)
    Y = (rng.random((200, q)) < 0.4).astype(np.int8)
    Y[Y.sum(1) == 0, 0] = 1
    Y[Y.sum(1) == q, 0] = 0  # no degenerate bag: every bag can be ranked badly
    k = Y.sum(1)
    worst_ap = np.mean([np.mean([j / (q - n + j) for j in range(1, n + 1)]) for n in k])
    for c in (0.0, 0.7, -3.0):
        S = np.full(Y.shape, c)
        for conv in CONVENTIONS:
            off = 1.0 if conv == "zhang" else 0.0
            assert M.one_error(Y, S, convention=conv) == 1.0
            assert M.ranking_loss(Y, S, convention=conv) == 1.0
            assert M.coverage(Y, S, convention=conv) == pytest.approx(q - off)
            assert M.coverage(Y, S, convention=conv, normalize=True) == pytest.approx((q - 1) / q)
            assert M.average_precision(Y, S, convention=conv) == pytest.approx(worst_ap)
        # the runner's entry point, default convention
        out = M.compute_metrics(Y, S)
        assert out["one_error"] == 1.0 and out["ranking_loss"] == 1.0
        assert out["coverage_norm"] == pytest.approx((q - 1) / q)
        # the exact worst strict ranking (relevant labels last) gets the same values
        S_bad = np.where(Y, 0.0, 1.0)
        for conv in CONVENTIONS:
            assert M.average_precision(Y, S_bad, convention=conv) == pytest.approx(worst_ap)
            assert M.coverage(Y, S_bad, convention=conv) == pytest.approx(
                q - (conv == "zhang"))


def test_constant_scorer_never_beats_random_scorers():
    rng = np.random.default_rng(0)
    Y = (rng.random((300, 6)) < 0.3).astype(np.int8)
    S0 = np.zeros(Y.shape)
    fns = {"one_error": (M.one_error, False), "ranking_loss": (M.ranking_loss, False),
           "coverage": (M.coverage, False), "average_precision": (M.average_precision, True)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(20):
            S = rng.normal(size=Y.shape)
            for conv in CONVENTIONS:
                for name, (fn, higher) in fns.items():
                    c, r = fn(Y, S0, convention=conv), fn(Y, S, convention=conv)
                    assert (c <= r) if higher else (c >= r), (name, conv)


def test_partially_tied_rows_hand_computed():
    # q = 4, relevant {0, 2}; scores 0.9 (label 0) tied with irrelevant label 1, then 0.5
    # (label 2) tied with irrelevant label 3. Worst tie-break order: 1, 0, 3, 2
    Y = np.array([[1, 0, 1, 0]])
    S = np.array([[0.9, 0.9, 0.5, 0.5]])
    assert M.one_error(Y, S) == 1.0  # label 1 may be on top
    assert M.coverage(Y, S) == pytest.approx(4 - 1)  # label 2 at rank 4
    assert M.ranking_loss(Y, S) == pytest.approx(3 / 4)  # (0,1) (2,1) (2,3) of 4 pairs
    assert M.average_precision(Y, S) == pytest.approx((1 / 2 + 2 / 4) / 2)
    # relevant labels tied only with each other lose nothing
    S2 = np.array([[0.9, 0.1, 0.9, 0.1]])
    assert M.one_error(Y, S2) == 0.0
    assert M.average_precision(Y, S2) == 1.0
    assert M.coverage(Y, S2) == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(3))
def test_untied_scores_unchanged_against_sklearn(seed):
    """Without ties the pessimistic rule changes nothing: scikit-learn's values (and the
    MATLAB toolboxes', Zhang = sklearn without degenerate bags, coverage - 1)."""
    rng = np.random.default_rng(seed)
    Y = (rng.random((400, 9)) < 0.3).astype(np.int8)
    S = rng.normal(size=Y.shape)
    assert M.ranking_loss(Y, S, convention="sklearn") == pytest.approx(
        skm.label_ranking_loss(Y, S), abs=1e-12)
    assert M.coverage(Y, S, convention="sklearn") == pytest.approx(
        skm.coverage_error(Y, S), abs=1e-12)
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(
        skm.label_ranking_average_precision_score(Y, S), abs=1e-12)
    ok = (Y.sum(1) > 0) & (Y.sum(1) < Y.shape[1])
    assert M.average_precision(Y, S) == pytest.approx(
        skm.label_ranking_average_precision_score(Y[ok], S[ok]), abs=1e-12)
    assert M.ranking_loss(Y, S) == pytest.approx(skm.label_ranking_loss(Y[ok], S[ok]),
                                                 abs=1e-12)
    top = S.argmax(1)
    assert M.one_error(Y, S) == pytest.approx(1 - Y[ok][np.arange(ok.sum()), top[ok]].mean())


def _expected_random_ap(y: np.ndarray) -> float:
    """Exact mean per-label AP over all orderings of a small column."""
    vals = []
    for perm in itertools.permutations(range(len(y))):
        ys = y[list(perm)]
        hits = np.cumsum(ys)
        vals.append(np.mean((hits / np.arange(1, len(y) + 1))[ys == 1]))
    return float(np.mean(vals))


def test_label_based_metrics_give_constant_scores_chance_not_better():
    """macro-AUC and per-label AP keep scikit-learn's tie rules: constant scores get 0.5 and
    the prevalence, never above what a random ordering gets on average."""
    Y = np.array([[1, 0], [0, 1], [0, 1], [1, 1], [0, 0], [0, 1]])
    S = np.zeros(Y.shape)
    assert M.macro_auc(Y, S) == 0.5
    ap = M.per_label_average_precision(Y, S)
    np.testing.assert_allclose(ap, Y.mean(0))
    for col in range(Y.shape[1]):
        assert ap[col] <= _expected_random_ap(Y[:, col]) + 1e-12
