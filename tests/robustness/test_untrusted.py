"""Untrusted files: crafted models, checkpoints and cache entries never execute code.

Extends ``tests/test_persistence.py`` (which covers a ``collections.Counter`` type, version 99,
one flipped byte and a stub torch module): here the payloads really *would* run — a sentinel
file proves they do under a permissive loader and do not under ``mimlkit`` — plus numpy
classes with side effects, function references, newer format versions through the CLI,
tampering of real learners' skops / safetensors files, training checkpoints, feature-cache
entries, and an AST scan of ``src/`` for unsafe deserialisation calls.
"""

from __future__ import annotations

import ast
import gc
import json
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from mimlkit import persistence as P

SRC = Path(__file__).resolve().parents[2] / "src"


def _tiny(n=30, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(1, 5)), d)).astype(np.float32) for _ in range(n)]
    Y = (rng.random((n, k)) > 0.5).astype(np.int8)
    Y[np.arange(n), rng.integers(0, k, n)] = 1
    return X, Y


def _fitted():
    from mimlkit.learners.pooled import PooledLinear

    X, Y = _tiny()
    return PooledLinear().fit(X, Y), X


def _resign(folder: Path) -> None:
    """Recompute the checksum of estimator.skops, as an attacker who edits both would."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg["sha256"]["estimator.skops"] = P._sha256(folder / "estimator.skops")
    if "config_sha256" in cfg:  # format 2: the attacker re-signs config.json's fields too
        cfg["config_sha256"] = P._config_digests(cfg)
    (folder / "config.json").write_text(json.dumps(cfg))


@pytest.fixture
def payload_module(tmp_path, monkeypatch):
    """An importable module whose class writes a sentinel file when it is unpickled /
    un-skopsed (``__setstate__``) or called (``__reduce__`` runs ``touch``)."""
    sentinel = tmp_path / "PWNED"
    mod = tmp_path / "r2_payload_mod.py"
    mod.write_text(textwrap.dedent(f"""
        import os
        SENTINEL = {str(sentinel)!r}

        def touch(*args):
            open(SENTINEL, "w").write("ran")
            return {{}}

        class Payload:
            def __init__(self):
                self.x = 1

            def __setstate__(self, state):
                touch()
                self.__dict__.update(state)

            def __reduce__(self):
                return (touch, ())
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    m = importlib.import_module("r2_payload_mod")
    yield m, sentinel
    sys.modules.pop("r2_payload_mod", None)


# ----------------------------------------------------------------------------- skops payloads
def test_code_executing_type_refused_without_running(tmp_path, payload_module):
    import skops.io as sio

    mod, sentinel = payload_module
    est, X = _fitted()
    P.save(est, tmp_path / "m")
    est.extra_ = mod.Payload()
    sio.dump(est, tmp_path / "m" / "estimator.skops")
    _resign(tmp_path / "m")
    with pytest.raises(P.PersistenceError,
                       match=r"untrusted type r2_payload_mod\.Payload in file .*estimator\.skops"):
        P.load(tmp_path / "m")
    gc.collect()
    assert not sentinel.exists(), "loading ran the payload"
    # control: the payload is live — a permissive loader does run it
    f = tmp_path / "m" / "estimator.skops"
    sio.load(f, trusted=sio.get_untrusted_types(file=f))
    assert sentinel.exists()


@pytest.mark.parametrize("ref", ["os.system", "builtins.exec", "builtins.eval",
                                 "subprocess.Popen"])
def test_callable_references_refused(tmp_path, ref):
    import importlib

    import skops.io as sio

    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    module, _, name = ref.rpartition(".")
    est.hook_ = getattr(importlib.import_module(module), name)
    sio.dump(est, tmp_path / "m" / "estimator.skops")
    _resign(tmp_path / "m")
    with pytest.raises(P.PersistenceError, match=r"untrusted type \S+ in file"):
        P.load(tmp_path / "m")


def test_numpy_class_with_side_effects_refused(tmp_path):
    """``numpy.lib.npyio.DataSource.__del__`` removes the directory named in its state; a
    blanket ``numpy.`` trust would let a model file delete any folder on load. Refused."""
    import skops.io as sio

    DataSource = type(np.lib.npyio.DataSource())  # the class, whatever its module path
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("x")
    est, _ = _fitted()
    evil = DataSource.__new__(DataSource)
    evil.__dict__.update(_istmpdest=True, _destpath=str(victim))
    est.helper_ = evil
    P.save(est, tmp_path / "m")
    evil._istmpdest = False  # do not fire in this process
    del est, evil
    with pytest.raises(P.PersistenceError, match=r"untrusted type numpy\.\S*DataSource"):
        P.load(tmp_path / "m")
    gc.collect()
    assert (victim / "precious.txt").exists()
    # control: a permissive loader deletes the folder once the object is collected
    f = tmp_path / "m" / "estimator.skops"
    obj = sio.load(f, trusted=sio.get_untrusted_types(file=f))
    del obj
    gc.collect()
    assert not victim.exists()


