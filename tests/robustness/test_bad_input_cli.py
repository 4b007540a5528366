"""Bad input through the CLI (typer's CliRunner, in process): ``fit``, ``evaluate``,
``bench``, ``features``, ``predict``.

Each bad input must exit with code 2, print exactly one ``error:`` line naming the file (or
the file and its line / bag), show no traceback without ``--debug``, and leave nothing in
the output folder (no model, results, report, npz or temporary file).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()

ARFF_HEADER = """@relation toy
@attribute id {1,2,3,4,5,6}
@attribute bag relational
  @attribute f1 numeric
  @attribute f2 numeric
@end bag
@attribute a {0,1}
@attribute b {0,1}
@data
"""
ARFF_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="a"></label><label name="b"></label>
</labels>
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Good and bad inputs, written once per module."""
    from mimlkit.datasets import make_miml_bags, save_npz

    d = tmp_path_factory.mktemp("cli_bad")
    f: dict[str, Path] = {}
    ds = make_miml_bags(n_bags=12, n_labels=3, n_features=5, random_state=0)
    f["good"] = save_npz(ds, d / "good.npz")
    f["four"] = save_npz(ds.subset(np.arange(4)), d / "four.npz")
    X = np.ones((4, 5))
    X[1, 2] = np.nan
    np.savez(d / "nan.npz", X=X, Y=np.eye(4, 3))
    f["nan"] = d / "nan.npz"
    np.savez(d / "wide.npz", X=np.ones((4, 7)), Y=np.eye(4, 3))
    f["wide"] = d / "wide.npz"
    Y = ds.Y.copy()
    Y[3, 0] = -1
    ds.Y = Y
    f["unobserved"] = save_npz(ds, d / "unobserved.npz")
    rows = ['1,"1,2\\n3,4",1,0', '2,"5,6",0,1', '3,"7,8",1,1', '4,"0,1",0,0', '5,"2,2",1,0',
            '6,"3,3",0,1']
    (d / "trunc.arff").write_text(ARFF_HEADER + "\n".join(rows[:3]) + '\n4,"0,1\\n2')
    (d / "trunc.xml").write_text(ARFF_XML)
    f["trunc"] = d / "trunc.arff"
    (d / "mismatch.arff").write_text(ARFF_HEADER + "\n".join(rows) + "\n")
    (d / "mismatch.xml").write_text(ARFF_XML.replace('"b"', '"zebra"'))
    f["mismatch"] = d / "mismatch.arff"
    f["zero"] = d / "zero.npz"
    f["zero"].write_bytes(b"")
    # images: a folder with one zero-byte file, one 16-bit, one grey and one RGBA picture
    img = d / "imgs"
    img.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(img / "rgb.png")
    Image.fromarray(rng.integers(0, 65536, (30, 30), dtype=np.uint16)).save(img / "h16.png")
    Image.fromarray(rng.integers(0, 256, (30, 30), dtype=np.uint8)).save(img / "grey.png")
    Image.fromarray(rng.integers(0, 256, (30, 30, 4), dtype=np.uint8)).save(img / "rgba.png")
    (img / "zero.png").write_bytes(b"")
    (d / "odd_ok.csv").write_text("image,cat,dog\nrgb.png,1,0\nh16.png,0,1\ngrey.png,1,1\n"
                                  "rgba.png,0,0\n")
    (d / "corrupt.csv").write_text("image,cat,dog\nrgb.png,1,0\nzero.png,0,1\n")
    (d / "missing.csv").write_text("image,cat,dog\nrgb.png,1,0\nnope.png,0,1\n")
    (d / "badlabel.csv").write_text("image,cat,dog\nrgb.png,1,0\ngrey.png,maybe,1\n")
    for k in ("odd_ok", "corrupt", "missing", "badlabel"):
        f[k] = d / f"{k}.csv"
    f["imgs"] = img
    model = d / "model"
    r = runner.invoke(app, ["fit", "--data", str(f["good"]), "--learner", "pooled-linear",
                            "--out", str(model)])
    assert r.exit_code == 0, r.output
    f["model"] = model
    return f


