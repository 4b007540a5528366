"""The zoo suite (``mimlkit bench --suite zoo``): every default bag learner on every dataset
that fits, next to the trivial baselines.

Datasets: the real sets found under the data root (``$MIMLKIT_DATA`` or ``../shared/data``):
MIML Scene, Mulan emotions / yeast / bibtex (their official train/test files), MSRC v2 as
bags of hand-crafted 64-px tile descriptors; and the generated stress variants of
``mimlkit.datasets.synthetic.stress_variants`` (heterogeneous scales, sparse
high-dimensional instances, many rare labels, one-instance and large bags, label noise,
empty label sets). One split each: the official one where the data ship it, else one
random 2/3–1/3 split (seeded). Learners run with their library defaults (no tuning); a
learner that refuses a dataset says why in one line (``RefusedData``) and its cells show it.

Checks written next to every figure: AP ≥ ``prior`` AP + 0.02 and hamming loss ≤ the
``empty`` learner's. The summary counts, per learner, wins / ties / losses against
``pooled-linear`` and passes of both checks, and (with several datasets) average ranks,
the Friedman test and the Nemenyi critical difference (``mimlkit.evaluation.stats``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ZOO_DATASETS", "ZOO_METRICS", "zoo_datasets", "run_zoo", "zoo_checks",
           "zoo_markdown", "data_root"]

ZOO_METRICS = ["hamming_loss", "one_error", "coverage_norm", "ranking_loss",
               "average_precision", "macro_f1"]
AP_MARGIN = 0.02  # a learner must beat the label prior's AP by this much
TIE = 0.005  # |ΔAP| below this counts as a tie in wins / ties / losses


@dataclass(frozen=True)
class ZooDataset:
    name: str
    path: str  # relative to the data root
    test: str | None = None  # official test file (relative), if any
    options: dict[str, Any] = field(default_factory=dict)


ZOO_DATASETS = [
    ZooDataset("scene", "miml_scene/miml_03_data.arff"),
    ZooDataset("emotions", "mulan/emotions/emotions-train.arff",
               "mulan/emotions/emotions-test.arff"),
    ZooDataset("yeast", "mulan/yeast/yeast-train.arff", "mulan/yeast/yeast-test.arff"),
    ZooDataset("bibtex", "mulan/bibtex/bibtex-train.arff", "mulan/bibtex/bibtex-test.arff"),
    ZooDataset("msrc_v2-tiles64", "msrc_v2", options={"tile": 64}),
]


def data_root(root: str | os.PathLike | None = None) -> Path:
    """``root``, else ``$MIMLKIT_DATA``, else ``../shared/data`` from the working folder."""
    if root is not None:
        return Path(root)
    env = os.environ.get("MIMLKIT_DATA")
    return Path(env) if env else Path("..") / "shared" / "data"


def _concat(train: Any, test: Any, name: str) -> tuple[Any, Any]:
    """One dataset holding train then test, and the ``FixedSplit`` between them."""
    from mimlkit.bags import Bags
    from mimlkit.datasets import MIMLDataset
    from mimlkit.evaluation.runs import FixedSplit

    if list(test.label_names) != list(train.label_names):
        raise ValueError(f"{name}: the test file's labels differ from the training file's")
    a, b = train.bags, test.bags
    bags = Bags(np.vstack([a.instances, b.instances]),
                np.concatenate([a.offsets, a.offsets[-1] + b.offsets[1:]]))
    n = len(train.Y)
    ds = MIMLDataset(Y=np.vstack([train.Y, test.Y]), label_names=list(train.label_names),
                     bags=bags, name=name, meta={"official_split": True})
    return ds, FixedSplit(np.arange(n), np.arange(n, len(ds.Y)))


def _holdout(n: int, seed: int) -> Any:
    from mimlkit.evaluation.runs import FixedSplit

    perm = np.random.default_rng(seed).permutation(n)
    cut = int(round(2 * n / 3))
    return FixedSplit(np.sort(perm[:cut]), np.sort(perm[cut:]))


def zoo_datasets(root: str | os.PathLike | None = None, *, stress: bool = True,
                 only: list[str] | None = None, seed: int = 0):
    """Yield ``(name, dataset, splitter, note)``; ``dataset`` is None (and ``note`` the
    reason) for a real dataset whose files are absent."""
    from dataclasses import replace

    from mimlkit.datasets import load_dataset

    base = data_root(root)
    for z in ZOO_DATASETS:
        if only and z.name not in only:
            continue
        path = base / z.path
        if not path.exists():
            yield z.name, None, None, f"absent: {path}"
            continue
        ds = load_dataset(path, **z.options)
        if z.test is not None and (base / z.test).exists():
            ds, split = _concat(ds, load_dataset(base / z.test, **z.options), z.name)
            note = "official train/test split"
        else:
            ds = replace(ds, name=z.name)
            split = _holdout(len(ds.Y), seed)
            note = "one random 2/3-1/3 split"
        yield z.name, ds, split, note
    if not stress:
        return
    try:
        from mimlkit.datasets.synthetic import stress_variants
    except ImportError:  # older trees: no stress generator
        return
    from mimlkit.datasets import make_miml_bags

    for name, params in stress_variants().items():
        key = f"stress-{name}"
        if only and key not in only:
            continue
        ds = make_miml_bags(**{"random_state": seed, **params})
        ds = replace(ds, name=key)
        yield key, ds, _holdout(len(ds.Y), seed), "generated; one random 2/3-1/3 split"


def zoo_learners(learners: list[str] | None = None) -> list[str]:
    """Every registered, importable bag learner (baselines first)."""
    from mimlkit.registry import list_learners

    names = learners or list_learners(input="bags", available=True)
    first = [n for n in ("prior", "empty", "pooled-linear") if n in names]
    return first + [n for n in names if n not in first]


def run_zoo(root: str | os.PathLike | None = None, *, learners: list[str] | None = None,
            out_dir: str | os.PathLike = "runs/zoo", jobs: int = 1, stress: bool = True,
            only: list[str] | None = None, seed: int = 0, command: str | None = None,
            log: Any = print, report: bool = True) -> dict[str, Any]:
    """Run the zoo; write ``results.json`` (+ ``.md``, rows carry ``dataset``) in
    ``out_dir`` and return the payload."""
    from mimlkit.evaluation.results_io import _rows
    from mimlkit.evaluation.runner import evaluate

    names = zoo_learners(learners)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    datasets: dict[str, Any] = {}
    for dname, ds, split, note in zoo_datasets(root, stress=stress, only=only, seed=seed):
        if ds is None:
            log(f"zoo: {dname}: skipped ({note})")
            datasets[dname] = {"skipped": note}
            continue
        t0 = time.perf_counter()
        res = evaluate(names, ds, split, metrics=ZOO_METRICS, n_jobs=jobs, progress=False,
                       random_state=seed)
        these = _rows(res.table)
        for r in these:
            r["dataset"] = dname
        rows.extend(these)
        summ = ds.summary()
        datasets[dname] = {"note": note, "summary": summ,
                           "seconds": round(time.perf_counter() - t0, 1)}
        log(f"zoo: {dname}: {len(names)} learners in {datasets[dname]['seconds']} s")
        _write(out, rows, datasets, names, seed, command)  # after every dataset
    payload = _write(out, rows, datasets, names, seed, command)
    if report:
        try:
            from mimlkit.reporting import build_report

            build_report(out / "results.json", out / "report")
        except Exception as exc:  # noqa: BLE001 - the tables above are the result
            log(f"zoo: report not written ({type(exc).__name__}: {exc})")
    return payload


def _write(out: Path, rows: list[dict[str, Any]], datasets: dict[str, Any], names: list[str],
           seed: int, command: str | None) -> dict[str, Any]:
    """Write results.json and results.md (atomically) for the datasets done so far."""
    from mimlkit.evaluation.results_io import _atomic_json, environment
    from mimlkit.reporting.report import _atomic_write

    env = environment(seeds=[seed], command=command)
    env["protocol"] = "zoo: official split or one 2/3-1/3 split per dataset"
    payload = {"format": "mimlkit-results", "version": 1, "suite": "zoo",
               "title": "mimlkit zoo: default learners on every dataset",
               "command": env.get("command"), "date": env.get("date"), "seeds": [seed],
               "protocol": env["protocol"], "environment": env, "datasets": dict(datasets),
               "learners": names, "checks": zoo_checks(rows), "rows": list(rows)}
    _atomic_json(out / "results.json", payload)
    _atomic_write(out / "results.md", zoo_markdown(payload))
    return payload


def _cell(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(dataset, learner) -> {metric: mean value} or {"error": text}."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    acc: dict[tuple[str, str, str], list[float]] = {}
    for r in rows:
        key = (r["dataset"], r["learner"])
        out.setdefault(key, {})
        if r.get("metric") == "error" or r.get("error"):
            out[key]["error"] = str(r.get("error") or r.get("value"))
            continue
        if r.get("label") is not None:
            continue
        acc.setdefault((*key, r["metric"]), []).append(float(r["value"]))
    for (d, lrn, m), v in acc.items():
        out[(d, lrn)][m] = float(np.mean(v))
    return out


def _one_line(text: str) -> str:
    """The last line of an error record without its exception class name."""
    line = text.strip().splitlines()[-1] if text.strip() else text
    head, sep, rest = line.partition(": ")
    return rest if sep and head.replace(".", "").replace("_", "").isalnum() else line


def zoo_checks(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (dataset, learner): AP, HL, the baselines' AP / HL, pass / fail / refused."""
    cells = _cell(rows)
    dsets = list(dict.fromkeys(r["dataset"] for r in rows))
    learners = list(dict.fromkeys(r["learner"] for r in rows))
    table: dict[str, dict[str, Any]] = {}
    for d in dsets:
        prior = cells.get((d, "prior"), {})
        empty = cells.get((d, "empty"), {})
        ref = cells.get((d, "pooled-linear"), {})
        p_ap, e_hl = prior.get("average_precision"), empty.get("hamming_loss")
        table[d] = {}
        for lrn in learners:
            c = cells.get((d, lrn), {})
            if "error" in c:
                table[d][lrn] = {"status": "refused", "reason": _one_line(c["error"])}
                continue
            ap, hl = c.get("average_precision"), c.get("hamming_loss")
            if ap is None or hl is None:
                continue
            ok_ap = p_ap is None or lrn in ("prior", "empty") or ap >= p_ap + AP_MARGIN
            ok_hl = e_hl is None or hl <= e_hl + 1e-12
            vs = None
            if ref.get("average_precision") is not None and lrn != "pooled-linear":
                delta = ap - ref["average_precision"]
                vs = "win" if delta > TIE else "loss" if delta < -TIE else "tie"
            table[d][lrn] = {"ap": ap, "hl": hl, "ok_ap": bool(ok_ap), "ok_hl": bool(ok_hl),
                             "vs_pooled_linear": vs,
                             "status": "pass" if ok_ap and ok_hl else "fail"}
    # best default learner (baselines and pooled-linear excluded) vs pooled-linear, per dataset
    best: dict[str, Any] = {}
    for d, t in table.items():
        cand = {k: v["ap"] for k, v in t.items()
                if "ap" in v and k not in ("prior", "empty", "pooled-linear")}
        if cand and "ap" in t.get("pooled-linear", {}):
            b = max(cand, key=cand.get)
            best[d] = {"learner": b, "ap": cand[b], "pooled_linear_ap": t["pooled-linear"]["ap"],
                       "beats": cand[b] > t["pooled-linear"]["ap"]}
    wtl = {}
    for lrn in learners:
        res = [table[d][lrn].get("vs_pooled_linear") for d in dsets if lrn in table[d]]
        wtl[lrn] = {k: sum(r == k for r in res) for k in ("win", "tie", "loss")}
        wtl[lrn]["pass"] = sum(table[d].get(lrn, {}).get("status") == "pass" for d in dsets)
        wtl[lrn]["fail"] = sum(table[d].get(lrn, {}).get("status") == "fail" for d in dsets)
        wtl[lrn]["refused"] = sum(table[d].get(lrn, {}).get("status") == "refused"
                                  for d in dsets)
    return {"per_dataset": table, "best_vs_pooled_linear": best, "per_learner": wtl,
            "ap_margin": AP_MARGIN, "tie": TIE}