@pytest.mark.parametrize("name,ok", [
    ("numpy.ndarray", True), ("numpy.float32", True), ("numpy.random.Generator", True),
    ("scipy.sparse.csr_matrix", True), ("sklearn.svm.SVC", True),
    ("numpy.memmap", False), ("numpy.lib.npyio.DataSource", False),
    ("scipy.stats._distn_infrastructure.rv_frozen", False), ("numpy.nowhere.X", False),
    ("numpy_evil.X", False), ("os.system", False), ("builtins.__import__", False),
])
def test_trust_rules(name, ok):
    assert P._is_trusted(name) is ok


# ----------------------------------------------------------------------------- versions
def test_newer_format_version_refused_clearly(tmp_path):
    from typer.testing import CliRunner

    from mimlkit.cli import app

    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["format_version"] = P.FORMAT_VERSION + 1
    cfg["versions"]["mimlkit"] = "9.0.0"
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(P.PersistenceError) as info:
        P.load(tmp_path / "m")
    msg = str(info.value)
    assert f"unknown format_version {P.FORMAT_VERSION + 1}" in msg
    assert f"versions 1..{P.FORMAT_VERSION}" in msg and "mimlkit 9.0.0" in msg
    assert "config.json" in msg
    # the CLI: one line, exit code 2, no predictions file
    from mimlkit.datasets import make_miml_bags, save_npz

    save_npz(make_miml_bags(n_bags=10, n_labels=3, n_features=4, random_state=0),
             tmp_path / "d.npz")
    out = tmp_path / "p.csv"
    r = CliRunner().invoke(app, ["predict", "--model", str(tmp_path / "m"), "--data",
                                 str(tmp_path / "d.npz"), "--out", str(out)])
    assert r.exit_code == 2
    assert "unknown format_version" in r.output and not out.exists()


# ----------------------------------------------------------------------------- tampering
@pytest.mark.parametrize("where", ["start", "middle", "end", "truncate", "append"])
def test_tampered_skops_detected(tmp_path, where):
    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    f = tmp_path / "m" / "estimator.skops"
    data = bytearray(f.read_bytes())
    if where == "truncate":
        data = data[: len(data) // 2]
    elif where == "append":
        data += b"\0"
    else:
        i = {"start": 0, "middle": len(data) // 2, "end": len(data) - 1}[where]
        data[i] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(P.PersistenceError, match=r"estimator\.skops: SHA-256 mismatch"):
        P.load(tmp_path / "m")


def test_garbage_skops_with_valid_checksum_is_a_clear_error(tmp_path):
    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    (tmp_path / "m" / "estimator.skops").write_bytes(b"PK\x03\x04 not a zip at all")
    _resign(tmp_path / "m")
    with pytest.raises(P.PersistenceError, match=r"estimator\.skops: cannot read"):
        P.load(tmp_path / "m")


def test_checksum_paths_cannot_escape_the_folder(tmp_path):
    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    (tmp_path / "outside").write_text("x")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["sha256"]["../outside"] = P._sha256(tmp_path / "outside")
    if "config_sha256" in cfg:  # format 2: an attacker re-signs config.json's fields too
        cfg["config_sha256"] = P._config_digests(cfg)
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(P.PersistenceError, match="points outside the folder"):
        P.load(tmp_path / "m")


def test_tampered_safetensors_of_a_real_deep_learner(tmp_path):
    pytest.importorskip("torch")
    from mimlkit.registry import create

    X, Y = _tiny()
    est = create("multilabel-head", max_epochs=2, batch_size=8).fit(X, Y)
    P.save(est, tmp_path / "m")
    np.testing.assert_allclose(P.load(tmp_path / "m").decision_function(X),
                               est.decision_function(X), rtol=1e-6)
    files = sorted((tmp_path / "m" / "torch").glob("*.safetensors"))
    assert files
    data = bytearray(files[0].read_bytes())
    data[-1] ^= 0x10  # last byte of the last weight tensor
    files[0].write_bytes(bytes(data))
    with pytest.raises(P.PersistenceError,
                       match=rf"{files[0].name}: SHA-256 mismatch"):
        P.load(tmp_path / "m")
    files[0].unlink()
    with pytest.raises(P.PersistenceError, match=rf"{files[0].name} listed in config.json is "
                                                 "missing"):
        P.load(tmp_path / "m")


def test_missing_model_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="model folder .* not found"):
        P.load(tmp_path / "nope")
    est, _ = _fitted()
    P.save(est, tmp_path / "m")
    (tmp_path / "m" / "estimator.skops").unlink()
    with pytest.raises(P.PersistenceError, match=r"estimator\.skops listed in config\.json is "
                                                 "missing"):
        P.load(tmp_path / "m")


# ----------------------------------------------------------------------------- other readers
def test_training_checkpoint_with_pickled_code_refused(tmp_path, payload_module):
    torch = pytest.importorskip("torch")
    from mimlkit.deep.trainer import load_checkpoint

    mod, sentinel = payload_module
    ck = tmp_path / "last.pt"
    torch.save({"version": 1, "epoch": 0, "task": {}, "x": mod.Payload()}, ck)
    with pytest.raises(Exception, match="(?i)weights.only|unsupported global"):
        load_checkpoint(ck)
    assert not sentinel.exists()
    # a real checkpoint (numpy RNG state, tensors) still loads
    torch.save({"version": 1, "rng": {"numpy": np.random.get_state()},
                "w": torch.ones(2)}, ck)
    assert load_checkpoint(ck)["rng"]["numpy"][0] == "MT19937"


def test_feature_cache_entry_with_pickle_is_ignored(tmp_path, payload_module):
    from mimlkit.features.extract import FeatureCache

    mod, sentinel = payload_module
    cache = FeatureCache(tmp_path, "k", {"x": 1}, tiled=False)
    h = "f" + "ab" * 20
    cache.path(h).parent.mkdir(parents=True, exist_ok=True)
    np.save(cache.path(h), np.array([mod.Payload()], dtype=object), allow_pickle=True)
    assert cache.get(h) is None  # treated as missing -> recomputed
    assert not sentinel.exists()


def test_dataset_npz_with_pickle_refused(tmp_path, payload_module):
    from mimlkit.datasets import load_npz

    mod, sentinel = payload_module
    np.savez(tmp_path / "d.npz", Y=np.array([mod.Payload()], dtype=object),
             bag_instances=np.zeros((1, 2)), bag_offsets=np.array([0, 1]))
    with pytest.raises(ValueError, match="d.npz"):
        load_npz(tmp_path / "d.npz")
    assert not sentinel.exists()


# ----------------------------------------------------------------------------- source scan
_UNSAFE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "marshal", "shelve",
                   "_pickle"}


