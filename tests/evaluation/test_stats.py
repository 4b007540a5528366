"""mimlkit.evaluation.stats against hand-computed values (arithmetic written out) and
Demšar's (2006) published Nemenyi table."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from mimlkit.evaluation.stats import (
    average_ranks,
    cd_cliques,
    corrected_resampled_ttest,
    friedman_test,
    holm,
    multi_dataset_summary,
    nemenyi_cd,
    nemenyi_q,
    pairwise_comparisons,
    wilcoxon_signed_rank,
)

# ---------------------------------------------------------------- corrected resampled t-test
A = [0.80, 0.82, 0.78, 0.84, 0.81]
B = [0.78, 0.79, 0.77, 0.80, 0.80]


def test_corrected_ttest_hand_computed():
    # d = [.02, .03, .01, .04, .01], J = 5, mean = .11 / 5 = .022
    # deviations -.002 .008 -.012 .018 -.012; squares sum = (4+64+144+324+144)e-6 = 680e-6
    # s^2 = 680e-6 / 4 = 170e-6; n_test / n_train = 100 / 200 = .5
    # corrected variance = (1/5 + .5) * 170e-6 = .7 * 170e-6 = 119e-6
    # t = .022 / sqrt(119e-6) = .022 / .0109087 = 2.01673
    t, p, md = corrected_resampled_ttest(A, B, n_train=200, n_test=100)
    assert md == pytest.approx(0.022)
    assert t == pytest.approx(0.022 / math.sqrt(119e-6), rel=1e-9)
    assert t == pytest.approx(2.01673, abs=1e-5)
    # Student t with 4 dof in closed form (Abramowitz & Stegun 26.7.4, even nu):
    # P(|T| < x) = sin(th) (1 + cos^2(th) / 2), th = arctan(x / 2); p = 1 - P(|T| < t)
    th = math.atan(t / 2)
    cdf = 0.5 + 0.5 * math.sin(th) * (1 + math.cos(th) ** 2 / 2)
    assert p == pytest.approx(2 * (1 - cdf), rel=1e-9)
    assert p == pytest.approx(0.1140, abs=5e-4)
    # the uncorrected paired t-test would give t = .022 / sqrt(170e-6 / 5) = 3.773 (p ~ .02)
    plain = sps.ttest_rel(A, B)
    assert plain.statistic == pytest.approx(0.022 / math.sqrt(170e-6 / 5), rel=1e-9)
    assert plain.pvalue < p
    # antisymmetric
    t2, p2, md2 = corrected_resampled_ttest(B, A, 200, 100)
    assert (t2, p2, md2) == pytest.approx((-t, p, -md))


def test_corrected_ttest_degenerate_and_bad_input():
    assert corrected_resampled_ttest([0.5, 0.6], [0.5, 0.6], 10, 5) == (0.0, 1.0, 0.0)
    t, p, md = corrected_resampled_ttest([0.6, 0.7], [0.5, 0.6], 10, 5)
    assert t == math.inf and p == 0.0 and md == pytest.approx(0.1)
    with pytest.raises(ValueError, match="at least 2"):
        corrected_resampled_ttest([1.0], [0.0], 10, 5)
    with pytest.raises(ValueError, match="equal lengths"):
        corrected_resampled_ttest([1.0, 2.0], [0.0], 10, 5)
    with pytest.raises(ValueError, match="NaN"):
        corrected_resampled_ttest([1.0, np.nan], [0.0, 1.0], 10, 5)


# ---------------------------------------------------------------- Wilcoxon and Holm
def test_wilcoxon_hand_computed():
    # all 5 differences positive: W- = 0; exact two-sided p = 2 / 2^5 = .0625
    w, p = wilcoxon_signed_rank([2, 3, 4, 5, 6], [1, 1, 1, 1, 1])
    assert w == 0.0 and p == pytest.approx(0.0625)
    # d = [1, -2, 3, 4, 5]: W- = rank(2) = 2, W+ = 13; P(W <= 2) = #{subsets of 1..5 with
    # sum <= 2} / 32 = ({}, {1}, {2}) 3 / 32 -> two-sided 6 / 32
    w, p = wilcoxon_signed_rank([1, -2, 3, 4, 5], [0, 0, 0, 0, 0])
    assert w == 2.0 and p == pytest.approx(6 / 32)
    assert wilcoxon_signed_rank([1, 2], [1, 2]) == (0.0, 1.0)


def test_holm_hand_example():
    # sorted: .005 x4 = .02, .01 x3 = .03, .03 x2 = .06, .04 x1 = .04 -> running max .06
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.5, 0.6]), [1.0, 1.0])  # .5 x2 = 1, then max(1, .6)
    out = holm([0.02, np.nan, 0.04])  # NaN does not count: m = 2
    np.testing.assert_allclose(out, [0.04, np.nan, 0.04])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([1.5])


# ---------------------------------------------------------------- Friedman / ranks / Nemenyi
# 4 datasets x 3 learners (higher is better)
M4 = [[0.90, 0.80, 0.70],   # ranks 1, 2, 3
      [0.85, 0.86, 0.70],   # ranks 2, 1, 3
      [0.70, 0.60, 0.60],   # ranks 1, 2.5, 2.5 (tie)
      [0.95, 0.90, 0.80]]   # ranks 1, 2, 3


def test_average_ranks_with_ties():
    # A: (1+2+1+1)/4 = 1.25, B: (2+1+2.5+2)/4 = 1.875, C: (3+3+2.5+3)/4 = 2.875
    np.testing.assert_allclose(average_ranks(M4, True), [1.25, 1.875, 2.875])
    # lower is better: every rank r becomes 4 - r
    np.testing.assert_allclose(average_ranks(M4, False), [2.75, 2.125, 1.125])
    with pytest.raises(ValueError, match="not finite"):
        average_ranks([[1.0, np.nan]], True)


def test_friedman_hand_computed():
    # sum R^2 = 1.5625 + 3.515625 + 8.265625 = 13.34375; k(k+1)^2/4 = 3 * 16 / 4 = 12
    # chi2 = 12 * 4 / (3 * 4) * (13.34375 - 12) = 4 * 1.34375 = 5.375
    # F = (N-1) chi2 / (N(k-1) - chi2) = 3 * 5.375 / (8 - 5.375) = 16.125 / 2.625 = 6.142857
    res = friedman_test(M4, higher_is_better=True)
    assert res["chi2"] == pytest.approx(5.375)
    assert res["f"] == pytest.approx(16.125 / 2.625)
    # chi2 with 2 dof: sf(x) = exp(-x/2); F(2, 6): sf(x) = (1 + 2x/6)^(-3)
    assert res["p_chi2"] == pytest.approx(math.exp(-5.375 / 2))
    assert res["p_f"] == pytest.approx((1 + 2 * (16.125 / 2.625) / 6) ** -3)
    assert res["n_datasets"] == 4 and res["k"] == 3
    np.testing.assert_allclose(res["avg_ranks"], [1.25, 1.875, 2.875])


def test_friedman_matches_scipy_without_ties():
    rng = np.random.default_rng(0)
    M = rng.random((8, 5))
    res = friedman_test(M, True)
    ref = sps.friedmanchisquare(*(-M).T)
    assert res["chi2"] == pytest.approx(ref.statistic)
    assert res["p_chi2"] == pytest.approx(ref.pvalue)


def test_friedman_identical_rankings_and_bad_shape():
    res = friedman_test([[3, 2, 1], [30, 20, 10]], True)  # chi2 = N(k-1) = 4
    assert res["chi2"] == pytest.approx(4.0) and res["f"] == math.inf and res["p_f"] == 0.0
    with pytest.raises(ValueError, match=">= 2 datasets"):
        friedman_test([[1, 2, 3]], True)


# Demšar (2006), Table 5a: q_0.05 and q_0.10 for k = 2 .. 10
Q05 = [1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102, 3.164]
Q10 = [1.645, 2.052, 2.291, 2.459, 2.589, 2.693, 2.780, 2.855, 2.920]


@pytest.mark.parametrize("k", range(2, 11))
def test_nemenyi_against_demsar_table(k):
    assert nemenyi_q(k, 0.05) == pytest.approx(Q05[k - 2], abs=1e-3)
    assert nemenyi_q(k, 0.10) == pytest.approx(Q10[k - 2], abs=1e-3)
    for n in (5, 14, 30):
        assert nemenyi_cd(k, n) == pytest.approx(
            Q05[k - 2] * math.sqrt(k * (k + 1) / (6 * n)), abs=1e-3)


def test_nemenyi_demsar_worked_example():
    # Demšar section 3.2.2: k = 4, N = 14: CD = 2.569 sqrt(4 * 5 / (6 * 14)) = 1.25
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=5e-3)


def test_cd_cliques():
    ranks = {"a": 1.0, "b": 1.5, "c": 2.4, "d": 3.9}
    # cd = 1.0: a-b (0.5 < 1), b-c (0.9 < 1), c alone with d (1.5 >= 1)
    assert cd_cliques(ranks, 1.0) == [["a", "b"], ["b", "c"]]
    assert cd_cliques(ranks, 5.0) == [["a", "b", "c", "d"]]
    assert cd_cliques(ranks, 0.1) == []


# ---------------------------------------------------------------- tidy rows
def _rows(values: dict, dataset: str | None = None) -> list[dict]:
    rows = []
    for learner, vals in values.items():
        for split, v in enumerate(vals):
            r = {"learner": learner, "split": split, "metric": "average_precision",
                 "label": None, "value": v}
            if dataset is not None:
                r["dataset"] = dataset
            rows.append(r)
            rows.append({**r, "metric": "per_label_ap", "label": "x", "value": 0.0})
    return rows


def test_pairwise_comparisons_from_rows():
    C = [0.60, 0.61, 0.59, 0.62, 0.60]
    rows = _rows({"a": A, "b": B, "c": C})
    rows.append({"learner": "c", "split": 9, "metric": "error", "label": None,
                 "value": float("nan"), "error": "boom"})
    out = pairwise_comparisons(rows, "average_precision", True, 200, 100)
    assert [(r["learner_a"], r["learner_b"]) for r in out] == [("a", "b"), ("a", "c"),
                                                                ("b", "c")]
    ab = out[0]
    t, p, md = corrected_resampled_ttest(A, B, 200, 100)
    assert (ab["t"], ab["p_ttest"], ab["mean_diff"]) == pytest.approx((t, p, md))
    assert ab["n_splits"] == 5 and ab["mean_a"] == pytest.approx(np.mean(A))
    assert ab["p_wilcoxon"] == pytest.approx(wilcoxon_signed_rank(A, B)[1])
    np.testing.assert_allclose([r["p_ttest_holm"] for r in out],
                               holm([r["p_ttest"] for r in out]))
    assert ab["better"] is None  # p ~ .11 before correction
    assert out[1]["better"] == "a" and out[2]["better"] == "b"  # c far below
    # lower is better flips the winner
    low = pairwise_comparisons(rows, "average_precision", False, 200, 100)
    assert low[1]["better"] == "c"
    # reference mode: (learner, reference) for every other learner, Holm over 2 tests
    ref = pairwise_comparisons(rows, "average_precision", True, 200, 100, reference="c")
    assert [(r["learner_a"], r["learner_b"]) for r in ref] == [("a", "c"), ("b", "c")]
    with pytest.raises(ValueError, match="reference learner 'zz'"):
        pairwise_comparisons(rows, "average_precision", True, 200, 100, reference="zz")
    with pytest.raises(ValueError, match="no row holds metric"):
        pairwise_comparisons(rows, "nope", True, 200, 100)


def test_pairwise_pairs_by_split_and_per_dataset():
    rows = _rows({"a": A, "b": B}, "d1") + _rows({"a": B, "b": A[:3]}, "d2")
    # shuffle row order: pairing must use the split key, not the position
    rows = rows[::-1]
    out = pairwise_comparisons(rows, "average_precision", True,
                               {"d1": 200, "d2": 50}, {"d1": 100, "d2": 50})
    by = {r["dataset"]: r for r in out}
    # learners in first-appearance order: reversed rows -> pair (b, a)
    assert (by["d1"]["learner_a"], by["d1"]["learner_b"]) == ("b", "a")
    assert by["d1"]["t"] == pytest.approx(corrected_resampled_ttest(B, A, 200, 100)[0])
    assert by["d2"]["n_splits"] == 3
    assert by["d2"]["t"] == pytest.approx(corrected_resampled_ttest(A[:3], B[:3], 50, 50)[0])
    dup = _rows({"a": A, "b": B}) + _rows({"a": [0.1]})
    with pytest.raises(ValueError, match="two 'average_precision' values for split 0"):
        pairwise_comparisons(dup, "average_precision", True, 10, 5)


def test_multi_dataset_summary_hand_example():
    rows = []
    for d, vals in enumerate(M4):
        for ln, v in zip("ABC", vals):
            for split, eps in enumerate((-0.01, 0.01)):  # mean over splits = v
                rows.append({"dataset": f"d{d}", "learner": ln, "split": split,
                             "metric": "average_precision", "value": v + eps})
    # a dataset where C failed is dropped with a warning
    rows += [{"dataset": "broken", "learner": ln, "split": 0, "metric": "average_precision",
              "value": 0.5} for ln in "AB"]
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = multi_dataset_summary(rows, "average_precision", True)
    assert any("broken" in str(x.message) for x in w)
    assert s["dropped_datasets"] == ["broken"]
    assert s["learners"] == ["A", "B", "C"] and s["datasets"] == ["d0", "d1", "d2", "d3"]
    np.testing.assert_allclose(s["matrix"], M4)
    assert s["avg_ranks"] == pytest.approx({"A": 1.25, "B": 1.875, "C": 2.875})
    assert s["friedman"]["chi2"] == pytest.approx(5.375)
    assert s["cd"] == pytest.approx(nemenyi_cd(3, 4))
    assert s["q_alpha"] == pytest.approx(2.343, abs=1e-3)
    # A vs B: A better on d0, d2, d3, worse on d1; B vs C: better on d0, d1, d3, tie on d2
    assert s["wtl"]["A"]["B"] == {"wins": 3, "ties": 0, "losses": 1}
    assert s["wtl"]["B"]["A"] == {"wins": 1, "ties": 0, "losses": 3}
    assert s["wtl"]["B"]["C"] == {"wins": 3, "ties": 1, "losses": 0}
    assert s["wtl_total"]["C"] == {"wins": 0, "ties": 1, "losses": 7}
    # CD = 2.343 sqrt(12 / 24) = 1.657: A-B (0.625) and B-C (1.0) not different, A-C (1.625)
    # not different either
    assert s["cliques"] == [["A", "B", "C"]]


def test_multi_dataset_summary_needs_dataset_key():
    with pytest.raises(ValueError, match="'dataset' key"):
        multi_dataset_summary(_rows({"a": A, "b": B}), "average_precision", True)
