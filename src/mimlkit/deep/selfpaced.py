"""Self-paced deep MIML on image tiles (Jiang et al., "Self-Paced Learning for Images of
Antinuclear Antibodies", IEEE TMI; ``specs/self_paced_miml.md``).

Each image is cut into tiles (a bag of instances); every tile inherits the image's labels
``t``. A CNN scores tiles; learnable confidence weights α (one per tile and class at
``granularity="label"``, one per tile at ``"instance"``) drive three things:

* the **instance sampler** (Eq. 5): tiles are drawn with probability ∝ ``max_k ReLU(α)·t``;
* the **pseudo-label dispatcher** (Eq. 8): ``ξ = ReLU(α)·t``, min-max normalised over the K
  classes; the target is ξ̄ (``pseudo_label="soft"``) or a Bernoulli draw of it
  (``"bernoulli"``, the authors' best setting), or just ``t`` (``"bag"``);
* the **self-paced loss** (Eq. 10): ``-Σ_k [ReLU(α)·ξ̄·log p + (1-ξ̄)·log(1-p)]`` (row-weighted by
  ``ReLU(α_j)`` at instance granularity), summed over the batch.

α is an ordinary parameter trained by the same Adam step as the network (the paper omits this;
the authors' code does it), with the **label-aware learning-rate coefficient**
``λ_g = ln(m_g)/ln(C)`` for the label-combination group g of a tile (m_g = its number of
positive labels, C = the data maximum or a fixed integer). Groups are rebuilt from the stored
pseudo-labels after every epoch and the optimizer is reset then (as in the code). Images are
scored by the class-wise max over their tiles (Eq. 7) and thresholded at τ.

Components are separate: :class:`SelfPacedNet` (model), :func:`self_paced_bce` (pure loss),
:class:`AlphaStore` (curriculum state: α, groups, coefficients, stored pseudo-labels),
:func:`sampler_weights` / :func:`dispatch_targets` (sampler and dispatcher),
:class:`SelfPacedAdam` (row-wise learning rates) and :class:`SelfPacedTask` (the loop's task;
the loop itself is :class:`mimlkit.deep.trainer.Trainer`). The building blocks (Table III rows,
groups and coefficients, α initialisation, sampler, dispatcher, loss, :class:`AlphaStore`,
:class:`SelfPacedAdam`) live in :mod:`mimlkit.deep.selfpaced_parts`, the image path
(:class:`SelfPacedNet`, tiling) in :mod:`mimlkit.deep.selfpaced_images`, the feature path's
head in :mod:`mimlkit.deep.selfpaced_mlp`, the task in :mod:`mimlkit.deep.selfpaced_task` and
the metrics (:func:`paper_metrics`, :func:`select_threshold`) in
:mod:`mimlkit.deep.selfpaced_metrics`; all are re-exported here. α, groups and the sampler
state are in the trainer's checkpoints, so ``resume=True`` continues exactly.

**Feature path** (``backbone="mlp"``): the framework is backbone-agnostic, so the same
machinery (α store, sampler, dispatcher, loss, coefficients, every Table III switch) also
trains an MLP instance head (:class:`SelfPacedMLP`) on precomputed instance features — bags of
feature vectors (:class:`mimlkit.bags.Bags`, a list of 2-D arrays, an ``MIMLDataset`` with
bags), one instance = one "tile". Cheap enough for hundreds of epochs and many seeds on a CPU.

Table III of the paper, one row = one parameter set (see :data:`TABLE_III`)::

    Gran.  ×: granularity="none" (no α: plain BCE)   •: "instance"   ○: "label"
    Init   ▲: alpha_init="data" (Eq. 11a; Eq. 12 at instance granularity)
           △: alpha_init="sample" (Eq. 11b)
    Sampling      ✓: sampling="weighted"      ×: "uniform"
    Pseudo-label  ✓: pseudo_label="bernoulli" ×: "bag"   (literal Eq. 8/10: "soft")
    Coefficients  ✓: coefficient="label_aware" ×: "none"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mimlkit.bags import as_bags, check_labels
from mimlkit.deep.selfpaced_images import SelfPacedNet, _image_list, _tile_images
from mimlkit.deep.selfpaced_metrics import (
    THRESHOLD_GRID,  # noqa: F401  (re-exported)
    _bag_max,
    paper_metrics,  # noqa: F401  (re-exported)
    select_threshold,
)
from mimlkit.deep.selfpaced_mlp import SelfPacedMLP, _torch_threads
from mimlkit.deep.selfpaced_parts import (
    ALPHA_OPTIMIZERS,
    COEFFICIENTS,
    GRANULARITIES,
    INITS,
    PSEUDO_LABELS,
    SAMPLINGS,
    TABLE_III,
    AlphaStore,
    SelfPacedAdam,
    alpha_update,
    dispatch_targets,
    group_rows,
    init_alpha,
    label_aware_coefficients,
    ohem_weights,
    sampler_weights,
    self_paced_bce,
    table3_params,
)
from mimlkit.deep.selfpaced_task import SelfPacedTask
from mimlkit.learners.base import MIMLClassifierMixin

__all__ = [
    "SelfPacedMIML",
    "SelfPacedNet",
    "SelfPacedMLP",
    "SelfPacedTask",
    "SelfPacedAdam",
    "alpha_update",
    "ALPHA_OPTIMIZERS",
    "AlphaStore",
    "init_alpha",
    "label_aware_coefficients",
    "group_rows",
    "sampler_weights",
    "ohem_weights",
    "dispatch_targets",
    "self_paced_bce",
    "select_threshold",
    "TABLE_III",
    "table3_params",
]


# ============================================================================ estimator
class SelfPacedMIML(MIMLClassifierMixin, BaseEstimator):
    """Self-paced deep MIML on image tiles or instance features (seed 002; ``docs/selfpaced.md``).

    Input: images (``ImageSet``, a list of H x W x 3 uint8 arrays or an N x H x W x 3 array),
    or, with ``backbone="mlp"``, bags of instance feature vectors (``Bags``, a list of
    n_i x d arrays, an ``MIMLDataset`` with bags): each instance plays the part of a tile.
    The feature path is chosen by ``backbone="mlp"`` only, never guessed from X (a list of
    2-D arrays may be grayscale images, and the evaluation runner must know the input kind,
    ``input_kind`` = "bags" / "images", before fitting).
    Defaults = the authors' best setting (Table III row 21 / README "full" command).

    Parameters
    ----------
    tile_size, stride, border : tiling (``TileBagger``; 448 px, no overlap, remainders dropped;
        an image smaller than a tile is padded to one tile).
    backbone, weights : any :func:`mimlkit.features.backbones.load_backbone` name ("resnet50",
        "resnet18", "vgg16", "tiny", ...); ``weights`` None (random init) or a local file.
        ``backbone="mlp"``: feature path, an MLP instance head (:class:`SelfPacedMLP`) on
        standardised instance features; tiling, ``weights``, ``image_size`` and ``hflip``
        are then unused.
    hidden : hidden widths of the MLP head (int or tuple; ``()`` = linear), ``"mlp"`` only.
    image_size : network input side; tiles are resized to it (None: the backbone's default,
        224 for ResNets, 64 for "tiny").
    granularity : "label" (α per tile and class, ○), "instance" (α per tile, •) or "none"
        (no α: plain BCE, Table III row 1).
    alpha_init : "ones", "data" (Eq. 11a, ▲), "sample" (Eq. 11b, △), "instance" (Eq. 12),
        "data_softmax" / "sample_softmax" (literal paper softmax over all K).
    sampling : "weighted" (Eq. 5 sampler, N_tiles draws with replacement per epoch),
        "uniform" (a shuffled pass: every tile once), or the Fig. 4b alternatives "random"
        (N_tiles draws with replacement, equal probability) and "ohem" (N_tiles draws with
        probability ∝ the tile's loss at its last visit, :func:`ohem_weights`; the paper
        names OHEM without details, so this epoch-level hard-example sampler is our reading).
    pseudo_label : "bernoulli" (draws of Eq. 8's ξ̄), "soft" (ξ̄ itself, literal Eq. 10) or
        "bag" (every tile keeps the bag labels).
    coefficient : "label_aware" (α learning rate × ln(m)/ln(C), groups rebuilt every epoch)
        or "none".
    n_classes_for_coefficient : C; None = the data maximum of positives per tile.
    lr, alpha_lr : Adam learning rates of the network and of α (both 1e-3 as in the README).
    alpha_optimizer : how α is stepped (:func:`alpha_update`; the paper does not say).
        "adam" (default, **the faithful one**: the authors' code puts α in the same Adam as
        the network, so its per-use decrease is ≈ alpha_lr·λ whatever the loss — Adam
        divides the gradient by its own running RMS; the published numbers come from this
        rule, so it stays the default). "sgd" (extension: α -= alpha_lr·λ·∂L/∂α = alpha_lr·λ
        ·(−log p) on used positive cells, so high-loss cells lose weight faster — the
        classical self-paced reading; the step scales with the loss, hence with
        ``reduction``; use a larger alpha_lr, e.g. 0.05–0.5). "proportional" (extension:
        the SGD step divided by the mean |∂L/∂α| of the cells used at that step — mean step
        alpha_lr·λ as under Adam, ordered by loss as under SGD, invariant to a global loss
        scale).
    reset_optimizer : "auto" (rebuild Adam every epoch iff label-aware, as in the code),
        True or False.
    reduction : "sum" (code) or "mean" over batch and classes.
    hflip : random horizontal flips of training tiles.
    threshold : τ of Eq. 7 on the max tile probability (paper: 0.5), or ``"validation"``
        (extension): τ chosen on ``eval_set`` by :func:`select_threshold` after training
        (per-epoch validation metrics then use 0.5); ``t_criterion`` adds each image's top
        label when none passes (off: the paper thresholds only).
    max_epochs, batch_size, early_stopping_patience : training length (patience needs
        ``fit(..., eval_set=(X_val, Y_val))``; monitors the validation "overall").
    random_state, device, amp, checkpoint_dir, resume, verbose : see
        :class:`mimlkit.deep.trainer.Trainer`.

    Table III rows: ``SelfPacedMIML(**table3_params(row))`` (see :data:`TABLE_III`).

    Fitted: ``module_`` (the network), ``alpha_`` (final α, numpy; one row per training
    tile / instance in input order), ``pseudo_labels_``, ``history_`` (per-epoch loss, α
    statistics, validation metrics), ``threshold_``, ``n_train_tiles_`` (training tiles or
    instances), ``n_features_in_`` (feature path).
    """

    _torch_modules = ("module_",)
    decision_threshold = 0.5

    def __init__(self, tile_size: int = 448, stride: int | None = None, border: str = "drop",
                 backbone: str = "resnet50", weights: str | None = None,
                 image_size: int | None = None, hidden: int | Sequence[int] = (128,),
                 granularity: str = "label",
                 alpha_init: str = "sample", sampling: str = "weighted",
                 pseudo_label: str = "bernoulli", coefficient: str = "label_aware",
                 n_classes_for_coefficient: int | None = None, lr: float = 1e-3,
                 alpha_lr: float = 1e-3, alpha_optimizer: str = "adam",
                 reset_optimizer: str | bool = "auto",
                 reduction: str = "sum", hflip: bool = True,
                 threshold: float | str = 0.5,
                 t_criterion: bool = False, max_epochs: int = 10, batch_size: int = 32,
                 early_stopping_patience: int | None = None, random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False) -> None:
        self.tile_size = tile_size
        self.stride = stride
        self.border = border
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.hidden = hidden
        self.granularity = granularity
        self.alpha_init = alpha_init
        self.sampling = sampling
        self.pseudo_label = pseudo_label
        self.coefficient = coefficient
        self.n_classes_for_coefficient = n_classes_for_coefficient
        self.lr = lr
        self.alpha_lr = alpha_lr
        self.alpha_optimizer = alpha_optimizer
        self.reset_optimizer = reset_optimizer
        self.reduction = reduction
        self.hflip = hflip
        self.threshold = threshold
        self.t_criterion = t_criterion
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping_patience = early_stopping_patience
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose

    # ------------------------------------------------------------------ input kind
    @property
    def input_kind(self) -> str:  # type: ignore[override]
        """ "bags" with ``backbone="mlp"`` (feature path), else "images" (settable)."""
        kind = self.__dict__.get("_input_kind")
        if kind is not None:
            return kind
        return "bags" if getattr(self, "backbone", None) == "mlp" else "images"

    @input_kind.setter
    def input_kind(self, value: str) -> None:
        self.__dict__["_input_kind"] = value

    def _features(self) -> bool:
        return self.backbone == "mlp"

    def _hidden_sizes(self) -> tuple[int, ...]:
        h = self.hidden
        if h is None:
            return ()
        hs = (h,) if isinstance(h, (int, np.integer)) else tuple(h)
        if not all(isinstance(v, (int, np.integer)) and v >= 1 for v in hs):
            raise ValueError(f"hidden must be an int >= 1 or a tuple of them, got {h!r}")
        return tuple(int(v) for v in hs)

    def _feature_bags(self, X: Any, reset: bool) -> Any:
        bags = as_bags(X, dtype=np.float32)
        if reset:
            self.n_features_in_ = int(bags.n_features)
        elif bags.n_features != self.n_features_in_:
            raise ValueError(f"X has {bags.n_features} features per instance, but "
                             f"SelfPacedMIML was fitted with {self.n_features_in_}")
        return bags

    # ------------------------------------------------------------------ checks / pieces
    def _check_params(self) -> None:
        for name, allowed in (("granularity", GRANULARITIES), ("alpha_init", INITS),
                              ("sampling", SAMPLINGS), ("pseudo_label", PSEUDO_LABELS),
                              ("coefficient", COEFFICIENTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.granularity == "instance" and self.alpha_init in ("sample", "sample_softmax"):
            raise ValueError("alpha_init='sample' (Eq. 11b) is not defined at instance "
                             "granularity (paper: not applicable); use 'data' or 'ones'")
        C = self.n_classes_for_coefficient
        if C is not None and (not isinstance(C, (int, np.integer)) or C < 2):
            raise ValueError(f"n_classes_for_coefficient must be None or an int >= 2, got {C!r}")
        if self.alpha_optimizer not in ALPHA_OPTIMIZERS:
            raise ValueError(f"alpha_optimizer must be one of {ALPHA_OPTIMIZERS}, "
                             f"got {self.alpha_optimizer!r}")
        if self._features():
            self._hidden_sizes()
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {self.reduction!r}")
        if self.reset_optimizer not in ("auto", True, False):
            raise ValueError("reset_optimizer must be 'auto', True or False")
        if isinstance(self.threshold, str) and self.threshold != "validation":
            raise ValueError(f"threshold must be a float or 'validation', "
                             f"got {self.threshold!r}")
        if int(self.batch_size) < 1 or int(self.max_epochs) < 0:
            raise ValueError("batch_size must be >= 1 and max_epochs >= 0")

    def _tiler(self) -> Any:
        from mimlkit.datasets.tiling import TileBagger

        return TileBagger(int(self.tile_size), self.stride, border=self.border)

    def _load_backbone(self, weights: Any) -> Any:
        from mimlkit.features.backbones import load_backbone

        return load_backbone(self.backbone, weights, seed=int(self.random_state or 0),
                             image_size=self.image_size)

    def _build_torch_module(self, name: str = "module_") -> nn.Module:
        if name != "module_":
            raise ValueError(f"unknown torch module {name!r}")
        if self._features():
            return SelfPacedMLP(int(self.n_features_in_), self._hidden_sizes(),
                                int(self.n_labels_))
        bb = self._load_backbone(None)
        return SelfPacedNet(bb.trunk(), bb.feature_dim, int(self.n_labels_),
                            self.norm_mean_, self.norm_std_)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any, eval_set: tuple[Any, Any] | None = None) -> SelfPacedMIML:
        """Train on images ``X`` (or feature bags with ``backbone="mlp"``) with image/bag-level
        labels ``Y`` (n x K, 0/1).

        ``eval_set=(X_val, Y_val)`` adds per-epoch validation metrics (image level) to
        ``history_`` and enables early stopping on the validation "overall".
        """
        from mimlkit.deep.trainer import Trainer, preserve_rng_state

        self._check_params()
        if self.threshold == "validation" and eval_set is None:
            raise ValueError("threshold='validation' needs fit(..., eval_set=(X_val, Y_val))")
        tau = 0.5 if self.threshold == "validation" else float(self.threshold)
        seed = int(self.random_state or 0)
        net: nn.Module
        if self._features():
            bags = self._feature_bags(X, reset=True)
            Y = check_labels(Y, bags.n_bags, allow_unobserved=False)
            self.n_labels_ = int(Y.shape[1])
            tiles = torch.from_numpy(np.ascontiguousarray(bags.instances, dtype=np.float32))
            bag_index = bags.bag_index
            x64 = tiles.double()
            mu, sd = x64.mean(dim=0), x64.std(dim=0, unbiased=False)
            sd = torch.where(sd > 1e-12, sd, torch.ones_like(sd))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net = SelfPacedMLP(self.n_features_in_, self._hidden_sizes(), self.n_labels_,
                                   mu, sd)
        else:
            images = _image_list(X)
            Y = check_labels(Y, len(images), allow_unobserved=False)
            self.n_labels_ = int(Y.shape[1])
            bb = self._load_backbone(self.weights)
            size = int(bb.preprocess.size)
            self.input_size_ = size
            self.norm_mean_ = tuple(float(v) for v in bb.preprocess.mean)
            self.norm_std_ = tuple(float(v) for v in bb.preprocess.std)
            tiler = self._tiler()
            tiles, bag_index, _ = _tile_images(images, tiler, size)
            net = SelfPacedNet(bb.trunk(), bb.feature_dim, self.n_labels_, self.norm_mean_,
                               self.norm_std_)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                net.head.reset_parameters()
        T = Y[bag_index].astype(np.float32)
        self.n_train_tiles_ = int(T.shape[0])
        store = None
        if self.granularity != "none":
            C = None if self.n_classes_for_coefficient is None \
                else int(self.n_classes_for_coefficient)
            store = AlphaStore(T, self.granularity, self.alpha_init, self.coefficient, C)
        reset = (self.coefficient == "label_aware" and store is not None) \
            if self.reset_optimizer == "auto" else bool(self.reset_optimizer)
        val = None
        Y_val = None
        if eval_set is not None:
            Xv, Yv = eval_set
            if self._features():
                bv = self._feature_bags(Xv, reset=False)
                Y_val = check_labels(Yv, bv.n_bags, allow_unobserved=False)
                vt = torch.from_numpy(np.ascontiguousarray(bv.instances, dtype=np.float32))
                vb = bv.bag_index
            else:
                imv = _image_list(Xv)
                Y_val = check_labels(Yv, len(imv), allow_unobserved=False)
                vt, vb, _ = _tile_images(imv, tiler, size)
            val = (vt, torch.from_numpy(vb))
        task = SelfPacedTask(net, store, T, sampling=self.sampling,
                             pseudo_label=self.pseudo_label, reduction=self.reduction,
                             hflip=bool(self.hflip), reset_optimizer=reset,
                             threshold=tau, Y_val=Y_val)
        task._alpha_lr = float(self.alpha_lr)
        task._alpha_optimizer = self.alpha_optimizer
        row_info = store.row_info if store is not None else None

        def make_optimizer(groups: list[dict], lr: float) -> torch.optim.Optimizer:
            return SelfPacedAdam(groups, lr=lr, row_info=row_info)

        trainer = Trainer(
            max_epochs=int(self.max_epochs), optimizer=make_optimizer, lr=float(self.lr),
            batch_size=int(self.batch_size), shuffle=True, device=self.device, amp=self.amp,
            seed=seed, deterministic=True, progress=bool(self.verbose),
            checkpoint_dir=self.checkpoint_dir, resume=bool(self.resume),
            early_stopping_patience=self.early_stopping_patience if val is not None else None,
            monitor="val_overall" if val is not None else "train_loss",
            monitor_mode="max" if val is not None else "min",
            restore_best=val is not None and self.early_stopping_patience is not None)
        with preserve_rng_state(), _torch_threads(1 if self._features() else None):
            trainer.fit(task, (tiles, torch.arange(len(T))), val)
        self.module_ = net.cpu().eval()
        if store is not None:
            self.alpha_ = store.alpha.detach().cpu().numpy().copy()
            self.pseudo_labels_ = store.pseudo.cpu().numpy().copy()
            c = float(store.C_used)
            self.coefficient_C_ = None if math.isnan(c) else c
        else:
            self.alpha_ = None
            self.pseudo_labels_ = None
            self.coefficient_C_ = None
        self.history_ = [dict(h) for h in trainer.history]
        self.n_epochs_ = len(self.history_)
        self.threshold_ = tau
        if self.threshold == "validation":
            self.threshold_ = select_threshold(Y_val, self.decision_function(eval_set[0]))
        return self

    # ------------------------------------------------------------------ inference
    def _device(self) -> torch.device:
        from mimlkit.deep.trainer import resolve_device

        return resolve_device(self.device)

    def _tile_probabilities(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        check_is_fitted(self, "module_")
        if self._features():
            bags = self._feature_bags(X, reset=False)
            tiles = torch.from_numpy(np.ascontiguousarray(bags.instances, dtype=np.float32))
            bag, coords, n = bags.bag_index, None, bags.n_bags
        else:
            images = _image_list(X)
            tiles, bag, coords = _tile_images(images, self._tiler(), int(self.input_size_))
            n = len(images)
        dev = self._device()
        net = self.module_.to(dev).eval()
        out = []
        bs = max(int(self.batch_size), 1) * 4
        with torch.no_grad(), _torch_threads(1 if self._features() else None):
            for s in range(0, tiles.shape[0], bs):
                out.append(torch.sigmoid(net(tiles[s:s + bs].to(dev)).float()).cpu().numpy())
        self.module_ = net.cpu()
        P = np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.n_labels_))
        return P, bag, coords, n

    def _require_images(self, what: str) -> None:
        if self._features():
            raise ValueError(f"{what} needs image input; this model uses backbone='mlp' "
                             "(feature bags)")

    def decision_function(self, X: Any) -> np.ndarray:
        """Image scores = class-wise max of tile probabilities (Eq. 7 before τ), n x K."""
        P, bag, _, n = self._tile_probabilities(X)
        return _bag_max(P, bag, n)

    def instance_scores(self, X: Any, return_coords: bool = False) -> Any:
        """Per-tile (feature path: per-instance) probabilities: a list of (n_tiles_i x K)
        arrays (with ``return_coords``, images only, also the list of (n_tiles_i x 2)
        top-left (y, x) tile coordinates)."""
        if return_coords and self._features():
            raise ValueError("return_coords needs image input (feature bags have no tiles)")
        P, bag, coords, n = self._tile_probabilities(X)
        cuts = np.searchsorted(bag, np.arange(1, n))
        scores = np.split(P, cuts)
        if return_coords:
            return scores, np.split(coords, cuts)
        return scores

    def tile_coords(self, X: Any) -> list[np.ndarray]:
        """Top-left (y, x) pixel coordinates of each image's tiles (same order as
        :meth:`instance_scores`)."""
        from mimlkit.datasets.tiling import as_rgb_uint8

        self._require_images("tile_coords")
        images = _image_list(X)
        tiler = self._tiler()
        return [tiler(as_rgb_uint8(images[i], where=f"image {i}"))[1]
                for i in range(len(images))]

    def save_heatmaps(self, X: Any, out_dir: str | Path, label_names: Sequence[str] | None = None,
                      max_labels: int = 6, dpi: int = 80) -> list[Path]:
        """One PNG per image: the image, then one panel per predicted label (the top label
        when none passes τ) with the tiles' scores for that label overlaid (max over
        overlapping tiles); tiles above τ are outlined. Returns the written paths."""
        from mimlkit._extras import require

        self._require_images("save_heatmaps")
        matplotlib = require("report", "matplotlib", "SelfPacedMIML.save_heatmaps")

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        from mimlkit.datasets.tiling import as_rgb_uint8

        images = _image_list(X)
        scores, coords = self.instance_scores(images, return_coords=True)
        names = list(label_names) if label_names is not None else \
            [f"label {k}" for k in range(self.n_labels_)]
        if len(names) != self.n_labels_:
            raise ValueError(f"label_names has {len(names)} names, the model {self.n_labels_}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sources = images.sources if hasattr(images, "sources") else None
        ts, tau = int(self.tile_size), float(self.threshold_)
        paths = []
        for i in range(len(images)):
            img = as_rgb_uint8(images[i], where=f"image {i}")
            S, C = scores[i], coords[i]
            bag_s = S.max(axis=0)
            labs = np.flatnonzero(bag_s > tau)
            if labs.size == 0:
                labs = np.array([int(np.argmax(bag_s))])
            labs = labs[np.argsort(-bag_s[labs])][:max_labels]
            H, W = img.shape[:2]
            fig, axes = plt.subplots(1, 1 + len(labs), figsize=(3.0 * (1 + len(labs)), 3.2),
                                     squeeze=False)
            axes[0, 0].imshow(img)
            axes[0, 0].set_title("image", fontsize=9)
            for ax, k in zip(axes[0, 1:], labs):
                hm = np.full((H, W), np.nan)
                for (y, x), v in zip(C, S[:, k]):
                    sl = hm[y:y + ts, x:x + ts]
                    hm[y:y + ts, x:x + ts] = np.fmax(sl, v)
                ax.imshow(img)
                ax.imshow(hm, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
                for (y, x), v in zip(C, S[:, k]):
                    if v > tau:
                        ax.add_patch(Rectangle((x, y), min(ts, W - x) - 1, min(ts, H - y) - 1,
                                               fill=False, lw=1.2, ec="white"))
                ax.set_title(f"{names[k]} ({bag_s[k]:.2f})", fontsize=9)
            for ax in axes[0]:
                ax.axis("off")
            fig.tight_layout()
            stem = Path(sources[i]).stem if sources and not sources[i].startswith("<") \
                else "image"
            path = out / f"{i:05d}_{stem}.png"
            fig.savefig(path, dpi=dpi)
            plt.close(fig)
            paths.append(path)
        return paths
