"""Packaging: a light core, extras for the heavy parts, one version source, a real wheel.

Fast tests run the core path in subprocesses where an import hook blocks the modules of an
extra (torch, dask, matplotlib), as if the extra were not installed, and check that each part
needing it fails at once with one line naming the extra. The slow tests build the wheel and
install it into fresh virtual environments outside the repository (they need the package
registry, as ``pip install`` does).

``python tests/test_packaging.py`` prints the third-party modules the core path imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "torchvision", "safetensors", "dask", "distributed", "matplotlib")
PIP_LINE = "pip install 'mimlkit[{}]'"

# Installed at the top of every subprocess: ``BLOCK`` (comma-separated top-level names) makes
# their import fail as it does when the package is absent.
BLOCKER = textwrap.dedent("""
    import importlib.abc, os, sys

    class _Blocker(importlib.abc.MetaPathFinder):
        names = {n for n in os.environ.get("BLOCK", "").split(",") if n}

        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in self.names:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _Blocker())
""")


def write_toy_arff(path: Path, n_bags: int = 36, seed: int = 0) -> Path:
    """A small relational (MIML) ARFF file: 1-4 instances of 3 features, labels a and b."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_bags):
        y = rng.integers(0, 2, size=2)
        y[i % 2] = 1  # every bag has a label; both labels occur
        k = int(rng.integers(1, 5))
        inst = rng.normal(size=(k, 3)) + 2.0 * y[:1]  # label a shifts the instances
        body = "\\n".join(",".join(f"{v:.4f}" for v in row) for row in inst)
        rows.append(f'b{i},"{body}",{y[0]},{y[1]}')
    header = ("@relation toy\n@attribute id {" + ",".join(f"b{i}" for i in range(n_bags))
              + "}\n@attribute bag relational\n  @attribute f1 numeric\n"
              "  @attribute f2 numeric\n  @attribute f3 numeric\n@end bag\n"
              "@attribute a {0,1}\n@attribute b {0,1}\n\n@data\n")
    path.write_text(header + "\n".join(rows) + "\n")
    return path


