"""CLI truth: every help text agrees with the code.

For every command: ``--help`` and ``-h`` print the same page; every option the page shows
exists and every option exists on the page; every list of documented values (``a | b | c``
in an option's help) is exercised value by value (a list without an exerciser here fails the
test, so new values cannot go untested); the ``-o`` examples of the help are run;
``--debug`` works before and after the subcommand; every option docs/cli.md names exists.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
_ALTS = re.compile(r"[\w:+\[\]<>.-]+(?:\s\|\s[\w:+\[\]<>.-]+)+")


def _commands() -> list[tuple[list[str], Any]]:
    out: list[tuple[list[str], Any]] = []

    def walk(cmd: Any, path: list[str]) -> None:
        out.append((path, cmd))
        if hasattr(cmd, "commands"):  # a group (typer vendors its own click classes)
            for name, sub in cmd.commands.items():
                walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


COMMANDS = _commands()


def _is_option(p) -> bool:
    return getattr(p, "param_type_name", "") == "option"


def _opts(cmd: Any) -> set[str]:
    names: set[str] = set()
    for p in cmd.params:
        if _is_option(p):
            names |= {o for o in (*p.opts, *p.secondary_opts) if o.startswith("--")}
    return names


def test_every_command_is_listed():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"", "datasets", "datasets info", "learners", "evaluate", "fit", "predict", "bench",
            "report", "demo", "features"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "root")
def test_help_and_h_agree_and_show_every_option(path):
    cmd = dict((tuple(p), c) for p, c in COMMANDS)[tuple(path)]
    env = {"COLUMNS": "250"}
    long = runner.invoke(app, [*path, "--help"], env=env)
    short = runner.invoke(app, [*path, "-h"], env=env)
    assert long.exit_code == 0 and short.exit_code == 0, (long.output, short.output)
    assert long.output == short.output
    shown = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", long.output))
    declared = _opts(cmd) | {"--help"}
    if not hasattr(cmd, "commands"):  # a group's page also quotes its commands' options
        assert shown - declared == set(), f"help shows undeclared options {shown - declared}"
    assert declared - shown == set(), f"options missing from the help {declared - shown}"


# ----------------------------------------------------------------------------- documented values
@pytest.fixture(scope="module")
def grouped(tmp_path_factory):
    from mimlkit.datasets import make_miml_bags

    ds = make_miml_bags(n_bags=40, n_labels=3, n_features=4, random_state=0)
    ds.groups = np.arange(len(ds)) // 2
    return ds


def _protocol_instances(template: str) -> list[str]:
    out = [template]
    for opt, val in (("[:TEST]", ":0.3"), ("[:TRAIN]", ":0.6")):
        out = [v for t in out for v in ((t.replace(opt, ""), t.replace(opt, val))
                                        if opt in t else (t,))]
    return [t.replace("N", "3").replace("K", "3") for t in out]


def _check_protocol(value: str, ds) -> None:
    from mimlkit.cli import normalise_protocol
    from mimlkit.evaluation.bench import make_splitter

    for spec in _protocol_instances(value):
        splitter = make_splitter(normalise_protocol(spec), seed=0)
        splits = list(splitter.split(ds, ds.Y, ds.groups))
        assert splits, spec
        for tr, te in splits:
            assert len(tr) and len(te) and not set(tr) & set(te)


def _check_backend(value: str, ds) -> None:
    from mimlkit.cli import _check_backend as check

    assert check(value) == value


def _check_suite(value: str, ds) -> None:
    from mimlkit.evaluation.suites import SUITES

    if value == "zoo":  # its own runner (evaluation/zoo.py), not a SuiteConfig
        from mimlkit.evaluation.zoo import run_zoo  # noqa: F401
        return
    assert value in SUITES


def _check_resize(value: str, ds) -> None:
    pytest.importorskip("torch")
    from mimlkit.features.multilevel import make_extractor

    assert make_extractor("tiny", resize=value).preprocess.config()["resize"] == value


def _check_device(value: str, ds) -> None:
    from mimlkit.cli_models import check_device

    spec = value.replace(":N", ":0")
    if spec in ("auto", "cpu"):
        check_device(spec)
        return
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        check_device(spec)
    else:  # documented, and refused here with one clear line (tested in test_cli_errors)
        with pytest.raises(ValueError, match=re.escape(spec)):
            check_device(spec)


EXERCISERS = {"--protocol": _check_protocol, "--backend": _check_backend,
              "--suite": _check_suite, "--resize": _check_resize, "--device": _check_device}


def _documented_values():
    for path, cmd in COMMANDS:
        for p in cmd.params:
            if _is_option(p) and p.help:
                for m in _ALTS.finditer(" ".join(p.help.split())):
                    values = [v.strip().rstrip(".") for v in m.group(0).split("|")]
                    yield " ".join(path), p.opts[0], values


DOCUMENTED = list(_documented_values())


def test_value_lists_found():
    opts = {o for _, o, _ in DOCUMENTED}
    assert {"--protocol", "--backend", "--suite", "--device", "--resize"} <= opts


@pytest.mark.parametrize("cmd,opt,values", DOCUMENTED, ids=lambda x: str(x)[:30])
def test_documented_values_are_accepted(cmd, opt, values, grouped):
    assert opt in EXERCISERS, f"`{cmd} {opt}` documents values {values} that no test exercises"
    for v in values:
        EXERCISERS[opt](v, grouped)


def test_protocol_alias_both_names_in_a_real_run(tmp_path):
    from mimlkit.datasets import make_miml_bags, save_npz

    save_npz(make_miml_bags(n_bags=30, n_labels=3, n_features=4, random_state=0),
             tmp_path / "d.npz")
    results = []
    for name in ("iterative-kfold:3", "stratified:3"):
        out = tmp_path / f"{name.split(':')[0]}.json"
        r = runner.invoke(app, ["evaluate", "--data", str(tmp_path / "d.npz"), "-l",
                                "pooled-linear", "--protocol", name, "--metrics",
                                "hamming_loss", "--out", str(out)])
        assert r.exit_code == 0, r.output
        import json

        rows = json.loads(out.read_text())["rows"]
        results.append(sorted((row["split"], row["value"]) for row in rows))
    assert results[0] == results[1] and len({s for s, _ in results[0]}) == 3


def test_data_option_examples_of_the_help_work(image_folder):
    """Every ``KEY=VALUE`` example of the ``-o`` help runs (``sep=|`` included)."""
    cmd = dict((tuple(p), c) for p, c in COMMANDS)[("datasets", "info")]
    helptext = " ".join(next(p for p in cmd.params if "--option" in p.opts).help.split())
    examples = [e.strip() for e in re.search(r"e\.g\. (.*)\)", helptext).group(1).split(", ")]
    assert "sep=|" in examples and "label_column=Finding Labels" in examples
    base = ["datasets", "info", str(image_folder / "labels.csv"), "-o",
            "label_column=Finding Labels", "-o", f"image_dir={image_folder / 'imgs'}"]
    for ex in examples:
        ex = ex.replace("=DIR", f"={image_folder / 'imgs'}")
        r = runner.invoke(app, [*base, "-o", ex])
        assert r.exit_code == 0, (ex, r.output)
        assert "Effusion" in r.output and "Mass" in r.output
    # no_finding=None disables the token: "No Finding" becomes a label of its own
    r = runner.invoke(app, [*base, "-o", "no_finding=None"])
    assert r.exit_code == 0 and "No Finding" in r.output
    r = runner.invoke(app, base)
    assert r.exit_code == 0 and "No Finding" not in r.output
    # aliases as typed in docs (label-column), and a wrong key lists the accepted ones
    r = runner.invoke(app, ["datasets", "info", str(image_folder / "labels.csv"), "-o",
                            "label-column=Finding Labels", "-o", "sep=|"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, [*base, "-o", "seperator=|"])
    assert r.exit_code == 2 and "unknown reader option 'seperator'" in r.output
    assert "sep" in r.output and "Traceback" not in r.output


# ----------------------------------------------------------------------------- --debug anywhere
@pytest.mark.parametrize("where", ["front", "after-command", "end"])
def test_debug_anywhere(tmp_path, where):
    missing = str(tmp_path / "missing.arff")
    args = {"front": ["--debug", "datasets", "info", missing],
            "after-command": ["datasets", "--debug", "info", missing],
            "end": ["datasets", "info", missing, "--debug"]}[where]
    r = runner.invoke(app, args)
    assert r.exit_code not in (0, 2) and isinstance(r.exception, ValueError), r.output
    r = runner.invoke(app, ["datasets", "info", missing])  # and off again without it
    assert r.exit_code == 2


def test_debug_after_subcommand_entry_point(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mimlkit.cli", "report",
                        str(tmp_path / "none.json"), "--debug"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 1 and "Traceback" in p.stderr


# ----------------------------------------------------------------------------- docs/cli.md
def test_docs_name_only_real_options():
    text = (ROOT / "docs" / "cli.md").read_text()
    every = set().union(*(_opts(c) for _, c in COMMANDS)) | {"--help", "--version", "--debug"}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text))
    assert named - every == set(), f"docs/cli.md names unknown options {named - every}"
    for path, _ in COMMANDS:
        if path:
            assert f"mimlkit {' '.join(path)}" in text, f"docs/cli.md lacks `mimlkit {path}`"
