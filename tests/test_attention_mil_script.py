"""``benchmarks/attention_mil.py``: adding splits to a stage keeps the earlier ones.

The stage itself is replaced by a stub; nothing is fitted and ``benchmarks/results`` is
never touched."""

from __future__ import annotations

import json


def test_scene_first_adds_splits_and_keeps_commands(load_benchmark, tmp_path, monkeypatch):
    mod = load_benchmark("attention_mil")
    earlier = {"scene": {"n_splits": 2, "learners": {
        "abmil": {"ap": [0.8, 0.81], "fit_s": [10.0, 11.0], "splits": [0, 1]}}},
        "commands": {"scene": "python benchmarks/attention_mil.py --stage scene --splits 2"}}
    (tmp_path / f"{mod.NAME}.json").write_text(json.dumps(earlier))
    monkeypatch.setattr(mod, "RESULTS", tmp_path)
    written = {}
    monkeypatch.setattr(mod, "write_results",
                        lambda name, data, body, title=None: written.update(data=data, body=body))
    monkeypatch.setattr(mod, "stage_scene", lambda args: {"n_splits": 3, "learners": {
        "abmil": {"ap": [0.79], "fit_s": [9.0], "splits": [2]}}})
    mod.main(["--stage", "scene", "--first", "2", "--splits", "3"])
    r = written["data"]["scene"]["learners"]["abmil"]
    assert r["splits"] == [0, 1, 2] and r["ap"] == [0.8, 0.81, 0.79]
    cmd = written["data"]["commands"]["scene"]
    assert cmd.startswith("python benchmarks/attention_mil.py --stage scene --splits 2 ; ")
    assert "| abmil | 3 |" in written["body"]


def test_spmll_pick_chooses_on_validation_only(load_benchmark):
    """The OPML variant is the best validation score of the (a, b) x lr grid, replaced by an
    extension at that triple only when the extension's validation score is higher; the test
    scores play no part."""
    mod = load_benchmark("attention_mil")
    calls = []

    def run(key, **kw):
        calls.append((key, kw))
        val = {("opml", 0.5, 0.5, 3e-3): 0.9, ("OPML+budget", 0.5, 0.5, 3e-3): 0.95}
        test = 1.0 if key[0] == "softOPML" else 0.5  # the best test score must not matter
        return {"val": {"ap": val.get(key, 0.1)}, "test": {"ap": test}}

    pipeline = {"lrs": [1e-2, 3e-3], "ext": ["OPML+corr", "OPML+budget", "softOPML"]}
    (a, b, lr, name), r = mod.spmll_pick(run, pipeline, "ap", [0.2, 0.3])
    assert (a, b, lr, name) == (0.5, 0.5, 3e-3, "OPML+budget") and r["val"]["ap"] == 0.95
    assert len(calls) == 2 * len(mod.SPMLL_AB) + 3
    budget_kw = dict(calls)[("OPML+budget", 0.5, 0.5, 3e-3)]
    assert budget_kw["label_correction"]["max_total"] == [0.2, 0.3]
    assert budget_kw["loss_params"] == {"a": 0.5, "b": 0.5} and budget_kw["lr"] == 3e-3
