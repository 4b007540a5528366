"""``benchmarks/select_spmll_variants.py``: the pipeline rule (largest mean share of the gap
closed, ties to the simpler pipeline) and its markdown; nothing is fitted."""

from __future__ import annotations

import pytest


def _split(i, pipes):
    refs = {p: {"full": {"ap": 0.8, "map": 0.7}, "an": {"ap": 0.7, "map": 0.6}}
            for p in ("fixed", "es")}
    return {"split": i, "budget": [0.2], "refs": refs,
            "pipelines": {k: {m: {"test": v[m], "choice": [0.5, 0.5, 0.01, "OPML"]}
                              for m in ("ap", "map")} for k, v in pipes.items()},
            "candidates": {"an|fixed": {"val": {"ap": 0.7, "map": 0.6},
                                        "test": {"ap": 0.7, "map": 0.6}}}}


def test_summary_picks_the_largest_mean_share_closed(load_benchmark):
    mod = load_benchmark("select_spmll_variants")
    pipes = {"P0": {"ap": 0.72, "map": 0.62}, "P1": {"ap": 0.75, "map": 0.66},
             "P2": {"ap": 0.75, "map": 0.66}, "P3": {"ap": 0.70, "map": 0.61},
             "P4": {"ap": 0.69, "map": 0.60}}
    outs = [_split(0, pipes), _split(1, pipes)]
    s = mod._summary(outs)
    assert s["pipelines"]["P1"]["ap"]["closed"] == pytest.approx(0.5)
    assert s["pipelines"]["P1"]["mean_closed"] == pytest.approx(0.55)
    assert s["chosen"] == "P1"  # P2 ties with P1: the simpler (lower number) wins
    md = mod._markdown({"outer": 2, "summary": s, "splits": outs})
    assert "**Chosen: P1**" in md and "| an · fixed |" in md


def test_probe_help_names_what_the_script_accepts(load_benchmark, capsys):
    mod = load_benchmark("select_spmll_variants")
    with pytest.raises(SystemExit) as e:
        mod.main(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for probe in ("grid", "early", "precision"):
        assert f"{probe}:" in text
    with pytest.raises(SystemExit) as e:
        mod.main(["--probe", "everything"])
    assert e.value.code == 2
