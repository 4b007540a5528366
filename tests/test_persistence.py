"""mimlkit.persistence: round trips for every registered learner, atomic writes, safety."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from mimlkit import persistence as P
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.learners.pooled import PooledLinear
from mimlkit.registry import get_learner_class, learner_spec, list_learners


def _tiny(seed=0, n=24, d=5, k=3):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(1, 5)), d)).astype(np.float32) for _ in range(n)]
    Y = (rng.random((n, k)) > 0.5).astype(np.int8)
    Y[np.arange(n), rng.integers(0, k, n)] = 1
    Y[0] = 0
    Y[0, 0] = 1
    return X, Y


def _fitted_pooled():
    X, Y = _tiny()
    return PooledLinear(C=0.3).fit(X, Y), X


# fast-fitting overrides for the round trip (unknown params are skipped)
_QUICK = {"max_iter": 10, "n_epochs": 2, "epochs": 2, "max_epochs": 2, "min_steps": None,
          "n_iter": 5,
          "n_estimators": 3, "n_rounds": 3, "hidden_size": 8, "batch_size": 8,
          "n_medoids": 4, "k": 3, "n_enhancement": 40, "n_windows": 3, "sparse_iter": 5}


def _make_quick(name):
    cls = get_learner_class(name)
    est = cls(**learner_spec(name).params)
    names = set(est.get_params(deep=False))
    over = {k: v for k, v in _QUICK.items() if k in names}
    if "random_state" in names:
        over["random_state"] = 0
    if "ratio" in names:
        over["ratio"] = 0.3
    est.set_params(**over)
    return est


def _available(name):
    try:
        get_learner_class(name)
        return True, ""
    except (ImportError, AttributeError) as exc:
        return False, str(exc)


@pytest.mark.parametrize("name", list_learners(input="bags"))
def test_round_trip_every_bag_learner(name, tmp_path):
    ok, why = _available(name)
    if not ok:
        pytest.skip(f"{name} not available yet: {why}")
    X, Y = _tiny()
    est = _make_quick(name).fit(X, Y)
    before = np.asarray(est.decision_function(X))
    P.save(est, tmp_path / "m", label_names=["a", "b", "c"])
    again = P.load(tmp_path / "m")
    assert type(again) is type(est)
    np.testing.assert_allclose(np.asarray(again.decision_function(X)), before, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert P.read_config(tmp_path / "m")["label_names"] == ["a", "b", "c"]


@pytest.mark.parametrize("name", list_learners(input="images"))
def test_round_trip_image_learners(name):
    pytest.skip(f"{name}: image learners need CNN weights/feature extraction; their round trip "
                "is covered by their own tests")


def test_config_contents(tmp_path):
    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m", metadata={"data": "x.arff", "n": 3})
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["format_version"] == P.FORMAT_VERSION
    assert cfg["class"] == "mimlkit.learners.pooled:PooledLinear"
    assert cfg["params"]["C"] == 0.3
    assert cfg["metadata"] == {"data": "x.arff", "n": 3}
    assert set(cfg["sha256"]) == {"estimator.skops"}
    assert cfg["versions"]["mimlkit"]


def test_non_json_param_uses_repr(tmp_path):
    X, Y = _tiny()
    est = PooledLinear(random_state=np.random.RandomState(0)).fit(X, Y)
    P.save(est, tmp_path / "m")
    cfg = P.read_config(tmp_path / "m")
    assert "__repr__" in cfg["params"]["random_state"]
    assert cfg["params_inexact"] == ["random_state"]
    again = P.load(tmp_path / "m")  # the exact value comes back from the skops file
    assert isinstance(again.random_state, np.random.RandomState)


def test_atomic_replace_and_no_leftovers(tmp_path):
    est, X = _fitted_pooled()
    target = tmp_path / "m"
    P.save(est, target)
    est2 = PooledLinear(C=10.0).fit(X, _tiny()[1])
    P.save(est2, target)
    assert P.load(target).C == 10.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_failed_save_keeps_old_model(tmp_path, monkeypatch):
    est, X = _fitted_pooled()
    target = tmp_path / "m"
    P.save(est, target)
    import skops.io as sio

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sio, "dump", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        P.save(PooledLinear(C=5.0).fit(X, _tiny()[1]), target)
    monkeypatch.undo()
    assert P.load(target).C == 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_to_replace_foreign_folder(tmp_path):
    est, _ = _fitted_pooled()
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a mimlkit model"):
        P.save(est, tmp_path / "d")
    assert (tmp_path / "d" / "precious.txt").exists()


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        P.load(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        P.load(tmp_path / "empty")


def _edit_config(folder, fn, resign=True):
    """Edit config.json; ``resign`` recomputes its own checksums so that a deeper check is
    what the test reaches."""
    p = folder / "config.json"
    cfg = json.loads(p.read_text())
    fn(cfg)
    if resign and "config_sha256" in cfg:
        cfg["config_sha256"] = P._config_digests(cfg)
    p.write_text(json.dumps(cfg))


def test_label_names_covered_by_checksum(tmp_path):
    """Reordering label_names in config.json (which would relabel every prediction) is
    refused, naming the file and the field; params edits too; format 1 files still load."""
    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m", label_names=["a", "b", "c"])
    P.load(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update(label_names=["b", "a", "c"]), resign=False)
    with pytest.raises(P.PersistenceError, match=r"config\.json: field\(s\) label_names "
                       r"changed after saving.*relabel"):
        P.read_config(tmp_path / "m")
    with pytest.raises(P.PersistenceError, match="label_names"):
        P.load(tmp_path / "m")
    P.save(est, tmp_path / "m", label_names=["a", "b", "c"])
    _edit_config(tmp_path / "m", lambda c: c["params"].update(C=9.0), resign=False)
    with pytest.raises(P.PersistenceError, match="params changed"):
        P.load(tmp_path / "m")
    # a version-2 file without the field is refused; a version-1 file (older) is accepted
    _edit_config(tmp_path / "m", lambda c: c.pop("config_sha256"), resign=False)
    with pytest.raises(P.PersistenceError, match="config_sha256' is missing"):
        P.read_config(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update(format_version=1), resign=False)
    assert P.read_config(tmp_path / "m")["params"]["C"] == 9.0


def test_format_version_checks(tmp_path):
    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update(format_version=99))
    with pytest.raises(P.PersistenceError, match="unknown format_version 99"):
        P.load(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.pop("format_version"))
    with pytest.raises(P.PersistenceError, match="format_version is missing"):
        P.load(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text("{not json")
    with pytest.raises(P.PersistenceError, match="not valid JSON"):
        P.load(tmp_path / "m")


def test_class_not_found(tmp_path):
    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update({"class": "mimlkit.nowhere:Gone"}))
    with pytest.raises(ImportError, match="mimlkit.nowhere:Gone not found"):
        P.load(tmp_path / "m")
    _edit_config(tmp_path / "m", lambda c: c.update({"class": "mimlkit.persistence:Nope"}))
    with pytest.raises(ImportError, match="has no Nope"):
        P.load(tmp_path / "m")


def test_tampered_file_detected(tmp_path):
    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m")
    f = tmp_path / "m" / "estimator.skops"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(P.PersistenceError, match="SHA-256 mismatch"):
        P.load(tmp_path / "m")
    f.unlink()
    with pytest.raises(P.PersistenceError, match="is missing"):
        P.load(tmp_path / "m")


def test_untrusted_type_rejected(tmp_path):
    """A file holding a type outside mimlkit/sklearn/numpy/scipy is refused, by name."""
    import collections

    import skops.io as sio

    est, _ = _fitted_pooled()
    P.save(est, tmp_path / "m")
    est.extra_ = collections.Counter(a=1)  # collections.Counter: not on the trusted list
    sio.dump(est, tmp_path / "m" / "estimator.skops")
    # re-sign so that only the type check can catch it
    _edit_config(tmp_path / "m", lambda c: c["sha256"].update(
        {"estimator.skops": P._sha256(tmp_path / "m" / "estimator.skops")}))
    with pytest.raises(P.PersistenceError,
                       match=r"untrusted type collections\.Counter in file .*estimator\.skops"):
        P.load(tmp_path / "m")


def test_denied_builtins():
    assert not P._is_trusted("builtins.eval")
    assert not P._is_trusted("os.system")
    assert not P._is_trusted("numpyevil.X")
    assert P._is_trusted("builtins.dict") and P._is_trusted("numpy.ndarray")


def test_torch_attribute_not_listed_is_an_error(tmp_path):
    torch = pytest.importorskip("torch")
    est, _ = _fitted_pooled()
    est.net_ = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="_torch_modules"):
        P.save(est, tmp_path / "m")
    assert not (tmp_path / "m").exists()


# ----------------------------------------------------------------------------- torch modules
@pytest.fixture
def torch_stub_module():
    """A tiny learner with a torch module, living in an importable ``mimlkit.*`` module."""
    torch = pytest.importorskip("torch")
    mod = types.ModuleType("mimlkit._persistence_test_stub")

    class TinyTorchLearner(MIMLClassifierMixin, BaseEstimator):
        _torch_modules = ("net_",)

        def __init__(self, *, hidden=3, random_state=0):
            self.hidden = hidden
            self.random_state = random_state

        def _build_torch_module(self, name):
            assert name == "net_"
            return torch.nn.Sequential(torch.nn.Linear(self.n_features_in_, self.hidden),
                                       torch.nn.BatchNorm1d(self.hidden),
                                       torch.nn.Linear(self.hidden, self.n_labels_))

        def fit(self, X, Y):
            bags, Y = self._validate_fit(X, Y)
            torch.manual_seed(self.random_state)
            self.net_ = self._build_torch_module("net_")
            with torch.no_grad():
                self.net_(torch.randn(8, self.n_features_in_))  # moves BN running stats
            self.net_.eval()
            return self

        def decision_function(self, X):
            bags = self._validate_bags(X, reset=False)
            with torch.no_grad():
                return self.net_(torch.as_tensor(bags.pool("mean"))).numpy().astype(float)

    TinyTorchLearner.__module__ = mod.__name__
    TinyTorchLearner.__qualname__ = "TinyTorchLearner"
    mod.TinyTorchLearner = TinyTorchLearner
    sys.modules[mod.__name__] = mod
    yield TinyTorchLearner
    del sys.modules[mod.__name__]


def test_torch_module_round_trip(tmp_path, torch_stub_module):
    X, Y = _tiny()
    est = torch_stub_module(hidden=4, random_state=3).fit(X, Y)
    before = est.decision_function(X)
    P.save(est, tmp_path / "m")
    assert (tmp_path / "m" / "torch" / "net_.safetensors").is_file()
    cfg = P.read_config(tmp_path / "m")
    assert cfg["torch_modules"] == ["net_"]
    assert "torch/net_.safetensors" in cfg["sha256"]
    assert hasattr(est, "net_")  # saving does not strip the live model
    again = P.load(tmp_path / "m")
    np.testing.assert_allclose(again.decision_function(X), before, rtol=1e-6)
    assert not again.net_.training


def test_torch_weights_tampered(tmp_path, torch_stub_module):
    X, Y = _tiny()
    P.save(torch_stub_module().fit(X, Y), tmp_path / "m")
    f = tmp_path / "m" / "torch" / "net_.safetensors"
    data = bytearray(f.read_bytes())
    data[-3] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(P.PersistenceError, match="net_.safetensors: SHA-256 mismatch"):
        P.load(tmp_path / "m")
