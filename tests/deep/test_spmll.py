"""Single-positive protocol: reproducible kept positives and splits, AP, correction, schedules."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from mimlkit.deep.spmll import (
    APLabelCorrector,
    SmoothingSchedule,
    SPMLLProtocol,
    apply_schedules,
    hidden_positive_budget,
    make_single_positive,
    mean_ap,
    per_label_ap,
    spmll_split,
)


def _Y(n=60, c=5, seed=0):
    g = np.random.default_rng(seed)
    Y = (g.random((n, c)) < 0.4).astype(np.int8)
    Y[np.arange(n), g.integers(0, c, n)] = 1
    return Y


def test_single_positive_keeps_one_true_positive_and_is_seeded():
    Y = _Y()
    a = make_single_positive(Y, 7)
    assert a.dtype == np.int8 and set(np.unique(a)) <= {-1, 1}
    assert ((a == 1).sum(1) == 1).all()
    assert (Y[a == 1] == 1).all()  # kept entries were true positives
    assert np.array_equal(a, make_single_positive(Y, 7))
    assert not np.array_equal(a, make_single_positive(Y, 8))
    # every positive of a row can be drawn (uniform choice)
    draws = np.stack([make_single_positive(Y[:1], s)[0] for s in range(200)])
    assert ((draws == 1).sum(0) > 0).sum() == Y[0].sum()


def test_rows_without_positive():
    Y = _Y()
    Y[3] = 0
    a = make_single_positive(Y, 0)
    assert (a[3] == -1).all()
    with pytest.raises(ValueError, match="row 3"):
        make_single_positive(Y, 0, no_positive="error")
    with pytest.raises(ValueError, match="0/1"):
        make_single_positive(np.full((2, 2), -1), 0)


def test_protocol_reproducible_and_roundtrip(tmp_path):
    Y = _Y(100)
    p1 = SPMLLProtocol().fit(Y)
    p2 = SPMLLProtocol().fit(Y)
    assert np.array_equal(p1.train_idx, p2.train_idx) and np.array_equal(p1.val_idx, p2.val_idx)
    assert np.array_equal(p1.Y_observed, p2.Y_observed)
    assert len(p1.val_idx) == 20 and not set(p1.train_idx) & set(p1.val_idx)
    assert (Y[p1.train_idx][p1.Y_observed == 1] == 1).all()
    p3 = SPMLLProtocol(split_seed=5).fit(Y)
    assert not np.array_equal(p1.val_idx, p3.val_idx)
    path = p1.save(tmp_path / "obs.json")
    q = SPMLLProtocol.load(path)
    assert np.array_equal(q.Y_observed, p1.Y_observed) and np.array_equal(q.val_idx, p1.val_idx)
    tr, va = spmll_split(10, 0.2, 1)
    assert len(va) == 2 and len(tr) == 8


def test_per_label_ap_matches_sklearn_with_ties():
    g = np.random.default_rng(1)
    Y = (g.random((40, 4)) < 0.3).astype(int)
    Y[0] = 1
    S = np.round(g.normal(size=(40, 4)), 1)  # many ties
    want = [average_precision_score(Y[:, j], S[:, j]) for j in range(4)]
    assert np.allclose(per_label_ap(Y, S), want)
    Y[:, 2] = 0
    assert per_label_ap(Y, S)[2] == 0.0
    assert mean_ap(Y, S) == pytest.approx(np.mean(per_label_ap(Y, S)))


def test_label_correction_quota_and_permanence():
    Y0 = np.full((10, 2), -1, dtype=np.int8)
    Y0[:4, 0] = 1
    Y0[:2, 1] = 1
    S = np.tile(np.linspace(1, 0, 10)[:, None], (1, 2))
    S[:, 1] = np.linspace(0, 1, 10)  # label 1: observed positives score lowest -> AP low
    corr = APLabelCorrector(scale=1.0, base="n_j", warmup_epochs=1)
    same, k0 = corr(Y0, S, Y0, epoch=0)
    assert k0 == 0 and np.array_equal(same, Y0)
    Y1, k = corr(Y0, S, Y0, epoch=1)
    ap = per_label_ap(Y0 == 1, S)
    assert ap[0] == pytest.approx(1.0)
    kj = np.floor(np.array([4, 2]) * (1 - ap)).astype(int)
    assert k == kj.sum() and kj[0] == 0 and kj[1] >= 1
    # label 1 flips the highest-scoring unobserved rows (the last ones)
    assert (Y1[10 - kj[1]:, 1] == 1).all() and (Y1[2:10 - kj[1], 1] == -1).all()
    Y2, _ = corr(Y1, S, Y0, epoch=2)
    assert ((Y2 == 1) >= (Y1 == 1)).all()  # permanent
    budget = APLabelCorrector(scale=1.0, base="n", max_total=0.5)
    Yb, kb = budget(Y0, S, Y0, epoch=1)
    Yb2, kb2 = budget(Yb, S, Y0, epoch=2)
    assert (kb, kb2) == (1, 0)  # label 0: AP = 1 (no quota); label 1: budget ⌊0.5·2⌋ = 1
    capped = APLabelCorrector(scale=1.0, base="n", cap=0.1)
    assert capped.quotas(Y0, np.zeros(2)).tolist() == [1, 1]


def test_per_label_budget_from_fully_labelled_rows():
    Y0 = np.full((10, 2), -1, dtype=np.int8)
    Y0[:4, 0] = 1
    Y0[:2, 1] = 1
    ref = np.zeros((5, 2), dtype=np.int8)
    ref[:2, 0] = 1  # rate .4: 4 expected among 10 rows, 4 observed -> nothing hidden
    ref[:3, 1] = 1  # rate .6: 6 expected, 2 observed -> 4 hidden -> 2.0 per observed
    b = hidden_positive_budget(Y0, ref)
    assert b == pytest.approx([0.0, 2.0])
    S = np.tile(np.linspace(0, 1, 10)[:, None], (1, 2))  # observed rows score lowest
    corr = APLabelCorrector(scale=10.0, base="n", max_total=b)
    Y1, k = corr(Y0, S, Y0, epoch=1)
    assert k == 4 and (Y1[:, 0] == Y0[:, 0]).all() and (Y1[6:, 1] == 1).all()
    _, k2 = corr(Y1, S, Y0, epoch=2)
    assert k2 == 0  # the budget is spent
    with pytest.raises(ValueError, match="3 entries for 2 labels"):
        APLabelCorrector(max_total=[1.0, 1.0, 1.0])(Y0, S, Y0, epoch=1)


def test_schedules():
    lin = SmoothingSchedule("linear", 0.0, 0.2, epochs=4, warmup=1)
    assert [lin(e) for e in (0, 1, 3, 5, 9)] == pytest.approx([0, 0, 0.1, 0.2, 0.2])
    cos = SmoothingSchedule("cosine", 1.0, 0.0, epochs=2)
    assert cos(0) == pytest.approx(1.0) and cos(1) == pytest.approx(0.5) and cos(2) == 0.0
    assert SmoothingSchedule("step", 1.0, every=2, gamma=0.5)(5) == 0.25

    class Obj:
        ls_coef = 0.1

    o = Obj()
    assert apply_schedules(o, {"ls_coef": {"kind": "linear", "start": 0, "end": 1,
                                           "epochs": 2}}, 1) == {"ls_coef": 0.5}
    assert o.ls_coef == 0.5
    with pytest.raises(ValueError):
        apply_schedules(o, {"nope": 1.0}, 0)