def _stats_section(rows: list[dict[str, Any]], learners: list[str]) -> str:
    """Average ranks / Friedman / Nemenyi CD over datasets (AP), when stats is available."""
    try:
        from mimlkit.evaluation.stats import multi_dataset_summary
    except ImportError:
        return ""
    use = [r for r in rows if r.get("learner") not in ("empty",)
           and r.get("metric") == "average_precision" and r.get("label") is None
           and not r.get("error")]
    try:
        s = multi_dataset_summary(use, "average_precision", True)
    except Exception as exc:  # noqa: BLE001 - e.g. fewer than 2 complete datasets
        return f"\nStatistics not computed: {exc}\n"
    ranks = s.get("avg_ranks") or {}
    lines = ["", "## Across datasets (AP): average ranks, Friedman, Nemenyi", ""]
    fr = s.get("friedman") or {}
    lines.append(f"- datasets with every learner: {len(s.get('datasets', []))} "
                 f"({', '.join(s.get('datasets', []))}); "
                 f"Friedman χ² = {fr.get('chi2', float('nan')):.2f} "
                 f"(p = {fr.get('p_chi2', float('nan')):.3g}), Iman–Davenport F = "
                 f"{fr.get('f', float('nan')):.2f} (p = {fr.get('p_f', float('nan')):.3g}); "
                 f"Nemenyi CD (α = 0.05) = {s.get('cd', float('nan')):.2f}")
    lines += ["", "| learner | average rank |", "|---|---|"]
    for k, v in sorted(ranks.items(), key=lambda kv: kv[1]):
        lines.append(f"| {k} | {v:.2f} |")
    return "\n".join(lines) + "\n"


