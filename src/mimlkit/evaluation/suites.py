"""Benchmark suite definitions: the built-in suites, config files (YAML/TOML), learner
selection from the registry and building each learner with the suite's overrides.

Config files use the same keys as the built-in suites (see ``mimlkit.evaluation.bench``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mimlkit.evaluation.results_io import _json_default, _jsonable
from mimlkit.evaluation.single_positive import SinglePositiveTraining

__all__ = ["SUITES", "SPMLL_LOSSES", "LearnerEntry", "SuiteConfig", "load_suite_config",
           "get_suite"]

# Parameter overrides applied (only where the learner has the parameter) in the synthetic
# suite so that every quick learner fits in seconds on 2 cores.
_SYNTHETIC_FAST: dict[str, Any] = {
    "max_epochs": 30, "n_epochs": 30, "epochs": 30, "n_jobs": 1,
}
# learner-specific overrides for the synthetic suite (name -> params)
_SYNTHETIC_OVERRIDES: dict[str, dict[str, Any]] = {
    "transfer-lr": {"standardize": True},  # unscaled colour/texture features: L1 kills all
}
# Learners not flagged quick that the demo still shows, with settings that make them fit the
# synthetic images (96 px, 16 px tiles) in seconds: tiny inputs, few rounds/epochs. These
# runs show that every method works end to end; they are not tuned accuracy figures.
_SYNTHETIC_DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "mimlboost": {},  # library defaults (25 rounds, 2000-instance resamples): seconds here
    "mimlmisvm": {"max_iter": 3},  # ~40 s per Scene fit: not quick, cheap on the demo set
    "vgg-l1lr": {"image_size": 64, "standardize": True},
    "vgg-lr": {"image_size": 64, "standardize": True},
    "multilabel-cnn": {"backbone": "tiny", "image_size": 64, "max_epochs": 15},
    "selfpaced-miml": {"backbone": "tiny", "tile_size": 16, "image_size": 32,
                       "max_epochs": 10, "batch_size": 64, "lr": 3e-3},
}

SPMLL_LOSSES = ("an", "wan", "ls", "epr", "role", "opml")


# ----------------------------------------------------------------------------- config
@dataclass
class LearnerEntry:
    name: str  # registry name
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None  # display name in results (unique)

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass
class SuiteConfig:
    name: str
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "holdout"
    train_size: float | None = None
    metrics: list[str] | None = None
    learners: list[LearnerEntry] | str = "registry"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    fast_params: dict[str, Any] = field(default_factory=dict)
    # learners not flagged quick that run anyway, with these parameters (name -> params)
    demo_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: list[int] | None = None
    single_positive: bool = False
    spmll_losses: list[str] | None = None
    seed: int = 0
    explain: bool = True
    # keep every learner's test scores of the first split in results.json (PR curves)
    store_scores: bool = True
    input_kinds: tuple[str, ...] = ("bags", "images")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> SuiteConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        d = dict(d)
        if "name" not in d:
            d["name"] = Path(source).stem if source != "config" else "custom"
        learners = d.get("learners", "registry")
        if isinstance(learners, str):
            if learners != "registry":
                raise ValueError(f"{source}: learners must be a list or 'registry'")
        else:
            entries = []
            for i, item in enumerate(learners):
                if isinstance(item, str):
                    entries.append(LearnerEntry(item.lower()))
                elif isinstance(item, dict) and "name" in item:
                    extra = set(item) - {"name", "params", "label"}
                    if extra:
                        raise ValueError(f"{source}: learners[{i}] has unknown keys "
                                         f"{sorted(extra)}")
                    entries.append(LearnerEntry(str(item["name"]).lower(),
                                                dict(item.get("params") or {}),
                                                item.get("label")))
                else:
                    raise ValueError(f"{source}: learners[{i}] must be a name or "
                                     "{name:, params:, label:}")
            keys = [e.key for e in entries]
            dup = {k for k in keys if keys.count(k) > 1}
            if dup:
                raise ValueError(f"{source}: learner labels must be unique; repeated: "
                                 f"{sorted(dup)} (give each a `label`)")
            d["learners"] = entries
        if "input_kinds" in d:
            d["input_kinds"] = tuple(d["input_kinds"])
        if d.get("protocol") is not None:
            d["protocol"] = str(d["protocol"])
        return cls(**d)


SUITES: dict[str, dict[str, Any]] = {
    "synthetic": dict(name="synthetic", dataset="synthetic", protocol="repeat:3",
                      train_size=2 / 3, learners="registry", fast_params=_SYNTHETIC_FAST,
                      overrides=_SYNTHETIC_OVERRIDES, demo_overrides=_SYNTHETIC_DEMO_OVERRIDES,
                      explain=True),
    "scene": dict(name="scene", dataset=None, protocol="repeat:30", train_size=2 / 3,
                  learners="registry", sizes=[250, 500, 1000], input_kinds=("bags",),
                  explain=False),
    "spmll": dict(name="spmll", dataset=None, protocol="holdout", train_size=2 / 3,
                  learners="registry", single_positive=True, input_kinds=("bags",),
                  explain=False,
                  metrics=["mean_average_precision", "average_precision", "ranking_loss",
                           "one_error", "macro_auc", "per_label_ap"]),
}


def load_suite_config(path: str | os.PathLike) -> SuiteConfig:
    """Read a suite from YAML (.yaml/.yml) or TOML (.toml)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such config file")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: invalid YAML ({' '.join(str(exc).split())})") from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML ({exc})") from None
    else:
        raise ValueError(f"{p}: config must be .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise ValueError(f"{p}: the config must be a mapping of keys to values")
    return SuiteConfig.from_dict(data, source=str(p))


def get_suite(name: str) -> SuiteConfig:
    key = name.lower()
    if key not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)} (or use "
                         "--config FILE)")
    return SuiteConfig.from_dict(dict(SUITES[key]), source=key)



