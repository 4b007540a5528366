"""Learner registry: names -> estimator classes, resolved lazily.

The table maps a name to ``"module:Class"`` plus metadata, so ``list_learners()`` never
imports torch and the CLI and benchmarks never hard-code class lists. Third-party code adds
entries with ``register_learner``. Presets (``params``) let one class serve several names.

Metadata fields:
- ``family``: classic | broad | transfer | deep | baseline
- ``input``: "bags" (feature bags, ``Bags``) or "images" (an ``ImageSet`` of pictures)
- ``quick``: True when it fits the built-in synthetic demo in seconds on 2 cores
- ``description``: one line for ``mimlkit learners``
- ``extra``: the optional dependency group it needs (``"deep"`` = torch), or None (core);
  without it, resolving the learner raises ``MissingExtraError`` naming the extra
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from mimlkit._extras import EXTRAS, MissingExtraError, extra_for_module, missing_extra_error

__all__ = ["LearnerSpec", "register_learner", "create", "get_learner_class", "list_learners",
           "learner_spec", "PRESETS", "preset_params"]


@dataclass(frozen=True)
class LearnerSpec:
    name: str
    target: str  # "package.module:ClassName"
    family: str
    description: str = ""
    input: str = "bags"
    quick: bool = True
    params: dict[str, Any] = field(default_factory=dict)  # preset parameters
    extra: str | None = None  # optional dependency group (mimlkit._extras.EXTRAS)


_REGISTRY: dict[str, LearnerSpec] = {}


def register_learner(name: str, target: str | type, *, family: str = "user", description: str = "",
                     input: str = "bags", quick: bool = True, params: dict | None = None,
                     overwrite: bool = False, extra: str | None = None) -> LearnerSpec:
    """Add a learner. ``target`` is a class or a ``"module:Class"`` string (lazy)."""
    key = name.lower()
    if key in _REGISTRY and not overwrite:
        raise ValueError(f"learner {name!r} is already registered (pass overwrite=True)")
    if input not in ("bags", "images"):
        raise ValueError("input must be 'bags' or 'images'")
    if isinstance(target, type):
        target = f"{target.__module__}:{target.__qualname__}"
    if extra is not None and extra not in EXTRAS:
        raise ValueError(f"extra must be one of {', '.join(EXTRAS)}, got {extra!r}")
    spec = LearnerSpec(key, target, family, description, input, quick, dict(params or {}),
                       extra)
    _REGISTRY[key] = spec
    return spec


def learner_spec(name: str) -> LearnerSpec:
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown learner {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def get_learner_class(name: str) -> type:
    """The class of a registered learner. A missing optional dependency (its ``extra``, or
    a module of any extra that its module imports) raises ``MissingExtraError`` at once."""
    spec = learner_spec(name)
    module, _, cls = spec.target.partition(":")
    what = f"learner {spec.name!r}"
    if spec.extra is not None:
        for dep in EXTRAS[spec.extra]:
            if not _findable(dep):
                raise missing_extra_error(spec.extra, dep, what)
    try:
        mod = importlib.import_module(module)
    except MissingExtraError:
        raise
    except ImportError as exc:
        extra = extra_for_module(getattr(exc, "name", None))
        if extra is not None and isinstance(exc, ModuleNotFoundError):
            raise missing_extra_error(extra, exc.name, what) from None
        raise ImportError(
            f"learner {name!r} needs {module}, which failed to import: {exc}"
        ) from exc
    return getattr(mod, cls)


def _findable(module: str) -> bool:
    """True when ``module`` is importable in principle (found on the path; not imported)."""
    import sys

    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


#: Named parameter sets. ``"paper"``: the literal settings of each learner's paper
#: (no instance scaling where the paper has none, the paper's fixed decision threshold and
#: T-criterion) for reproducing published tables; the library defaults instead adapt to the
#: data (``learners/_thresholds.py``, ``_instance_scaling.py``). A learner not listed in a
#: preset is already paper-literal for it.
def _lazy(name: str, **params: Any) -> Any:
    return _LazyLearner(name, params)


@dataclass(frozen=True)
class _LazyLearner:
    """A sub-learner inside a preset, built when the preset is used (no import at load)."""
    name: str
    params: dict[str, Any]


PRESETS: dict[str, dict[str, dict[str, Any]]] = {"paper": {}, "default": {}}
_FIXED = {"threshold_mode": "fixed", "t_criterion": True}
PRESETS["paper"].update({
    "mimlsvm": {"scale": None, **_FIXED},
    "mimlknn": {"scale": None, **_FIXED},
    "mimlnn": {"scale": None, **_FIXED},
    "mimlrbf": {"scale": None, **_FIXED},
    "mimlfast": {"scale": "standard", "norm_up": 10.0, "bias": None, **_FIXED},
    "mimlboost": {"gamma": 10.0, "code_scale": "paper", **_FIXED},
    "mimlmisvm": {"gamma": 0.2, **_FIXED},
    "ranklsim": {"bias": None, "init": "zero", "n_init": 1, **_FIXED},
    "kisar": _FIXED,
    "dba": {"bag_score": "proportion", **_FIXED},
    "deepmiml": _FIXED,
    "pooled-linear": _FIXED,
    "bls": {"n_enhancement": 1000, **_FIXED},
    "awlel": {"reg_lambda": 1e-3, "max_iter": 10, **_FIXED},
    "smipr": {"scale_instances": False, "variant": "max", "alpha": 10.0, **_FIXED},
    # BMIML as published: AWLEL with IRLS re-weighting and λ = 1e-3, SMIPR on the maximal
    # Hausdorff distance, scores from SMIPR only (Eq. 22)
    "bmiml": {"fusion_alpha": 1.0, "awlel": _lazy("awlel", reg_lambda=1e-3, max_iter=10),
              "smipr": _lazy("smipr", variant="max", alpha=10.0), **_FIXED},
    "multilabel-head": _FIXED,
    "transfer-lr": {"threshold_mode": "fixed"},
})


def preset_params(name: str, preset: str | None) -> dict[str, Any]:
    """Parameters of ``preset`` (``None``/"default" = none) for learner ``name``."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    # sub-learner entries (BMIML's AWLEL / SMIPR) are built fresh: no state shared
    return {k: create(v.name, **v.params) if isinstance(v, _LazyLearner) else v
            for k, v in PRESETS[preset].get(name.lower(), {}).items()}