def _py(code: str, block: tuple[str, ...] = (), timeout: float = 240, **kw):
    env = {**os.environ, "BLOCK": ",".join(block), "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER + textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=timeout, **kw)


def _cli(args: list[str], block: tuple[str, ...] = (), **kw):
    code = ("import sys\nfrom mimlkit.cli import main\n"
            f"sys.argv = ['mimlkit', *{args!r}]\nmain()\n")
    return _py(code, block, **kw)


def _one_line_extra(result, extra: str) -> None:
    """The command failed with exit 2 and one line naming ``extra`` and the pip command."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert f"'{extra}' extra" in lines[0] and PIP_LINE.format(extra) in lines[0], lines[0]


# ----------------------------------------------------------------------------- core path
CORE_PATH = """
    import json, sys
    from pathlib import Path
    from typer.testing import CliRunner
    from mimlkit.cli import app

    data, out, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")
    r = CliRunner()
    codes, seen = {}, {}
    std = set(sys.stdlib_module_names)

    def loaded():
        mods = {m.split(".")[0] for m in sys.modules} - std - {"mimlkit", "__main__"}
        return sorted(m for m in mods if not m.startswith("_"))

    for name, args in [
        ("version", ["--version"]),
        ("info", ["datasets", "info", str(data)]),
        ("learners", ["learners", "--no-check"]),
        ("evaluate", ["evaluate", "--data", str(data), "-l", "mimlknn", "-l", "pooled-linear",
                      "-l", "mimlsvm", "--out", str(out / "r.json")]),
        ("fit", ["fit", "--data", str(data), "-l", "mimlknn", "--out", str(out / "m")]),
        ("predict", ["predict", "--model", str(out / "m"), "--data", str(data),
                     "--out", str(out / "p.csv")]),
    ]:
        if name not in steps:
            continue
        res = r.invoke(app, args)
        codes[name] = [res.exit_code, res.output[-400:]]
        seen[name] = loaded()
    if "report" in steps:
        from mimlkit.reporting import build_report  # plots load matplotlib when it is there
        build_report(out / "r.json", out / "report")
    print(json.dumps({"codes": codes, "modules": seen}))
"""


ALL_STEPS = ("version", "info", "learners", "evaluate", "fit", "predict", "report")


def core_path_modules(tmp: Path, block: tuple[str, ...] = (),
                      steps: tuple[str, ...] = ALL_STEPS) -> dict:
    """Run the core path (CLI version / info / learners / evaluate / fit / predict + report
    tables) in a fresh interpreter; return exit codes and, after each command, the
    third-party modules loaded so far."""
    data = write_toy_arff(tmp / "toy.arff")
    res = subprocess.run(
        [sys.executable, "-c", BLOCKER + textwrap.dedent(CORE_PATH), str(data), str(tmp),
         ",".join(steps)],
        env={**os.environ, "BLOCK": ",".join(block)}, capture_output=True, text=True,
        timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_core_path_imports_no_heavy_module(tmp_path):
    """With every package installed, the core path still loads none of the heavy ones."""
    # up to evaluate: nothing heavy. (`fit` saves with skops, whose import walks
    # scikit-learn's modules and so loads torch / dask *when they are installed*.)
    out = core_path_modules(tmp_path, steps=("info", "learners", "evaluate"))
    for name, (code, text) in out["codes"].items():
        assert code == 0, (name, text)
    loaded = set(out["modules"]["evaluate"])
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))
    assert {"numpy", "sklearn", "kmedoids", "typer"} <= loaded


def test_core_path_works_without_extras(tmp_path):
    """Torch, Dask and matplotlib blocked: the core commands work; the report keeps its
    tables and says how to get the plots."""
    out = core_path_modules(tmp_path, HEAVY)
    for name, (code, text) in out["codes"].items():
        assert code == 0, (name, text)
    html = (tmp_path / "report" / "report.html").read_text()
    assert PIP_LINE.format("report") in html
    assert "<img" not in html
    assert (tmp_path / "report" / "summary.md").is_file()
    assert (tmp_path / "p.csv").read_text().startswith("bag_id,predicted,a,b")


# ----------------------------------------------------------------------------- extras
def test_require_and_error_type():
    from mimlkit import MissingExtraError
    from mimlkit._extras import EXTRAS, extra_for_module, require

    assert issubclass(MissingExtraError, ImportError)
    assert require("deep", "json").dumps  # any importable module comes back
    with pytest.raises(MissingExtraError) as info:
        require("wsi", "mimlkit_no_such_module_xyz", "the WSI reader")
    assert info.value.extra == "wsi"
    assert str(info.value) == ("the WSI reader needs the 'wsi' extra (mimlkit_no_such_module_xyz"
                               " is not installed): pip install 'mimlkit[wsi]'")
    with pytest.raises(ValueError, match="unknown extra"):
        require("gpu", "json")
    assert extra_for_module("torch.nn") == "deep" and extra_for_module("numpy") is None
    assert set(EXTRAS) == {"deep", "dask", "report", "wsi", "store"}


def test_extras_match_pyproject():
    """Every extra of ``mimlkit._extras`` is declared in pyproject.toml with its modules'
    distributions, and `all` holds every one of them."""
    import tomllib

    from mimlkit._extras import EXTRAS

    opt = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    dist_of = {"torch": "torch", "torchvision": "torchvision", "safetensors": "safetensors",
               "dask": "dask", "distributed": "dask[distributed]", "matplotlib": "matplotlib",
               "tifffile": "tifffile", "tiffslide": "tiffslide", "zarr": "zarr",
               "h5py": "h5py"}
    for extra, mods in EXTRAS.items():
        declared = " ".join(opt[extra])
        for m in mods:
            assert dist_of[m] in declared, (extra, m, declared)
        assert extra in opt["all"][0]
    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"])
    for heavy in ("torch", "dask", "matplotlib", "safetensors"):
        assert heavy not in deps


def test_deep_learners_need_the_deep_extra():
    """Torch blocked: every registered learner resolves, or raises MissingExtraError naming
    'deep' (all of those flagged extra='deep' do, and `create` fails at once)."""
    code = """
        import json
        from mimlkit import MissingExtraError
        from mimlkit.registry import create, get_learner_class, learner_spec, list_learners
        out = {}
        for name in list_learners():
            try:
                get_learner_class(name)
                out[name] = ["ok", learner_spec(name).extra]
            except MissingExtraError as exc:
                out[name] = ["missing", exc.extra, str(exc)]
            except Exception as exc:
                out[name] = ["other", type(exc).__name__, str(exc)]
        try:
            create("deepmiml", epochs=1)
            out["create"] = "no error"
        except MissingExtraError as exc:
            out["create"] = str(exc)
        print(json.dumps(out))
    """
    res = _py(code, ("torch", "torchvision", "safetensors"))
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out.pop("create") == ("learner 'deepmiml' needs the 'deep' extra (torch is not "
                                 "installed): pip install 'mimlkit[deep]'")
    missing = {n for n, v in out.items() if v[0] == "missing"}
    assert not [v for v in out.values() if v[0] == "other"], out
    assert {"deepmiml", "multilabel-head", "vgg-l1lr", "selfpaced-miml"} <= missing
    for name, v in out.items():
        if v[0] == "ok":
            assert v[1] is None, (name, v)  # a learner flagged 'deep' must not resolve
        else:
            assert v[1] == "deep" and PIP_LINE.format("deep") in v[2], (name, v)
    assert {"mimlknn", "mimlsvm", "bmiml", "pooled-linear"} <= set(out) - missing


def test_cli_one_line_for_each_missing_extra(tmp_path):
    data = write_toy_arff(tmp_path / "toy.arff", n_bags=12)
    r = _cli(["evaluate", "--data", str(data), "--learner", "deepmiml", "--out",
              str(tmp_path / "r.json")], ("torch", "torchvision", "safetensors"))
    _one_line_extra(r, "deep")
    assert "learner 'deepmiml'" in r.stderr
    r = _cli(["evaluate", "--data", str(data), "--learner", "mimlknn", "--backend", "dask",
              "--out", str(tmp_path / "r.json")], ("dask", "distributed"))
    _one_line_extra(r, "dask")
    (tmp_path / "res.json").write_text(json.dumps({"rows": []}))
    r = _cli(["report", str(tmp_path / "res.json")], ("matplotlib",))
    _one_line_extra(r, "report")


def test_python_api_names_the_extra():
    code = """
        import numpy as np
        from mimlkit import MissingExtraError
        from mimlkit.distances import hausdorff
        import mimlkit.features as F
        bags = [np.zeros((1, 2)), np.ones((2, 2))]
        for call in (lambda: hausdorff(bags, backend="torch"),
                     lambda: F.load_backbone):
            try:
                call()
                print("no error")
            except MissingExtraError as exc:
                print(exc.extra, "|", exc)
    """
    res = _py(code, ("torch", "torchvision", "safetensors"))
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and all(ln.startswith("deep | ") for ln in lines), lines


def test_version_single_source():
    from importlib.metadata import version

    import mimlkit

    assert mimlkit.__version__ == version("mimlkit")
    r = _cli(["--version"])
    assert r.returncode == 0 and r.stdout.strip() == f"mimlkit {mimlkit.__version__}"


def test_constraints_pin_every_declared_dependency():
    """Each distribution named in pyproject (core, extras, dev) has an exact pin."""
    import re
    import tomllib

    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, ver = line.partition("==")
            assert ver, f"constraints.txt: {line!r} is not an exact pin"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = ver
    reqs = list(proj["dependencies"])
    for items in proj["optional-dependencies"].values():
        reqs += [r for r in items if not r.startswith("mimlkit")]
    for req in reqs:
        name = re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~ ;]", req)[0]).lower()
        assert name in pins, f"{req} has no pin in constraints.txt"
    assert "distributed" in pins and pins["torch"] == "2.13.0"


# ----------------------------------------------------------------------------- wheel (slow)
def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    return path / "bin"


def _pip(bindir: Path, *args: str, timeout: float = 1500) -> None:
    res = subprocess.run([str(bindir / "python"), "-m", "pip", "install", "--quiet", *args],
                         capture_output=True, text=True, timeout=timeout, cwd="/")
    assert res.returncode == 0, res.stderr[-4000:]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """``python -m build`` (sdist, then the wheel from it) into a temporary folder."""
    out = tmp_path_factory.mktemp("dist")
    res = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    wheels = list(out.glob("mimlkit-*.whl"))
    assert len(wheels) == 1 and list(out.glob("mimlkit-*.tar.gz")), list(out.iterdir())
    return wheels[0]


@pytest.mark.slow
def test_wheel_holds_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "mimlkit/py.typed" in names and "mimlkit/cli.py" in names
    src = ROOT / "src" / "mimlkit"
    data = [p.relative_to(src.parent).as_posix() for p in src.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert data and not set(data) - names, sorted(set(data) - names)
    meta = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: BSD-3-Clause" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), sorted(names)[-8:]
    assert "Requires-Python: >=3.11\n" in meta
    core = [ln for ln in meta.splitlines() if ln.startswith("Requires-Dist:")
            and "extra ==" not in ln]
    assert core and not [ln for ln in core if any(h in ln for h in HEAVY)], core


def _core_smoke(bindir: Path, work: Path) -> None:
    """The core commands of an installed mimlkit: --version, datasets info, evaluate with
    MIMLkNN, fit + predict, bench with the plots left out; a deep learner gives one line."""
    work.mkdir(exist_ok=True)
    data = write_toy_arff(work / "toy.arff")
    exe = str(bindir / "mimlkit")

    def run(*args):
        return subprocess.run([exe, *args], capture_output=True, text=True, cwd=work,
                              timeout=600, env={**os.environ, "COLUMNS": "200"})

    r = run("--version")
    assert r.returncode == 0 and r.stdout.strip() == "mimlkit 0.1.0", r
    r = run("datasets", "info", str(data))
    assert r.returncode == 0 and "36 bags" in r.stdout, r.stderr
    r = run("evaluate", "--data", str(data), "--learner", "mimlknn", "--protocol", "kfold:3",
            "--out", str(work / "res.json"))
    assert r.returncode == 0, r.stderr
    rows = json.loads((work / "res.json").read_text())["rows"]
    ap = [x["value"] for x in rows if x["metric"] == "average_precision"
          and x.get("label") is None]
    assert len(ap) == 3 and all(0 < v <= 1 for v in ap), rows[:3]
    r = run("fit", "--data", str(data), "--learner", "mimlknn", "--out", str(work / "model"))
    assert r.returncode == 0, r.stderr
    r = run("predict", "--model", str(work / "model"), "--data", str(data), "--out",
            str(work / "pred.csv"))
    assert r.returncode == 0 and len((work / "pred.csv").read_text().splitlines()) == 37, r
    r = run("evaluate", "--data", str(data), "--learner", "deepmiml", "--out",
            str(work / "res2.json"))
    _one_line_extra(r, "deep")
    # bench: a report with its tables, the plots left out with the extra named
    r = run("bench", "--suite", "synthetic", "--learner", "mimlknn", "--protocol", "holdout",
            "--out", str(work / "bench"))
    assert r.returncode == 0, r.stderr[-3000:]
    html = next((work / "bench").rglob("report.html")).read_text()
    assert PIP_LINE.format("report") in html and "<img" not in html
    # the module location proves the installed wheel ran, not the source tree
    loc = subprocess.run([str(bindir / "python"), "-c", "import mimlkit; print(mimlkit.__file__)"],
                         capture_output=True, text=True, cwd=work).stdout
    assert str(bindir.parent) in loc and str(ROOT) not in loc


@pytest.mark.slow
def test_wheel_core_install_outside_the_repo(wheel, tmp_path):
    """Core wheel in a fresh venv outside the repository (the exact tested versions): no
    torch / dask / matplotlib installed, and the core commands work."""
    bindir = _venv(tmp_path / "venv")
    _pip(bindir, "-c", str(ROOT / "constraints.txt"), str(wheel))
    listing = subprocess.run([str(bindir / "python"), "-m", "pip", "list", "--format=json"],
                             capture_output=True, text=True, check=True).stdout
    installed = {d["name"].lower() for d in json.loads(listing)}
    assert "mimlkit" in installed
    assert not installed & {"torch", "torchvision", "dask", "distributed", "matplotlib",
                            "safetensors"}, sorted(installed)
    _core_smoke(bindir, tmp_path / "work")
    (tmp_path / "core_venv_size.txt").write_text(subprocess.run(
        ["du", "-sh", str(tmp_path / "venv")], capture_output=True, text=True).stdout)


@pytest.mark.slow
def test_wheel_core_at_the_lower_bounds(wheel, tmp_path):
    """The core's declared lower bounds hold: each `name>=X.Y` of pyproject's dependencies
    installed as `name==X.Y.*` (its latest patch release), then the same core commands."""
    import re
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = []
    for req in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=(\d+)(?:\.(\d+))?.*", req.replace(" ", ""))
        assert m, f"{req}: expected NAME>=X.Y"
        floors.append(f"{m[1]}=={m[2]}.{m[3] or 0}.*" if m[3] else f"{m[1]}=={m[2]}.*")
    (tmp_path / "floors.txt").write_text("\n".join(floors) + "\n")
    bindir = _venv(tmp_path / "venv")
    _pip(bindir, "-c", str(tmp_path / "floors.txt"), str(wheel))
    _core_smoke(bindir, tmp_path / "work")


@pytest.mark.slow
def test_wheel_deep_install_runs_a_deep_learner(wheel, tmp_path):
    """`mimlkit[deep]` (torch from the constraints) in a fresh venv runs DeepMIML."""
    bindir = _venv(tmp_path / "venv")
    _pip(bindir, "-c", str(ROOT / "constraints.txt"), f"mimlkit[deep] @ {wheel.as_uri()}")
    data = write_toy_arff(tmp_path / "toy.arff")
    r = subprocess.run([str(bindir / "mimlkit"), "evaluate", "--data", str(data), "--learner",
                        "deepmiml", "--param", "epochs=2", "--out", str(tmp_path / "r.json")],
                       capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert any(x["metric"] == "average_precision" and x["learner"] == "deepmiml" for x in rows)


if __name__ == "__main__":  # the import-path report
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        found = core_path_modules(Path(d))
    print("exit codes:", {k: v[0] for k, v in found["codes"].items()})
    prev: set[str] = set()
    for step, mods in found["modules"].items():
        new = sorted(set(mods) - prev)
        heavy = sorted(set(new) & set(HEAVY))
        print(f"{step:9s} +{len(new):3d} modules: {', '.join(new) or '-'}"
              + (f"   HEAVY: {heavy}" if heavy else ""))
        prev |= set(mods)