def _yaml(path: Path, data: Path, protocol: str = "holdout") -> Path:
    path.write_text(f"name: bad\ndataset: {data}\nprotocol: {protocol}\n"
                    "metrics: [average_precision]\nlearners: [pooled-linear]\n")
    return path


def check_failure(args: list[str], out_dir: Path, *names: str, last_line_only: bool = False):
    """Exit 2, one ``error:`` line naming ``names``, no traceback, ``out_dir`` left empty."""
    out_dir.mkdir(exist_ok=True)
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in err if ln.startswith("error:")]
    assert len(errors) == 1, err
    if last_line_only:  # progress lines printed before the failure was known
        assert err[-1] == errors[0], err
    else:
        assert err == errors, err
    for n in names:
        assert n in errors[0], (n, errors[0])
    assert "Traceback" not in r.output
    assert r.stdout == ""
    left = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*"))
    assert left == [], f"partial output left behind: {left}"
    return errors[0]


# ----------------------------------------------------------------------------- fit
@pytest.mark.parametrize("case, extra, names", [
    ("nan", [], ["nan.npz", "bag 1 contains NaN or inf"]),
    ("trunc", [], ["trunc.arff", "line 13"]),
    ("mismatch", [], ["mismatch.arff", "zebra"]),
    ("zero", [], ["zero.npz", "not a readable"]),
    ("unobserved", ["--learner", "mimlsvm"], ["unobserved.npz", "labels of bag 3", "-1"]),
    ("good", ["--param", "C=-1"], ["good.npz", "C must be"]),
    ("corrupt", ["--option", "tile=8"], ["zero.png"]),
    ("missing", ["--option", "tile=8"], ["missing.csv", "line 3", "nope.png"]),
    ("badlabel", ["--option", "tile=8"], ["badlabel.csv", "line 3", "maybe"]),
])
def test_fit_bad_input(files, tmp_path, case, extra, names):
    out = tmp_path / "out"
    args = ["fit", "--data", str(files[case]), "--out", str(out / "model")]
    if "--learner" not in extra:
        args += ["--learner", "pooled-linear"]
    if case in ("corrupt", "missing", "badlabel"):
        extra = [*extra, "--option", f"image_dir={files['imgs']}"]
    check_failure(args + extra, out, *names)


def test_fit_debug_shows_the_exception(files, tmp_path):
    r = runner.invoke(app, ["--debug", "fit", "--data", str(files["nan"]), "--learner",
                            "pooled-linear", "--out", str(tmp_path / "m")])
    assert r.exit_code not in (0, 2) and isinstance(r.exception, ValueError)
    assert not (tmp_path / "m").exists()