def create(name: str, preset: str | None = None, **params: Any):
    """Instantiate a registered learner; ``preset`` (e.g. ``"paper"``, see ``PRESETS``)
    then ``params`` override the registry entry's parameters."""
    spec = learner_spec(name)
    cls = get_learner_class(name)
    return cls(**{**spec.params, **preset_params(name, preset), **params})


def list_learners(family: str | None = None, *, input: str | None = None,
                  quick: bool | None = None, available: bool = False) -> list[str]:
    """Registered names, filtered by family / input kind / quick flag. ``available=True``
    keeps only those whose module imports here."""
    out = []
    for name, spec in sorted(_REGISTRY.items()):
        if family is not None and spec.family != family:
            continue
        if input is not None and spec.input != input:
            continue
        if quick is not None and spec.quick != quick:
            continue
        if available:
            try:
                get_learner_class(name)
            except (ImportError, AttributeError):
                continue
        out.append(name)
    return out


# ----------------------------------------------------------------------------- built-ins
# One line per learner. A module listed here must define the class (tests check that every
# entry resolves and honours the estimator contract).
_BUILTIN = [
    # name, target, family, input, quick, description, params
    ("prior", "mimlkit.learners.baselines:LabelPrior", "baseline", "bags", True,
     "trivial baseline: training label frequencies as scores, nothing learned", {}),
    ("empty", "mimlkit.learners.baselines:EmptyPredictor", "baseline", "bags", True,
     "trivial baseline: predicts no label (scores = label prior)", {}),
    ("pooled-linear", "mimlkit.learners.pooled:PooledLinear", "baseline", "bags", True,
     "bag mean/max pooling + one-vs-rest logistic regression", {}),
    ("mimlsvm", "mimlkit.learners.classic.mimlsvm:MIMLSVM", "classic", "bags", True,
     "k-medoids Hausdorff embedding + per-label RBF SVM (Zhou & Zhang 2007)", {}),
    ("mimlknn", "mimlkit.learners.classic.mimlknn:MIMLkNN", "classic", "bags", True,
     "references and citers under Hausdorff distance (Zhang 2010)", {}),
    ("mimlnn", "mimlkit.learners.classic.mimlnn:MIMLNN", "classic", "bags", True,
     "medoid embedding + linear output layer (Zhou et al. 2012)", {}),
    ("mimlrbf", "mimlkit.learners.classic.mimlrbf:MIMLRBF", "classic", "bags", True,
     "per-label medoid RBF network (Zhang & Wang 2009)", {}),
    ("mimlboost", "mimlkit.learners.classic.mimlboost:MIMLBoost", "classic", "bags", False,
     "MIML -> multi-instance single-label boosting (Zhou & Zhang 2007)", {}),
    ("mimlfast", "mimlkit.learners.classic.mimlfast:MIMLfast", "classic", "bags", True,
     "shared subspace + sub-concepts, SGD (Huang et al. 2014)", {}),
    ("mimlmisvm", "mimlkit.learners.classic.mimlmisvm:MIMLmiSVM", "classic", "bags", False,
     "binary relevance over mi-SVM (Andrews et al. 2003)", {}),
    ("dba", "mimlkit.learners.classic.dba:DBA", "classic", "bags", True,
     "Dirichlet-Bernoulli alignment: per-label Gaussians, variational EM (Yang et al. 2009)",
     {}),
    ("kisar", "mimlkit.learners.classic.kisar:KISAR", "classic", "bags", True,
     "k-means prototype embedding + label SVMs sharing key prototypes (Li et al. 2012)", {}),
    ("ranklsim", "mimlkit.learners.classic.ranklsim:RankLSIM", "classic", "bags", True,
     "rank-loss support instance machine, max aggregation, Pegasos SGD (Briggs et al. 2012)",
     {}),
    ("deepmiml", "mimlkit.deep.deepmiml:DeepMIML", "deep", "bags", True,
     "instance encoder + sub-concept layer, max pooling (Feng & Zhou 2017)", {}),
    ("bls", "mimlkit.learners.broad.bls:BroadLearningSystem", "broad", "bags", True,
     "Broad Learning System on pooled bags (Chen & Liu 2018)", {}),
    ("awlel", "mimlkit.learners.broad.awlel:AWLEL", "broad", "bags", True,
     "auto-weighted label enhancement on BLS nodes (BMIML's first stage)", {}),
    ("smipr", "mimlkit.learners.broad.smipr:SMIPR", "broad", "bags", True,
     "scalable multi-instance probabilistic regression (BMIML's second stage)", {}),
    ("bmiml", "mimlkit.learners.broad.bmiml:BMIML", "broad", "bags", True,
     "AWLEL -> SMIPR -> IDO (Lai et al. 2024)", {}),
    ("transfer-lr", "mimlkit.learners.transfer.transfer_lr:TransferLR", "transfer", "bags", True,
     "per-label (L1-)logistic regression on precomputed (pooled) features", {}),
    ("vgg-l1lr", "mimlkit.learners.transfer.transfer_lr:TransferImageLR", "transfer", "images",
     False, "VGG16 multi-level features + per-label L1 logistic regression (seed 001)",
     {"backbone": "vgg16-multilevel", "penalty": "l1"}),
    ("vgg-lr", "mimlkit.learners.transfer.transfer_lr:TransferImageLR", "transfer", "images",
     False, "VGG16 multi-level features + per-label L2 logistic regression",
     {"backbone": "vgg16-multilevel", "penalty": "l2"}),
    ("abmil", "mimlkit.deep.attention:ABMIL", "deep", "bags", True,
     "gated attention MIL, one attention branch per label (Ilse et al. 2018)", {}),
    ("transmil", "mimlkit.deep.transmil:TransMIL", "deep", "bags", False,
     "transformer MIL: class token, self-attention, PPEG on tile grid (Shao et al. 2021)",
     {}),
    ("dsmil", "mimlkit.deep.dsmil:DSMIL", "deep", "bags", True,
     "dual-stream MIL: max instance + attention to the critical instance (Li et al. 2021)",
     {}),
    ("meanmil", "mimlkit.deep.attention:PoolMIL", "deep", "bags", False,
     "deep MIL baseline: instance MLP, mean of instance logits",
     {"pool": "mean", "min_steps": 400}),  # select_meanmil_steps.md (inner splits)
    ("maxmil", "mimlkit.deep.attention:PoolMIL", "deep", "bags", False,
     "deep MIL baseline: instance MLP, max of instance logits",
     {"pool": "max", "min_steps": 200}),  # select_maxmil_steps.md (inner splits)
    ("multilabel-head", "mimlkit.deep.heads:MultiLabelHead", "deep", "bags", True,
     "linear/MLP head on pooled features with any multi-label loss (OPML, ZLPR, ...)", {}),
    ("multilabel-cnn", "mimlkit.deep.heads:MultiLabelCNN", "deep", "images", False,
     "CNN backbone trained end to end with any multi-label loss", {}),
    ("selfpaced-miml", "mimlkit.deep.selfpaced:SelfPacedMIML", "deep", "images", False,
     "self-paced deep MIML on image tiles (Jiang et al., TMI)", {}),
]

# Learners needing an optional dependency group (pip install 'mimlkit[deep]').
_BUILTIN_EXTRAS = {"deepmiml": "deep", "vgg-l1lr": "deep", "vgg-lr": "deep",
                   "multilabel-head": "deep", "multilabel-cnn": "deep",
                   "selfpaced-miml": "deep", "abmil": "deep", "transmil": "deep",
                   "dsmil": "deep", "meanmil": "deep", "maxmil": "deep"}

for _n, _t, _f, _i, _q, _d, _p in _BUILTIN:
    register_learner(_n, _t, family=_f, input=_i, quick=_q, description=_d, params=_p,
                     extra=_BUILTIN_EXTRAS.get(_n))