def zoo_markdown(payload: dict[str, Any]) -> str:
    """The zoo's markdown: header, per-dataset table with checks, summary."""
    env = payload.get("environment", {})
    mach = env.get("machine", {})
    checks = payload["checks"]
    learners = payload["learners"]
    out = [f"# {payload['title']}", "",
           f"- command: `{payload.get('command')}`",
           f"- date: {payload.get('date')}",
           f"- machine: {mach.get('n_cpus')} CPUs ({mach.get('cpu')}), "
           f"{mach.get('memory_gib', '?')} GiB",
           f"- protocol: {payload.get('protocol')}; library defaults, no tuning",
           f"- checks: AP ≥ prior AP + {AP_MARGIN} and hamming loss ≤ the empty learner's; "
           "✗ marks a failed check; refusals give their one-line reason", ""]
    for d, info in payload["datasets"].items():
        if "skipped" in info:
            out.append(f"- {d}: skipped ({info['skipped']})")
            continue
        s = info.get("summary", {})
        out.append(f"- {d}: {s.get('n_bags', '?')} bags, {s.get('n_labels', '?')} labels, "
                   f"{info['note']}, {info['seconds']} s")
    per = checks["per_dataset"]
    dsets = list(per)
    out += ["", "## Average precision (↑) / hamming loss (↓) per dataset", "",
            "| learner | " + " | ".join(dsets) + " |",
            "|---|" + "---|" * len(dsets)]
    for lrn in learners:
        cells = []
        for d in dsets:
            c = per[d].get(lrn)
            if c is None:
                cells.append("—")
            elif c["status"] == "refused":
                cells.append("refused")
            else:
                mark = ("" if c["ok_ap"] else " ✗AP") + ("" if c["ok_hl"] else " ✗HL")
                cells.append(f"{c['ap']:.3f} / {c['hl']:.3f}{mark}")
        out.append(f"| {lrn} | " + " | ".join(cells) + " |")
    refusals = [(d, lrn, c["reason"]) for d in dsets for lrn, c in per[d].items()
                if c["status"] == "refused"]
    if refusals:
        out += ["", "## Refusals", ""]
        out += [f"- {lrn} on {d}: {r}" for d, lrn, r in refusals]
    best = checks["best_vs_pooled_linear"]
    n_beat = sum(b["beats"] for b in best.values())
    out += ["", "## Summary", "",
            f"- best default learner beats pooled-linear on {n_beat} of {len(best)} datasets: "
            + ", ".join(f"{d} ({b['learner']} {b['ap']:.3f} vs {b['pooled_linear_ap']:.3f})"
                        for d, b in best.items()), "",
            "| learner | wins / ties / losses vs pooled-linear (AP, tie < "
            f"{TIE}) | checks passed | failed | refused |", "|---|---|---|---|---|"]
    for lrn, w in checks["per_learner"].items():
        out.append(f"| {lrn} | {w['win']} / {w['tie']} / {w['loss']} | {w['pass']} | "
                   f"{w['fail']} | {w['refused']} |")
    out.append(_stats_section(payload["rows"], learners))
    return "\n".join(out) + "\n"
