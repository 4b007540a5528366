"""The ``mimlkit`` command line (Typer + rich).

Commands: ``datasets info``, ``learners``, ``evaluate``, ``fit``, ``predict``, ``bench``,
``report``, ``demo`` (and ``features`` when the feature-extraction module is installed).

Startup is kept fast: heavy modules (scikit-learn learners, torch, pandas, matplotlib) are
imported inside the commands. Errors caused by user input (``ValueError``,
``FileNotFoundError``, ``KeyError``, ``ImportError``, ...) print one red line on stderr and
exit with code 2; the global ``--debug`` option shows the traceback instead. Every output
file is written to a temporary sibling and renamed into place, so it is never half-written.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import functools
import os
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from mimlkit.cli_models import (  # typer + stdlib only
    _DATA_OPTS,
    _LABELS_XML,
    MEMORY_BUDGET_OPT,
)

__all__ = ["app", "main", "parse_param", "parse_params", "PROTOCOL_HELP"]

_HELP_NAMES = {"help_option_names": ["-h", "--help"]}


class _RootGroup(TyperGroup):
    """Root command group: ``--debug`` is accepted anywhere on the command line (it is
    moved in front of the subcommand before parsing); ``-h`` works like ``--help``."""

    def parse_args(self, ctx, args):  # noqa: D102
        args = list(args)
        stop = args.index("--") if "--" in args else len(args)
        n = sum(1 for a in args[:stop] if a == "--debug")
        if n:
            args = ["--debug"] + [a for i, a in enumerate(args)
                                  if not (a == "--debug" and i < stop)]
        return super().parse_args(ctx, args)


app = typer.Typer(
    name="mimlkit",
    help="Multi-instance multi-label learning: datasets, learners, evaluation, reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings=_HELP_NAMES,
    cls=_RootGroup,
)
datasets_app = typer.Typer(help="Inspect datasets.", no_args_is_help=True,
                           context_settings=_HELP_NAMES)
app.add_typer(datasets_app, name="datasets")

_STATE: dict[str, Any] = {"debug": False}
_USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, FileExistsError, KeyError, ImportError, TypeError,
    NotADirectoryError, IsADirectoryError, PermissionError, OSError,
)


# ----------------------------------------------------------------------------- plumbing
def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        msg = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        msg = f"{exc.filename}: {exc.strerror}"
    else:
        msg = str(exc) or type(exc).__name__
    return " ".join(msg.split())  # one line


def _fail(message: str) -> None:
    """Print one red line on stderr and exit with code 2."""
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/] [red]{escape(message)}[/]")
    raise typer.Exit(code=2)


def _handle_errors(fn):
    """Turn user-input errors into one red line + exit 2 (traceback with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except _USER_ERRORS as exc:
            if _STATE["debug"]:
                raise
            _fail(_error_line(exc))

    return wrapper


@contextlib.contextmanager
def _naming(where: str, path: Any):
    """Prefix a ``ValueError`` raised inside (e.g. by a learner's input validation, which
    knows the bag but not the file) with ``where`` so the one-line message names ``path``."""
    try:
        yield
    except ValueError as exc:
        msg = str(exc)
        if str(path) in msg:
            raise
        raise ValueError(f"{where}: {msg}") from None


#: errno values that mean "the output cannot be written" (disk full, quota, read-only, ...)
_WRITE_ERRNOS = tuple(getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EROFS", "EFBIG")
                      if hasattr(errno, n))


@contextlib.contextmanager
def writing(path: Any, what: str = "write", only_disk: bool = False):
    """Re-raise an ``OSError`` from inside (disk full, read-only folder, ...) as one naming
    ``path``: a failed ``write()`` does not say which file it was writing. ``only_disk``:
    convert only disk-full / read-only errors (for blocks that also read or connect)."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None and str(path) in str(exc.filename):
            raise
        if only_disk and exc.errno not in _WRITE_ERRNOS:
            raise
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise OSError(exc.errno, f"cannot {what} ({reason})", str(path)) from None


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` via a temporary sibling + rename (never half-written)."""
    from mimlkit.reporting.report import _atomic_write

    path = Path(path)
    with writing(path):
        _atomic_write(path, text)
    return path


def parse_param(text: str) -> tuple[str, Any]:
    """``"k=v"`` -> (k, literal value): int/float/bool/None/list/str (``true``/``none`` too)."""
    if "=" not in text:
        raise ValueError(f"--param {text!r}: expected KEY=VALUE")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key:
        raise ValueError(f"--param {text!r}: empty parameter name")
    raw = raw.strip()
    low = raw.lower()
    if low in ("true", "false"):
        return key, low == "true"
    if low in ("none", "null"):
        return key, None
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def parse_params(items: list[str] | None, learners: list[str]) -> dict[str, dict[str, Any]]:
    """Per-learner parameter dicts. ``k=v`` goes to every learner that has parameter ``k``
    (an error if none has it); ``NAME.k=v`` goes to learner ``NAME`` only."""
    from mimlkit.registry import create

    out: dict[str, dict[str, Any]] = {name: {} for name in learners}
    known = {name: set(create(name).get_params(deep=True)) for name in learners}
    for item in items or []:
        key, value = parse_param(item)
        if "." in key:
            target, _, pkey = key.partition(".")
            target = target.lower()
            if target not in out:
                raise ValueError(f"--param {item!r}: learner {target!r} is not among the "
                                 f"--learner values ({', '.join(learners)})")
            if pkey not in known[target]:
                raise ValueError(f"--param {item!r}: {target} has no parameter {pkey!r}; it has "
                                 f"{', '.join(sorted(known[target]))}")
            out[target][pkey] = value
            continue
        hits = [name for name in learners if key in known[name]]
        if not hits:
            raise ValueError(f"--param {item!r}: no selected learner has a parameter {key!r}"
                             + (f" ({learners[0]} has {', '.join(sorted(known[learners[0]]))})"
                                if len(learners) == 1 else ""))
        for name in hits:
            out[name][key] = value
    return out


def _load_dataset(path: Path, labels_xml: Path | None = None,
                  options: list[str] | None = None):
    from mimlkit.cli_models import check_unique_bag_ids, parse_data_options
    from mimlkit.datasets import load_dataset

    kwargs = parse_data_options(options)
    if labels_xml is not None:
        kwargs["labels_xml"] = labels_xml
    ds = load_dataset(path, **kwargs)
    check_unique_bag_ids(ds, path)
    return ds


PROTOCOL_HELP = ("holdout[:TEST] | repeat:N[:TRAIN] | kfold:K | stratified:K | "
                 "iterative-kfold:K | group-kfold:K | group-holdout[:TEST] | "
                 "group-repeat:N[:TRAIN]")
_PROTOCOL_ALIASES = {"iterative-kfold": "stratified", "iterative-stratified": "stratified",
                     "stratified-kfold": "stratified"}


def normalise_protocol(protocol: str | None) -> str | None:
    """Resolve protocol aliases (``iterative-kfold:K`` = ``stratified:K``)."""
    if protocol is None:
        return None
    name, sep, rest = protocol.strip().partition(":")
    return _PROTOCOL_ALIASES.get(name.lower().replace("_", "-"), name) + sep + rest


# ----------------------------------------------------------------------------- global options
def _version_callback(value: bool) -> None:
    if value:
        import mimlkit

        typer.echo(f"mimlkit {mimlkit.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version_callback,
                                 is_eager=True, help="Print the version and exit."),
) -> None:
    """mimlkit: multi-instance multi-label learning."""
    _STATE["debug"] = debug
    if not debug:
        import warnings

        warnings.showwarning = _warning_line


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one yellow line on stderr (the traceback-free CLI style)."""
    from rich.markup import escape

    _console(stderr=True).print(f"[yellow]warning:[/] {escape(' '.join(str(message).split()))}")


# ----------------------------------------------------------------------------- datasets


@datasets_app.command("info")
@_handle_errors
def datasets_info(
    path: Path = typer.Argument(..., help="ARFF file, .npz, image folder / label CSV, or a "
                                "built-in name (synthetic, synthetic-bags)."),
    labels_xml: Path | None = _LABELS_XML,
    option: list[str] | None = _DATA_OPTS,
) -> None:
    """Shape, labels, cardinality and per-label counts of a dataset."""
    from rich.table import Table

    ds = _load_dataset(path, labels_xml, option)
    s = ds.summary()
    con = _console()
    parts = [f"{s['n_bags']} bags"]
    if "n_instances" in s:
        parts += [f"{s['n_instances']:,} instances", f"{s['n_features']} features"]
    if "n_images" in s:
        parts.append(f"{s['n_images']} images")
    parts.append(f"{s['n_labels']} labels")
    con.print(f"[bold]{s['name']}[/] ({path}): " + ", ".join(parts))

    t = Table(title="summary", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value", justify="right")
    t.add_row("bags", str(s["n_bags"]))
    if "n_instances" in s:
        t.add_row("instances", f"{s['n_instances']:,}")
        t.add_row("features per instance", str(s["n_features"]))
        t.add_row("bag size min / mean / max",
                  f"{s['bag_size_min']} / {s['bag_size_mean']:.2f} / {s['bag_size_max']}")
    if "n_images" in s:
        t.add_row("images", str(s["n_images"]))
    t.add_row("labels", str(s["n_labels"]))
    t.add_row("cardinality", f"{s['cardinality']:.3f}")
    t.add_row("density", f"{s['density']:.3f}")
    t.add_row("distinct label sets", str(s["n_distinct_labelsets"]))
    if s.get("n_unobserved"):
        t.add_row("unobserved entries", str(s["n_unobserved"]))
    if "n_groups" in s:
        t.add_row("groups", str(s["n_groups"]))
    con.print(t)

    lt = Table(title="per-label counts")
    lt.add_column("label", style="bold")
    lt.add_column("positives", justify="right")
    lt.add_column("fraction", justify="right")
    n = max(s["n_bags"], 1)
    for name, c in zip(s["label_names"], s["label_counts"]):
        lt.add_row(name, str(c), f"{c / n:.3f}")
    con.print(lt)


# ----------------------------------------------------------------------------- learners
@app.command("learners")
@_handle_errors
def learners_cmd(
    family: str | None = typer.Option(None, help="Only this family."),
    check: bool = typer.Option(True, "--check/--no-check",
                               help="Import each learner to show whether it is available."),
) -> None:
    """List registered learners (the registry drives the CLI and the benchmarks)."""
    from rich.table import Table

    from mimlkit.registry import get_learner_class, learner_spec, list_learners

    t = Table(title="registered learners")
    for col in ("name", "family", "input", "quick") + (("available",) if check else ()) + (
            "description",):
        t.add_column(col)
    for name in list_learners(family):
        spec = learner_spec(name)
        row = [name, spec.family, spec.input, "yes" if spec.quick else "no"]
        if check:
            try:
                get_learner_class(name)
                row.append("[green]yes[/]")
            except (ImportError, AttributeError) as exc:
                extra = getattr(exc, "extra", None)  # MissingExtraError
                row.append(f"[red]no[/] (needs the {extra} extra)" if extra else "[red]no[/]")
        row.append(spec.description)
        t.add_row(*row)
    _console().print(t)


# ----------------------------------------------------------------------------- evaluate
def _check_backend(backend: str | None, scheduler: str | None = None) -> str:
    """The backend: ``--scheduler`` implies ``dask`` when ``--backend`` is not given and is
    refused with another backend; an unreachable scheduler fails here, in seconds."""
    if backend is None:
        backend = "dask" if scheduler else "loky"
    backend = backend.lower()
    if backend not in ("loky", "dask", "threading", "sequential"):
        raise ValueError(f"--backend must be loky or dask, got {backend!r}")
    if backend == "dask":
        from mimlkit._extras import require

        require("dask", "dask.distributed", "--backend dask")
    if scheduler and backend != "dask":
        raise ValueError(f"--scheduler {scheduler} needs --backend dask (got --backend "
                         f"{backend}); leave --backend out to imply dask")
    if scheduler:
        from mimlkit.cli_models import check_scheduler_reachable

        check_scheduler_reachable(scheduler)
    return backend


def _check_preset(preset: str) -> str | None:
    from mimlkit.registry import PRESETS

    if preset not in PRESETS:
        raise ValueError(f"--preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return None if preset == "default" else preset


@app.command("evaluate")
@_handle_errors
def evaluate_cmd(
    data: Path = typer.Option(..., "--data", help="Dataset path (ARFF, .npz, .zarr bag store, "
                              "image folder)."),
    learner: list[str] = typer.Option(..., "--learner", "-l",
                                      help="Registered learner name; repeatable."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="KEY=VALUE for every "
                                           "learner that has KEY, or NAME.KEY=VALUE; repeatable."),
    protocol: str = typer.Option("holdout", help=f"Split protocol: {PROTOCOL_HELP} "
                                 "(iterative-kfold:K = stratified:K; group-* need groups)."),
    train_size: float | None = typer.Option(None, "--train-size", help="Training fraction "
                                            "(< 1) or number of bags (>= 1) for holdout/repeat."),
    metrics: str | None = typer.Option(None, help="Comma-separated metric names "
                                       "(default: the standard MIML set)."),
    seed: int = typer.Option(0, help="Random seed of the splitter."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel learner x split jobs."),
    backend: str | None = typer.Option(None, help="loky | dask (default loky; dask when "
                                       "--scheduler is given)."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address tcp://HOST:PORT "
                                         "(implies --backend dask; default: a local cluster "
                                         "with --jobs workers)."),
    labels_xml: Path | None = _LABELS_XML,
    option: list[str] | None = _DATA_OPTS,
    out: Path = typer.Option(Path("results.json"), "--out", help="Results JSON (a markdown "
                             "table is written next to it as .md)."),
    preset: str = typer.Option("default", "--preset", help="Learner settings: default "
                               "(data-chosen scaling and thresholds) | paper (each paper's "
                               "literal settings)."),
    tune: bool = typer.Option(False, "--tune", help="Nested tuning: choose each learner's "
                              "hyper-parameters by 3-fold CV inside every training part."),
    test: Path | None = typer.Option(None, "--test", help="Official test file: train on all "
                                     "of --data, score on this (replaces --protocol)."),
    resume: bool = typer.Option(False, "--resume", help="Record finished (learner, split) "
                                "jobs in OUT.jobs.jsonl as they end and skip them on a rerun."),
    memory_budget_mb: float | None = MEMORY_BUDGET_OPT,
) -> None:
    """Evaluate learners on a dataset under a protocol; write results JSON + markdown."""
    from mimlkit.cli_models import apply_memory_budget
    from mimlkit.evaluation.bench import run_evaluation

    backend = _check_backend(backend, scheduler)
    protocol = normalise_protocol(protocol) or "holdout"
    learners = [x.lower() for x in learner]
    per = parse_params(param, learners)
    apply_memory_budget(per, memory_budget_mb)  # every learner must have the parameter
    ds = _load_dataset(data, labels_xml, option)
    ds_test = _load_dataset(test, labels_xml, option) if test is not None else None
    result, env = run_evaluation(
        ds, learners, per, protocol=protocol, train_size=train_size,
        metrics=[m.strip() for m in metrics.split(",")] if metrics else None,
        seed=seed, jobs=jobs, backend=backend, scheduler=scheduler,
        console=_console(stderr=True), command=_command_line(), source=str(data),
        preset=_check_preset(preset), tune=tune, test=ds_test,
        checkpoint=Path(str(out) + ".jobs.jsonl") if resume else None,
    )
    from mimlkit.evaluation.bench import write_results

    with writing(out):
        json_path, md_path = write_results(result, out, environment=env,
                                           title=f"{ds.name}: {', '.join(learners)} "
                                                 f"({protocol})")
    con = _console()
    con.print(_summary_table(result))
    con.print(f"results: [bold]{json_path}[/]  table: [bold]{md_path}[/]")


def _command_line() -> str:
    import shlex

    return "mimlkit " + " ".join(shlex.quote(a) for a in sys.argv[1:])


_HEADLINE = ("hamming_loss", "one_error", "coverage_norm", "coverage", "ranking_loss",
             "average_precision", "mean_average_precision", "macro_auc")


def _short(metric: str) -> str:
    try:
        from mimlkit.metrics import METRICS, resolve_metric

        return METRICS[resolve_metric(metric)].short
    except (ImportError, ValueError, KeyError):
        return metric


def _summary_table(result, width: int | None = None):
    """Rich table of mean ± std per learner x metric, sized to the terminal: short metric
    names, the best value per metric in bold green; if too wide, std is dropped and then only
    the headline metrics are kept (the full table is in results.md / the report)."""
    import numpy as np
    from rich.markup import escape
    from rich.table import Table

    from mimlkit.reporting.tables import _best, _wide, arrow

    mean, std, learners, metrics = _wide(result.table)
    width = width or _console().width
    name_w = max([len(str(x)) for x in learners] + [7]) + 3

    def need(ms, with_std):
        return name_w + 1 + sum(max(len(_short(m)) + 2, 11 if with_std else 5) + 3
                                for m in ms)

    shown, with_std = metrics, True
    if need(shown, True) > width:
        with_std = False
        if need(shown, False) > width:
            shown = [m for m in metrics if m in _HEADLINE] or metrics[:6]
            while len(shown) > 1 and need(shown, False) > width:
                shown = shown[:-1]
    best = _best(mean)
    note = "mean ± std over splits" if with_std else "mean over splits (± std in results.md)"
    if shown != metrics:
        note += f"; {len(shown)} of {len(metrics)} metrics"
    t = Table(title=note)
    t.add_column("learner", style="bold", no_wrap=True)
    for m in shown:
        t.add_column(f"{_short(m)} {arrow(m)}", justify="right", no_wrap=True)
    for lr in learners:
        cells = []
        for m in shown:
            mu, sd = mean.at[lr, m], std.at[lr, m]
            if mu is None or np.isnan(mu):
                cells.append("–")
                continue
            txt = f"{mu:.3f}±{sd:.3f}" if with_std else f"{mu:.3f}"
            cells.append(f"[bold green]{txt}[/]" if lr in best[m] else txt)
        t.add_row(escape(str(lr)), *cells)
    return t


# ----------------------------------------------------------------------------- fit / predict
from mimlkit.cli_models import fit_cmd, predict_cmd  # noqa: E402  (typer + stdlib only)

app.command("fit")(_handle_errors(fit_cmd))
app.command("predict")(_handle_errors(predict_cmd))


# ----------------------------------------------------------------------------- bench / report
@app.command("bench")
@_handle_errors
def bench_cmd(
    suite: str | None = typer.Option(None, help="synthetic | scene | spmll | zoo (zoo: every "
                                     "default learner on every dataset under --data, a data "
                                     "root, default $MIMLKIT_DATA or ../shared/data, plus "
                                     "generated stress sets)"),
    config: Path | None = typer.Option(None, "--config", help="Suite config (.yaml / .toml)."),
    data: Path | None = typer.Option(None, "--data", help="Dataset path (scene / spmll)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Parallel learner x split jobs."),
    backend: str | None = typer.Option(None, help="loky | dask (default loky; dask when "
                                       "--scheduler is given)."),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address tcp://HOST:PORT "
                                         "(implies --backend dask)."),
    learner: list[str] | None = typer.Option(None, "--learner", "-l",
                                             help="Restrict to these learners; repeatable."),
    protocol: str | None = typer.Option(None, help=f"Override the suite's protocol: "
                                        f"{PROTOCOL_HELP}."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default runs/<suite>)."),
) -> None:
    """Run a benchmark suite; write results.json and an HTML/markdown/CSV report."""
    from mimlkit.evaluation.bench import load_suite_config, run_suite

    backend = _check_backend(backend, scheduler)
    protocol = normalise_protocol(protocol)
    if (suite is None) == (config is None):
        raise ValueError("give exactly one of --suite NAME or --config FILE")
    if suite is not None and suite.lower() == "zoo":
        from mimlkit.evaluation.zoo import run_zoo

        out_dir = out or Path("runs") / "zoo"
        err = _console(stderr=True)
        with writing(out_dir, only_disk=True):
            run_zoo(data, learners=[x.lower() for x in learner] if learner else None,
                    out_dir=out_dir, jobs=jobs, command=_command_line(),
                    log=lambda m: err.print(m, markup=False))
        _console().print(f"results: [bold]{out_dir / 'results.md'}[/] (and results.json)")
        return
    cfg = load_suite_config(config) if config is not None else None
    out_dir = out or Path("runs") / (suite or Path(config).stem)  # type: ignore[arg-type]
    with writing(out_dir, only_disk=True):
        res = run_suite(suite or cfg, data=data, jobs=jobs, backend=backend,
                        scheduler=scheduler,
                        learners=[x.lower() for x in learner] if learner else None,
                        out_dir=out_dir, command=_command_line(),
                        console=_console(stderr=True), protocol=protocol)
    _print_bench(res)


def _print_bench(res) -> None:
    con = _console()
    con.print(_summary_table(res.result))
    if res.skipped:
        from rich.markup import escape

        for name, why in res.skipped.items():
            con.print(f"[yellow]skipped {escape(name)}[/]: {escape(str(why))}")
    con.print(f"results: [bold]{res.results_path}[/]")
    con.print(f"report:  [bold]{res.report_html}[/]  (markdown/CSV tables next to it)")


@app.command("report")
@_handle_errors
def report_cmd(
    results: Path = typer.Argument(..., help="results.json written by bench/evaluate."),
    out: Path | None = typer.Option(None, "--out", help="Report folder (default: "
                                    "<results dir>/report)."),
    explain: Path | None = typer.Option(None, "--explain", metavar="CSV",
                                        help="Instance-score CSV of `mimlkit predict "
                                        "--explain`: adds an 'Instance attributions' "
                                        "section with heatmaps of its first 6 bags."),
) -> None:
    """Regenerate the HTML/markdown/CSV report from a results JSON alone."""
    from mimlkit._extras import require
    from mimlkit.reporting import build_report

    require("report", "matplotlib", "mimlkit report (its plots)")
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no such results file")
    if explain is not None and not explain.is_file():
        raise FileNotFoundError(f"{explain}: no such explain CSV")
    out_dir = out or results.parent / "report"
    with writing(out_dir, only_disk=True):
        html = build_report(results, out_dir, explain=explain)
    _console().print(f"report: [bold]{html}[/]")


@app.command("demo")
@_handle_errors
def demo_cmd(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Output folder."),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Parallel jobs."),
) -> None:
    """Every registered quick learner on the built-in synthetic images (the synthetic suite
    of `mimlkit bench`)."""
    from mimlkit.evaluation.bench import run_suite

    with writing(out, only_disk=True):
        res = run_suite("synthetic", jobs=jobs, out_dir=out, command=_command_line(),
                        console=_console(stderr=True))
    _print_bench(res)


# ----------------------------------------------------------------------------- plug-ins
def _register_optional_commands() -> None:
    """``features`` (CNN feature extraction) when its module is present; imported lazily
    only if the module file exists, so startup stays fast and torch is not imported."""
    import importlib.util

    spec = importlib.util.find_spec("mimlkit")
    if spec is None or not spec.submodule_search_locations:
        return
    root = Path(list(spec.submodule_search_locations)[0])
    if (root / "features" / "cli_features.py").is_file():
        try:
            from mimlkit.features.cli_features import features as features_cmd
        except Exception:  # a broken optional module must not break the whole CLI
            return
        app.command("features")(_handle_errors(features_cmd))


_register_optional_commands()


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