def _select_learners(cfg: SuiteConfig, only: list[str] | None) -> tuple[list[LearnerEntry],
                                                                         dict[str, str]]:
    """Learner entries of a suite + {name: reason} for registered ones left out."""
    from mimlkit.registry import get_learner_class, learner_spec, list_learners

    skipped: dict[str, str] = {}
    if isinstance(cfg.learners, str):  # "registry": every quick, available learner
        entries = []
        for name in list_learners():
            spec = learner_spec(name)
            if spec.input not in cfg.input_kinds:
                skipped[name] = f"needs {spec.input}; this suite has {'/'.join(cfg.input_kinds)}"
                continue
            if not spec.quick and name not in cfg.demo_overrides:
                skipped[name] = "not flagged quick: too slow for this suite"
                continue
            entries.append(LearnerEntry(name))
    else:
        entries = list(cfg.learners)
    if only:
        unknown = [o for o in only if o not in {e.key for e in entries} | {e.name for e in
                                                                             entries}]
        if unknown:
            raise ValueError(f"--learner {unknown[0]!r} is not in this suite (available: "
                             f"{', '.join(e.key for e in entries)})")
        entries = [e for e in entries if e.key in only or e.name in only]
    kept = []
    for e in entries:
        try:
            cls = get_learner_class(e.name)
        except (ImportError, AttributeError, KeyError) as exc:
            if isinstance(cfg.learners, str):
                skipped[e.key] = f"not available ({' '.join(str(exc).split())[:160]})"
                continue
            raise
        kept.append(e)
        _ = cls
    if cfg.single_positive and isinstance(cfg.learners, str):
        kept = [e for e in kept if e.name != "multilabel-head"]
        try:
            cls = get_learner_class("multilabel-head")
            from mimlkit.deep.losses import list_losses

            have = set(list_losses())
            for loss in cfg.spmll_losses or SPMLL_LOSSES:
                if loss in have:
                    kept.append(LearnerEntry("multilabel-head", {"loss": loss},
                                             f"head-{loss}"))
        except (ImportError, AttributeError, KeyError) as exc:
            skipped["multilabel-head"] = f"not available ({str(exc)[:120]})"
    return kept, skipped


def _build(entry: LearnerEntry, cfg: SuiteConfig, dataset: Any = None):
    from mimlkit.registry import create, learner_spec

    spec = learner_spec(entry.name)
    est = create(entry.name)
    names = set(est.get_params(deep=False))
    params = {k: v for k, v in cfg.fast_params.items() if k in names}
    if "random_state" in names and est.get_params(deep=False).get("random_state") is None:
        params["random_state"] = cfg.seed
    if not spec.quick:
        params.update(cfg.demo_overrides.get(entry.name, {}))
    params.update(cfg.overrides.get(entry.name, {}))
    params.update(cfg.overrides.get(entry.key, {}))
    params.update(entry.params)
    bad = [k for k in params if k not in names and "__" not in k]
    if bad:
        raise ValueError(f"learner {entry.key}: unknown parameter(s) {bad}; it has "
                         f"{', '.join(sorted(names))}")
    if cfg.single_positive and "loss" in params and "loss_params" in names:
        # EPR / ROLE need the expected number of positives per sample; the SPMLL protocol
        # (Cole et al.) takes it from the dataset's label cardinality.
        lp = dict(params.get("loss_params") or {})
        if params["loss"] in ("epr", "role") and "expected_num_pos" not in lp \
                and dataset is not None:
            lp["expected_num_pos"] = float((dataset.Y == 1).sum(1).mean())
            params["loss_params"] = lp
    est = create(entry.name, **params)
    if cfg.single_positive:
        keep = "loss" in entry.params and getattr(type(est), "supports_unobserved", False)
        est = SinglePositiveTraining(est, unobserved="keep" if keep else "negative",
                                     random_state=1200 + cfg.seed)
    return est, spec.input, {k: _jsonable(v) if not isinstance(v, (dict, list)) else v
                             for k, v in params.items()}



def _config_dict(cfg: SuiteConfig) -> dict[str, Any]:
    d = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    if not isinstance(cfg.learners, str):
        d["learners"] = [{"name": e.name, "params": e.params, "label": e.label}
                         for e in cfg.learners]
    d["input_kinds"] = list(cfg.input_kinds)
    return json.loads(json.dumps(d, default=_json_default))