def _unsafe_calls(tree: ast.AST, path: Path) -> list[str]:
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            for n in names:
                if n.split(".")[0] in ("pickle", "cPickle", "cloudpickle", "dill", "marshal",
                                       "shelve", "_pickle"):
                    bad.append(f"{path}:{node.lineno}: imports {n}")
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        name = ast.unparse(f)
        kw = {k.arg: k.value for k in node.keywords if k.arg}
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            if f.value.id in _UNSAFE_MODULES and f.attr in ("load", "loads", "open",
                                                            "Unpickler"):
                bad.append(f"{path}:{node.lineno}: {name}(...)")
            if f.value.id == "torch" and f.attr == "load":
                wo = kw.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    bad.append(f"{path}:{node.lineno}: torch.load without weights_only=True")
            if f.value.id == "yaml" and f.attr in ("load", "load_all", "unsafe_load"):
                bad.append(f"{path}:{node.lineno}: {name}(...) (use yaml.safe_load)")
        ap = kw.get("allow_pickle")
        if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
            bad.append(f"{path}:{node.lineno}: {name}(..., allow_pickle=...)")
        if isinstance(f, ast.Name) and f.id in ("eval", "exec"):
            bad.append(f"{path}:{node.lineno}: {f.id}(...)")
    return bad


def test_scanner_catches_unsafe_calls():
    code = ("import pickle\nimport torch, numpy as np, joblib, yaml\npickle.loads(b'')\n"
            "torch.load('x')\ntorch.load('x', weights_only=False)\njoblib.load('m')\n"
            "np.load('a', allow_pickle=True)\nyaml.load('a')\neval('1')\n"
            "torch.load('x', weights_only=True)\nnp.load('a')\n")
    assert len(_unsafe_calls(ast.parse(code), Path("x.py"))) == 8


def test_src_has_no_unsafe_deserialisation():
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    bad = []
    for path in files:
        bad += _unsafe_calls(ast.parse(path.read_text(), str(path)), path.relative_to(SRC))
    assert bad == [], "\n".join(bad)
    # belt and braces: no text occurrence either (catches getattr tricks)
    text_hits = [str(p.relative_to(SRC)) for p in files
                 if "pickle.load" in p.read_text() or "joblib.load" in p.read_text()]
    assert text_hits == []


def test_skops_loader_is_never_called_untrusted_in_src():
    """``skops.io.load`` appears only in persistence, behind the type check."""
    users = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py")
             if "sio.load(" in p.read_text() or "skops.io.load(" in p.read_text()]
    assert users == [os.path.join("mimlkit", "persistence.py")]