def test_fit_odd_pixel_formats_is_a_correct_result(files, tmp_path):
    """16-bit, grey and RGBA pictures are valid input: the fit succeeds."""
    r = runner.invoke(app, ["fit", "--data", str(files["odd_ok"]), "--option",
                            f"image_dir={files['imgs']}", "--option", "tile=10", "--learner",
                            "pooled-linear", "--out", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "m" / "config.json").is_file()


# ----------------------------------------------------------------------------- evaluate
@pytest.mark.parametrize("case, protocol, names", [
    ("four", "kfold:10", ["four.npz", "n_splits=10 is larger than the number of bags (4)"]),
    ("four", "stratified:5", ["four.npz", "larger than the number of bags"]),
    ("trunc", "holdout", ["trunc.arff", "line 13"]),
    ("nan", "holdout", ["nan.npz", "bag 1"]),
    ("mismatch", "holdout", ["mismatch.arff"]),
    ("good", "kfold:x", ["kfold:x"]),
])
def test_evaluate_bad_input(files, tmp_path, case, protocol, names):
    out = tmp_path / "out"
    check_failure(["evaluate", "--data", str(files[case]), "--learner", "pooled-linear",
                   "--protocol", protocol, "--out", str(out / "results.json")], out, *names)


def test_evaluate_every_split_failing(files, tmp_path):
    """mimlsvm cannot take -1 labels: every split fails; one error line (after progress)."""
    out = tmp_path / "out"
    check_failure(["evaluate", "--data", str(files["unobserved"]), "--learner", "mimlsvm",
                   "--protocol", "repeat:2", "--train-size", "0.9", "--out",
                   str(out / "results.json")],
                  out, "unobserved.npz", "every run failed", "-1", last_line_only=True)


# ----------------------------------------------------------------------------- bench
@pytest.mark.parametrize("case, protocol, names", [
    ("nan", "holdout", ["nan.npz", "bag 1"]),
    ("four", "kfold:10", ["four.npz", "larger than the number of bags"]),
    ("trunc", "holdout", ["trunc.arff", "line 13"]),
    ("zero", "holdout", ["zero.npz"]),
])
def test_bench_bad_input(files, tmp_path, case, protocol, names):
    out = tmp_path / "out"
    cfg = _yaml(tmp_path / "suite.yaml", files[case], protocol)
    check_failure(["bench", "--config", str(cfg), "--out", str(out / "run")], out, *names)


def test_bench_bad_config_files(files, tmp_path):
    out = tmp_path / "out"
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    check_failure(["bench", "--config", str(bad), "--out", str(out / "run")], out,
                  "broken.yaml", "invalid YAML")
    missing = _yaml(tmp_path / "nodata.yaml", tmp_path / "absent.npz")
    check_failure(["bench", "--config", str(missing), "--out", str(out / "run")], out,
                  "absent.npz")


# ----------------------------------------------------------------------------- features
@pytest.mark.parametrize("case, names", [
    ("corrupt", ["zero.png", "cannot read image"]),
    ("missing", ["missing.csv", "line 3", "nope.png"]),
    ("badlabel", ["badlabel.csv", "line 3"]),
])
def test_features_bad_input(files, tmp_path, case, names):
    pytest.importorskip("torch")
    out = tmp_path / "out"
    check_failure(["features", "--images", str(files["imgs"]), "--labels", str(files[case]),
                   "--backbone", "tiny-multilevel", "--image-size", "16", "--no-progress",
                   "--out", str(out / "feats.npz")], out, *names)


def test_features_odd_pixel_formats_is_a_correct_result(files, tmp_path):
    pytest.importorskip("torch")
    from mimlkit.datasets import load_npz

    out = tmp_path / "feats.npz"
    r = runner.invoke(app, ["features", "--images", str(files["imgs"]), "--labels",
                            str(files["odd_ok"]), "--backbone", "tiny-multilevel",
                            "--image-size", "16", "--no-progress", "--out", str(out)])
    assert r.exit_code == 0, r.output
    ds = load_npz(out)
    assert len(ds) == 4 and np.isfinite(ds.bags.instances).all()


# ----------------------------------------------------------------------------- predict
@pytest.mark.parametrize("case, names", [
    ("wide", ["wide.npz", "data has 7", "fitted on 5"]),
    ("nan", ["nan.npz", "bag 1 contains NaN or inf"]),
    ("trunc", ["trunc.arff", "line 13"]),
    ("zero", ["zero.npz"]),
])
def test_predict_bad_input(files, tmp_path, case, names):
    out = tmp_path / "out"
    check_failure(["predict", "--model", str(files["model"]), "--data", str(files[case]),
                   "--out", str(out / "predictions.csv")], out, *names)


def test_predict_missing_or_empty_model_folder(files, tmp_path):
    out = tmp_path / "out"
    check_failure(["predict", "--model", str(tmp_path / "nomodel"), "--data",
                   str(files["good"]), "--out", str(out / "p.csv")], out, "nomodel")
    (tmp_path / "empty_model").mkdir()
    check_failure(["predict", "--model", str(tmp_path / "empty_model"), "--data",
                   str(files["good"]), "--out", str(out / "p.csv")], out, "empty_model",
                  "config.json")
