"""Interrupted work: SIGKILL ``mimlkit fit`` / ``bench`` / ``features`` and a deep training
run at seeded random moments; nothing corrupt is left behind and a rerun completes.

After every kill: the model folder is absent or loads and predicts, ``results.json`` is absent
or complete JSON, every features-cache entry is readable and complete, temporary files exist
only as hidden ``.<name>...`` siblings. Reruns complete; the features cache keeps (same inode
and mtime) every entry finished before the kill; deep training resumed from its last
checkpoint ends bitwise equal to an uninterrupted run (CPU, deterministic mode).
``benchmarks/reliability.py`` runs the same faults many more times.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location("_robustness_faults",
                                               Path(__file__).with_name("_faults.py"))
F = importlib.util.module_from_spec(_spec)
sys.modules.setdefault(_spec.name, F)
_spec.loader.exec_module(F)

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX only")


@pytest.fixture(scope="module")
def bag_data(tmp_path_factory):
    d = tmp_path_factory.mktemp("killdata")
    path = F.make_bags_npz(d / "d.npz", n_bags=60)
    from mimlkit.datasets import load_npz

    return path, load_npz(path).bags


def test_fit_sigkill_leaves_no_corrupt_model(bag_data, tmp_path):
    data, X = bag_data
    rng = np.random.default_rng(9)
    target = tmp_path / "model"
    fit = F.cli("fit", "--data", data, "-l", "pooled-linear", "--out", target)
    # 1) killed on a fresh target at a random moment: absent or a complete model
    r = F.run_killed(fit, tmp_path, delay=float(rng.uniform(0.5, 3.0)))
    assert F.check_model(target, X) in ("absent", "ok"), r
    assert F.visible_leftovers(tmp_path, {"model"}) == []
    # 2) the rerun completes
    F.run(fit, tmp_path)
    assert F.check_model(target, X) == "ok"
    # 3) killed while re-fitting over the existing model: the old or the new one (or, in the
    #    instant between the two renames, none; see test_save_killed_inside_the_swap)
    r = F.run_killed(fit, tmp_path, delay=float(rng.uniform(0.5, 3.0)))
    assert F.check_model(target, X) in ("ok", "absent"), r
    assert F.visible_leftovers(tmp_path, {"model"}) == []





@pytest.mark.parametrize("at_call", [1, 2])
def test_save_killed_inside_the_swap(bag_data, tmp_path, at_call):
    """SIGKILL at the exact renames of ``persistence.save`` over an existing model: call 1
    (new model complete in its temp folder, old one untouched) leaves the old model; call 2
    (old moved aside, new not yet renamed) leaves no model at the target — never a mix."""
    data, X = bag_data
    target = tmp_path / "m"
    r = F.run_killed([F.PY, "-c", F.SAVE_KILL_SCRIPT, str(data), str(target), str(at_call)],
                     tmp_path, delay=60)
    assert r["rc"] == -9
    state = F.check_model(target, X)
    assert state == ("ok" if at_call == 1 else "absent")
    hidden = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert hidden and all(h.startswith(".m.tmp-") or h.startswith(".m.old-") for h in hidden)
    assert F.visible_leftovers(tmp_path, {"m"}) == []
    # the complete new model sits in its hidden temp folder; a plain rerun replaces everything
    for h in hidden:
        if h.startswith(".m.tmp-"):
            assert F.check_model(tmp_path / h, X) == "ok"
    if at_call == 2:  # loading the missing target says where the complete new model is
        from mimlkit import persistence

        with pytest.raises(FileNotFoundError, match=r"interrupted save left the complete new "
                                                    r"model in .*\.m\.tmp-"):
            persistence.load(target)


def test_bench_sigkill_results_absent_or_complete(bag_data, tmp_path):
    data, _ = bag_data
    cfg = F.suite_yaml(tmp_path / "suite.yaml", data)
    rng = np.random.default_rng(5)
    import time

    t0 = time.perf_counter()
    F.run(F.cli("bench", "--config", cfg, "--out", tmp_path / "ref"), tmp_path)
    full = time.perf_counter() - t0
    n_rows = len(json.loads((tmp_path / "ref" / "results.json").read_text())["rows"])
    out = tmp_path / "run"
    r = F.run_killed(F.cli("bench", "--config", cfg, "--out", out), tmp_path,
                     delay=float(rng.uniform(0.3, full)))
    assert F.check_results(out, n_rows) in ("absent", "ok"), r
    assert F.visible_leftovers(out, {"results.json", "results.md", "report"}) == []
    F.run(F.cli("bench", "--config", cfg, "--out", out), tmp_path)
    assert F.check_results(out, n_rows) == "ok"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_features_sigkill_cache_entries_complete_and_reused(tmp_path):
    pytest.importorskip("torch")
    n = 48
    imgs, csv = F.make_image_folder(tmp_path, n=n, size=160)
    cache, out = tmp_path / "cache", tmp_path / "f.npz"
    cmd = F.cli("features", "--images", imgs, "--labels", csv, "--backbone", "tiny-multilevel",
                "--tile", "32", "--cache", cache, "--out", out, "--no-progress",
                "--batch-size", "8")
    rng = np.random.default_rng(3)
    kept: dict = {}
    for _ in range(2):
        # kill once some entries are written (a random moment inside the extraction)
        n_before = len(F.cache_entries(cache))
        r = F.run_killed(cmd, tmp_path, delay=float(rng.uniform(0.0, 0.4)),
                         trigger=lambda n0=n_before: len(F.cache_entries(cache)) > n0)
        ok, bad = F.check_cache(cache)
        assert bad == [], r
        assert F.check_npz(out, n) in ("absent", "ok")
        entries = F.cache_entries(cache)
        assert all(entries[k] == v for k, v in kept.items())  # earlier entries untouched
        kept = entries
    assert 0 < len(kept) <= n
    F.run(cmd, tmp_path)
    final = F.cache_entries(cache)
    assert len(final) == n and F.check_cache(cache)[1] == []
    assert all(final[k] == v for k, v in kept.items()), "finished entries were recomputed"
    assert F.check_npz(out, n) == "ok"
    assert F.visible_leftovers(tmp_path, {"imgs", "labels.csv", "cache", "f.npz"}) == []


def test_deep_training_sigkill_resumes_bitwise(tmp_path):
    pytest.importorskip("torch")
    ck, epochs, n_bags = tmp_path / "ck", 8, 2400
    rng = np.random.default_rng(11)
    r = F.run_killed(F.deep_cmd("train", ck, epochs, n_bags), tmp_path,
                     delay=float(rng.uniform(0.0, 0.6)),
                     trigger=lambda: (ck / "last.pt").exists())
    assert r["killed"], "training finished before the kill; make the run longer"
    done = F.checkpoint_epoch(ck)  # readable (weights_only) and complete
    assert done is not None and 0 <= done < epochs - 1
    assert not [p.name for p in ck.iterdir() if not p.name.startswith(".")
                and p.name not in ("last.pt", "best.pt", "history.json", "curves.png")]
    res = json.loads(F.run(F.deep_cmd("resume", ck, epochs, n_bags), tmp_path)
                     .stdout.strip().splitlines()[-1])
    assert res["equal_weights"] and res["equal_scores"], res
    assert res["epochs"] == epochs


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_damaged_cache_entries_are_recomputed(tmp_path, damage):
    """A cache entry cut short or overwritten (disk error, a copy interrupted by hand) is
    treated as missing and recomputed, never returned or crashing the run."""
    pytest.importorskip("torch")
    from mimlkit.datasets.tiling import TileBagger
    from mimlkit.features.extract import extract_features
    from mimlkit.features.multilevel import make_extractor

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(3)]
    ex = make_extractor("tiny-multilevel", None, seed=0)
    kw = dict(tiler=TileBagger(32), device="cpu", progress=False, cache_dir=tmp_path / "c")
    ref = extract_features(imgs, ex, **kw)
    files = sorted((tmp_path / "c").rglob("*.npz"))
    assert len(files) == 3
    data = files[1].read_bytes()
    files[1].write_bytes({"truncate": data[: len(data) // 2], "empty": b"",
                          "garbage": bytes(rng.integers(0, 256, len(data), dtype=np.uint8))
                          }[damage])
    again = extract_features(imgs, ex, **kw)
    np.testing.assert_allclose(again.instances, ref.instances, atol=1e-6)
    assert F.check_cache(tmp_path / "c")[1] == []  # the entry was rewritten whole
