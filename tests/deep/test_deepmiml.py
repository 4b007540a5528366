"""DeepMIML on small synthetic feature bags (CPU, a few seconds)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from mimlkit.datasets import make_miml_bags  # noqa: E402
from mimlkit.deep.deepmiml import DeepMIML, DeepMIMLNet  # noqa: E402
from mimlkit.metrics import average_precision  # noqa: E402


@pytest.fixture(scope="module")
def data():
    ds = make_miml_bags(n_bags=160, n_labels=4, n_features=8, bag_size=(3, 8), random_state=0)
    tr, te = np.arange(110), np.arange(110, 160)
    return ds.bags[tr], ds.Y[tr], ds.bags[te], ds.Y[te], ds.bags, ds.Y, ds.instance_labels


def _fast(**kw):
    base = dict(hidden=64, n_subconcepts=4, epochs=25, batch_size=16, lr=3e-3,
                random_state=0, device="cpu")
    base.update(kw)
    return DeepMIML(**base)


@pytest.mark.parametrize("label_softmax", [True, False])
def test_learns_and_instance_scores(data, label_softmax):
    Xtr, Ytr, Xte, Yte, bags, Y, inst = data
    est = _fast(label_softmax=label_softmax).fit(Xtr, Ytr)
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    S = est.decision_function(Xte)
    assert S.shape == Yte.shape and ((S >= 0) & (S <= 1)).all()
    rng = np.random.default_rng(0)
    chance = np.mean([average_precision(Yte, rng.random(Yte.shape)) for _ in range(20)])
    assert average_precision(Yte, S) > chance + 0.2
    P = est.predict(Xte)
    assert (P.sum(axis=1) >= 1).all() and (P == Yte).mean() > 0.75
    scores = est.instance_scores(bags)
    assert [s.shape for s in scores] == [(n, Y.shape[1]) for n in bags.sizes]
    np.testing.assert_allclose(np.stack([s.max(axis=0) for s in scores]),
                               est.decision_function(bags), rtol=1e-6, atol=1e-7)
    Si = np.concatenate(scores)
    Yi = np.repeat(Y, bags.sizes, axis=0)
    for k in range(Y.shape[1]):
        pos = Yi[:, k] == 1
        assert Si[pos & (inst[:, k] == 1), k].mean() > Si[pos & (inst[:, k] == 0), k].mean()


def test_padding_mask_matches_unpadded(data):
    Xtr, Ytr, *_ = data
    est = _fast(epochs=2).fit(Xtr, Ytr)
    net = est.module_
    x, m = Xtr.padded()
    xs = (x - est.scale_offset_.astype(np.float32)) * est.scale_factor_.astype(np.float32)
    with torch.no_grad():
        out = net(torch.from_numpy(xs.astype(np.float32)), torch.from_numpy(m)).numpy()
    np.testing.assert_allclose(out, est.decision_function(Xtr), rtol=1e-5, atol=1e-6)


def test_determinism_clone_pickle(data):
    Xtr, Ytr, Xte, *_ = data
    a = _fast(epochs=3).fit(Xtr, Ytr)
    b = _fast(epochs=3).fit(Xtr, Ytr)
    Sa = a.decision_function(Xte)
    np.testing.assert_array_equal(Sa, b.decision_function(Xte))
    c = clone(a)
    assert c.get_params() == a.get_params() and not hasattr(c, "module_")
    assert a.set_params(epochs=4).epochs == 4
    again = pickle.loads(pickle.dumps(a))
    assert isinstance(again.module_, DeepMIMLNet)
    np.testing.assert_array_equal(again.decision_function(Xte), Sa)
    rebuilt = a._build_torch_module("module_")
    rebuilt.load_state_dict(a.module_.state_dict())
    with pytest.raises(ValueError, match="optimizer"):
        _fast(optimizer="sgd").fit(Xtr, Ytr)
    assert _fast(epochs=1, optimizer="adadelta", lr=1.0).fit(Xtr, Ytr).module_ is not None
    before = torch.get_num_threads()
    _fast(epochs=1, n_threads=1).fit(Xtr, Ytr)
    assert torch.get_num_threads() == before  # the thread setting is restored


def test_import_mimlkit_stays_light():
    code = ("import sys, mimlkit, mimlkit.registry; "
            "assert 'torch' not in sys.modules and 'mimlkit.deep' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
