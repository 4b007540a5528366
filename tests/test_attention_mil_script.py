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
