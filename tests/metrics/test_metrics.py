"""mimlkit.metrics against scikit-learn (where definitions coincide) and hand-computed cases
(where they differ), following specs/metrics.md.

Tie rule (issue 13 item 7, docs/metrics.md): ties are pessimistic under every convention. The
spec's older rules (optimistic one-error and label-index tie-break under 'zhang', max-rank LRAP
under 'sklearn') let a constant scorer look good; the tests below that used them now assert
the pessimistic values, each with a comment. Tie rules are tested in depth in
test_tie_rules.py."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

import mimlkit.metrics as M

# spec section 3.1 reference fixture
Y_FIX = np.array([[1, 0, 0], [0, 0, 0], [1, 1, 1], [0, 1, 1]])
F_FIX = np.array([[.5, .5, .1], [.2, .3, .4], [.1, .2, .3], [.3, .3, .3]])


def _random(seed: int, p: int = 300, q: int = 7, ties: bool = True, degenerate: bool = True):
    rng = np.random.default_rng(seed)
    Y = (rng.random((p, q)) < 0.3).astype(np.int8)
    if not degenerate:
        Y[Y.sum(axis=1) == 0, rng.integers(0, q)] = 1
        full = Y.sum(axis=1) == q
        Y[full, 0] = 0
    else:
        Y[:5] = 0
        Y[5:10] = 1
    S = rng.integers(0, 4, (p, q)).astype(float) if ties else rng.normal(size=(p, q))
    H = (rng.random((p, q)) < 0.3).astype(np.int8)
    return Y, S, H


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ties", [True, False])
def test_sklearn_agreement_ranking(seed, ties):
    Y, S, _ = _random(seed, ties=ties)
    assert M.ranking_loss(Y, S, convention="sklearn") == pytest.approx(
        skm.label_ranking_loss(Y, S), abs=1e-9)
    assert M.coverage(Y, S, convention="sklearn") == pytest.approx(
        skm.coverage_error(Y, S), abs=1e-9)
    assert M.coverage(Y, S, convention="sklearn", normalize=True) == pytest.approx(
        (skm.coverage_error(Y, S) - 1) / Y.shape[1], abs=1e-9)
    lrap = skm.label_ranking_average_precision_score(Y, S)
    if ties:
        # pessimistic ties: never above LRAP's max-rank rule (equal only without ties)
        assert M.average_precision(Y, S, convention="sklearn") < lrap
    else:
        assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(lrap, abs=1e-9)


@pytest.mark.parametrize("seed", range(4))
def test_sklearn_agreement_label_based(seed):
    Y, S, H = _random(seed, ties=seed % 2 == 0)
    Y[:, 0] = 0  # one label without positives
    assert M.macro_auc(Y, S) == pytest.approx(
        np.nanmean(skm.roc_auc_score(Y[:, 1:], S[:, 1:], average=None)), abs=1e-9)
    assert M.macro_auc(Y[:, 1:], S[:, 1:]) == pytest.approx(
        skm.roc_auc_score(Y[:, 1:], S[:, 1:], average="macro"), abs=1e-9)
    np.testing.assert_allclose(M.per_label_average_precision(Y, S),
                               skm.average_precision_score(Y, S, average=None), atol=1e-9)
    assert M.mean_average_precision(Y, S) == pytest.approx(
        skm.average_precision_score(Y, S, average="macro"), abs=1e-9)
    assert M.micro_f1(Y, H) == pytest.approx(skm.f1_score(Y, H, average="micro"), abs=1e-12)
    assert M.macro_f1(Y, H) == pytest.approx(skm.f1_score(Y, H, average="macro"), abs=1e-12)
    assert M.example_f1(Y, H, convention="sklearn") == pytest.approx(
        skm.f1_score(Y, H, average="samples"), abs=1e-12)
    assert M.example_f1(Y, H) == pytest.approx(
        skm.f1_score(Y, H, average="samples", zero_division=1.0), abs=1e-12)
    assert M.hamming_loss(Y, H) == pytest.approx(skm.hamming_loss(Y, H), abs=1e-12)
    assert M.subset_accuracy(Y, H) == pytest.approx(skm.accuracy_score(Y, H), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_zhang_equals_sklearn_without_ties_or_degenerate(seed):
    Y, S, _ = _random(seed, ties=False, degenerate=False)
    assert M.coverage(Y, S) == pytest.approx(skm.coverage_error(Y, S) - 1, abs=1e-9)
    assert M.ranking_loss(Y, S) == pytest.approx(skm.label_ranking_loss(Y, S), abs=1e-9)
    assert M.average_precision(Y, S) == pytest.approx(
        skm.label_ranking_average_precision_score(Y, S), abs=1e-9)
    top = S.argmax(axis=1)
    assert M.one_error(Y, S) == pytest.approx(1 - Y[np.arange(len(Y)), top].mean())
    assert M.one_error(Y, S, convention="sklearn") == pytest.approx(M.one_error(Y, S))


def test_ranking_loss_sklearn_is_scaled_zhang():
    Y, S, _ = _random(7, ties=True, degenerate=True)
    n_ok = int(((Y.sum(1) > 0) & (Y.sum(1) < Y.shape[1])).sum())
    assert M.ranking_loss(Y, S, convention="sklearn") == pytest.approx(
        n_ok / len(Y) * M.ranking_loss(Y, S), abs=1e-12)


def test_reference_fixture_sklearn_and_zhang():
    assert skm.coverage_error(Y_FIX, F_FIX) == pytest.approx(2.0)
    assert M.coverage(Y_FIX, F_FIX, convention="sklearn") == pytest.approx(2.0)
    # pessimistic ties (max rank; the spec's 0.75 used the label-index tie-break):
    # per bag max rank 2, 0 (empty), 3, 3 -> 8/4 - 1
    assert M.coverage(Y_FIX, F_FIX) == pytest.approx(1.0)
    assert M.coverage(Y_FIX, F_FIX, normalize=True) == pytest.approx(1 / 3)
    assert M.ranking_loss(Y_FIX, F_FIX, convention="sklearn") == pytest.approx(0.375)
    assert M.ranking_loss(Y_FIX, F_FIX) == pytest.approx(0.75)
    # pessimistic ties: bag 0 puts irrelevant label 1 above label 0 (AP 1/2); bag 3 (all tied,
    # 2 relevant of 3) puts them at ranks 2, 3: (1/2 + 2/3) / 2 = 7/12 (LRAP gave 2/3)
    assert M.average_precision(Y_FIX, F_FIX, convention="sklearn") == pytest.approx(
        0.5 / 4 + 1 / 4 + 1 / 4 + (7 / 12) / 4)
    assert M.average_precision(Y_FIX, F_FIX) == pytest.approx((0.5 + 7 / 12) / 2)
    # pessimistic ties: bags 0 and 3 have an irrelevant label among the top ones (was 0.0)
    assert M.one_error(Y_FIX, F_FIX) == 1.0
    # sklearn convention: pessimistic ties, empty bag always an error, full bag never
    assert M.one_error(Y_FIX, F_FIX, convention="sklearn") == pytest.approx(0.75)


def test_details_report_exclusions():
    v, d = M.ranking_loss(Y_FIX, F_FIX, return_details=True)
    assert v == pytest.approx(0.75) and d == {"n_used": 2, "n_excluded": 2}
    v, d = M.ranking_loss(Y_FIX, F_FIX, convention="sklearn", return_details=True)
    assert d["n_excluded"] == 0
    _, d = M.one_error(Y_FIX, F_FIX, return_details=True)
    assert d["n_used"] == 2


def test_zhang_coverage_empty_bag_counts_minus_one_and_warns():
    Y = np.array([[0, 0, 0], [1, 0, 0]])
    S = np.array([[.1, .2, .3], [.3, .2, .1]])
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        value = M.coverage(Y, S)
    assert any("no relevant label" in str(x.message) for x in w)
    # bag 1: label 0 at rank 1 -> (0 + 1)/2 - 1
    assert value == pytest.approx(-0.5)
    assert M.coverage(Y, S, convention="sklearn") == pytest.approx(0.5)


def test_all_tied_rows_are_pessimistic_in_both_conventions():
    # all tied: formerly Zhang's stable sort ranked the larger index higher (coverage 1.0,
    # AP 2/3 here, depending on label order); now the relevant label ranks last in both bags
    Y = np.array([[1, 0, 0], [0, 0, 1]])
    S = np.zeros((2, 3))
    assert M.coverage(Y, S) == pytest.approx(3 - 1)
    assert M.average_precision(Y, S) == pytest.approx(1 / 3)
    assert M.one_error(Y, S) == 1.0
    # the same in the sklearn convention
    assert M.coverage(Y, S, convention="sklearn") == pytest.approx(3.0)
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(1 / 3)
    assert M.ranking_loss(Y, S) == pytest.approx(1.0)  # ties are errors


def test_degenerate_rows_both_conventions():
    Y = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0]])
    S = np.array([[.1, .2, .3], [.3, .2, .1], [.9, .2, .1]])
    assert M.average_precision(Y, S) == pytest.approx(1.0)  # only the last bag
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(1.0)
    assert M.ranking_loss(Y, S) == 0.0
    assert M.one_error(Y, S, convention="sklearn") == pytest.approx(1 / 3)
    # all bags degenerate: NaN under zhang, defined under sklearn
    Yd = np.array([[0, 0], [1, 1]])
    Sd = np.array([[.1, .2], [.3, .4]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.isnan(M.ranking_loss(Yd, Sd))
        assert np.isnan(M.average_precision(Yd, Sd))
        assert np.isnan(M.one_error(Yd, Sd))
    assert M.ranking_loss(Yd, Sd, convention="sklearn") == 0.0
    assert M.average_precision(Yd, Sd, convention="sklearn") == 1.0
    assert M.average_precision(Yd, Sd, convention="sklearn") == pytest.approx(
        skm.label_ranking_average_precision_score(Yd, Sd))


def test_constant_scores():
    rng = np.random.default_rng(3)
    Y = (rng.random((50, 5)) < 0.4).astype(int)
    Y[Y.sum(1) == 0, 0] = 1
    S = np.ones(Y.shape)
    assert M.ranking_loss(Y, S, convention="sklearn") == pytest.approx(
        skm.label_ranking_loss(Y, S))
    assert M.coverage(Y, S, convention="sklearn") == pytest.approx(5.0)
    # pessimistic ties: the k relevant labels of a bag rank last, AP = mean_j j/(q-k+j)
    # (LRAP's max rank gives k/q, which is higher)
    k = Y.sum(1)
    worst = [np.mean([j / (5 - n + j) for j in range(1, n + 1)]) for n in k]
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(
        np.mean(np.where(k == 5, 1.0, worst)))
    assert M.average_precision(Y, S, convention="sklearn") < (
        skm.label_ranking_average_precision_score(Y, S))
    assert M.macro_auc(Y, S) == pytest.approx(0.5)
    np.testing.assert_allclose(M.per_label_average_precision(Y, S),
                               skm.average_precision_score(Y, S, average=None), atol=1e-12)
    # pessimistic (was 0.0 under the optimistic rule): every non-degenerate bag is an error
    assert M.one_error(Y, S) == 1.0
    # pessimistic: error unless every label is relevant
    assert M.one_error(Y, S, convention="sklearn") == pytest.approx(
        np.mean(Y.sum(1) < 5))


def test_map_tied_block_and_empty_label_option():
    y = np.array([[1], [0], [1], [0]])
    s = np.array([[.5], [.5], [.5], [.1]])
    assert M.mean_average_precision(y, s) == pytest.approx(2 / 3)
    Y = np.array([[1, 0], [0, 0], [1, 0]])
    S = np.array([[.9, .1], [.2, .5], [.8, .3]])
    assert M.mean_average_precision(Y, S) == pytest.approx(0.5)
    assert M.mean_average_precision(Y, S, empty_label="skip") == pytest.approx(1.0)


def test_macro_auc_undefined_labels():
    Y = np.array([[1, 1], [0, 1], [1, 1]])
    S = np.array([[.9, .1], [.2, .5], [.8, .3]])
    v, d = M.macro_auc(Y, S, return_details=True)
    assert v == pytest.approx(1.0) and d["n_excluded"] == 1
    assert M.macro_auc(Y, S, undefined=0.5) == pytest.approx(0.75)


def test_example_f1_both_empty_conventions():
    Y = np.array([[0, 0], [1, 0]])
    H = np.array([[0, 0], [1, 1]])
    assert M.example_f1(Y, H) == pytest.approx((1 + 2 / 3) / 2)
    assert M.example_f1(Y, H, convention="sklearn") == pytest.approx((0 + 2 / 3) / 2)


def test_overall_score_is_mean_of_four():
    Y, S, H = _random(11)
    expect = np.mean([skm.f1_score(Y, H, average="micro"), skm.f1_score(Y, H, average="macro"),
                      skm.accuracy_score(Y, H), skm.average_precision_score(Y, S)])
    assert M.overall_score(Y, S, H) == pytest.approx(expect, abs=1e-9)


def test_rejects_unobserved_and_bad_input():
    Y = np.array([[1, -1], [0, 1]])
    S = np.zeros((2, 2))
    with pytest.raises(ValueError, match="-1"):
        M.ranking_loss(Y, S)
    with pytest.raises(ValueError, match="row 1"):
        M.hamming_loss(np.array([[1, 0], [2, 0]]), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shape"):
        M.coverage(np.eye(2), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        M.average_precision(np.eye(2), np.array([[0.0, np.nan], [1, 0]]))
    with pytest.raises(ValueError, match="convention"):
        M.one_error(np.eye(2), np.eye(2), convention="matlab")
    np.testing.assert_array_equal(M.from_pm1([[1, -1], [-1, 1]]), [[1, 0], [0, 1]])


def test_chunking_and_dtypes_give_same_values(monkeypatch):
    Y, S, _ = _random(5, p=500, q=9)
    ref = {c: (M.ranking_loss(Y, S, convention=c), M.average_precision(Y, S, convention=c),
               M.coverage(Y, S, convention=c), M.one_error(Y, S, convention=c))
           for c in ("zhang", "sklearn")}
    ref_map = M.mean_average_precision(Y, S)
    monkeypatch.setattr(M, "_CHUNK_CELLS", 40)  # many small chunks
    for c in ("zhang", "sklearn"):
        got = (M.ranking_loss(Y, S, convention=c), M.average_precision(Y, S, convention=c),
               M.coverage(Y, S, convention=c), M.one_error(Y, S, convention=c))
        np.testing.assert_allclose(got, ref[c], atol=1e-12)
        got32 = (M.ranking_loss(Y, S.astype(np.float32), convention=c),
                 M.average_precision(Y, S.astype(np.float32), convention=c))
        np.testing.assert_allclose(got32, ref[c][:2], atol=1e-12)
    assert M.mean_average_precision(Y, S) == pytest.approx(ref_map, abs=1e-12)


def test_sparse_and_list_inputs():
    from scipy import sparse

    Y, S, H = _random(2)
    assert M.ranking_loss(sparse.csr_matrix(Y), S) == pytest.approx(M.ranking_loss(Y, S))
    assert M.hamming_loss(Y.tolist(), sparse.csr_matrix(H)) == pytest.approx(
        M.hamming_loss(Y, H))


def test_registry_and_compute_metrics():
    assert set(M.DEFAULT_METRICS) <= set(M.METRICS)
    assert not M.METRICS["ranking_loss"].greater_is_better
    assert M.METRICS["average_precision"].greater_is_better
    assert M.resolve_metric("mAP") == "mean_average_precision"
    with pytest.raises(ValueError, match="unknown metric"):
        M.resolve_metric("nope")
    Y, S, H = _random(1)
    out = M.compute_metrics(Y, S, H)
    assert list(out) == list(M.DEFAULT_METRICS)
    assert out["coverage_norm"] == pytest.approx(M.coverage(Y, S, normalize=True))
    only_scores = M.compute_metrics(Y, S)
    assert "micro_f1" not in only_scores and "ranking_loss" in only_scores
    with pytest.raises(ValueError, match="needs Y_pred"):
        M.compute_metrics(Y, S, metrics=["hamming_loss"])
    names = [f"l{i}" for i in range(Y.shape[1])]
    out, det = M.compute_metrics(Y, S, H, metrics=["per_label_ap", "overall", "macro_auc"],
                                 label_names=names, return_details=True)
    assert list(out["per_label_ap"]) == names
    assert out["overall"] == pytest.approx(M.overall_score(Y, S, H))
    assert det["macro_auc"]["n_excluded"] == 0
    sk = M.compute_metrics(Y, S, H, metrics=["ranking_loss"], convention="sklearn")
    assert sk["ranking_loss"] == pytest.approx(skm.label_ranking_loss(Y, S))


@pytest.mark.parametrize("density", [0.1, 0.6])
def test_sparse_and_dense_label_paths_agree_with_sklearn(density):
    rng = np.random.default_rng(int(density * 10))
    Y = (rng.random((400, 12)) < density).astype(np.int8)
    for S in (rng.normal(size=Y.shape), rng.integers(0, 3, Y.shape).astype(float)):
        assert M.ranking_loss(Y, S, convention="sklearn") == pytest.approx(
            skm.label_ranking_loss(Y, S), abs=1e-9)
    # AP: scikit-learn's LRAP on untied scores; the worst-tie-break loop on tied ones
    S = rng.normal(size=Y.shape)
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(
        skm.label_ranking_average_precision_score(Y, S), abs=1e-9)
    S = rng.integers(0, 3, Y.shape).astype(float)
    assert M.average_precision(Y, S, convention="sklearn") == pytest.approx(
        _loop_pessimistic_ap(Y, S, degenerate=1.0), abs=1e-12)


def _loop_pessimistic_ap(Y, S, degenerate=None):
    """Loop reference: strict ranks from sorting by (score descending, irrelevant first);
    degenerate bags are skipped (``degenerate=None``) or score ``degenerate``."""
    vals = []
    for y, s in zip(Y, S):
        q = len(y)
        if y.sum() in (0, q):
            if degenerate is not None:
                vals.append(degenerate)
            continue
        order = np.lexsort((y, -s))  # primary key -s, then irrelevant (0) before relevant
        rank = np.empty(q, int)
        rank[order] = np.arange(1, q + 1)
        rel = np.flatnonzero(y)
        vals.append(np.mean([(rank[rel] <= rank[l]).sum() / rank[l] for l in rel]))
    return float(np.mean(vals))


def test_zhang_ap_matches_loop_reference_with_ties():
    """Loop reference of the pessimistic rule (replaces Zhang's stable-sort tie-break)."""
    rng = np.random.default_rng(4)
    Y = (rng.random((150, 6)) < 0.4).astype(int)
    S = rng.integers(0, 3, Y.shape).astype(float)
    assert M.average_precision(Y, S) == pytest.approx(_loop_pessimistic_ap(Y, S), abs=1e-12)


@pytest.mark.parametrize("density", [0.15, 0.7])
def test_zhang_ap_sparse_and_dense_paths_match_loop(density):
    rng = np.random.default_rng(9)
    Y = (rng.random((300, 10)) < density).astype(np.int8)
    S = rng.integers(0, 3, Y.shape).astype(float)
    assert M.average_precision(Y, S) == pytest.approx(_loop_pessimistic_ap(Y, S), abs=1e-12)
