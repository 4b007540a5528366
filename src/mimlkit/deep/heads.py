"""Multi-label heads trained with any registered loss (``mimlkit.deep.losses``).

* :class:`MultiLabelHead` — linear or small MLP head on precomputed features. Bags are pooled
  (mean / max / mean+max), so it works for MIML data and, with ``-1`` entries in ``Y``, for
  single-positive (MIML) data; losses such as OPML, ZLPR, ASL apply to the bag-level logits.
* :class:`MultiLabelCNN` — the same losses end to end on a CNN backbone from
  :mod:`mimlkit.features.backbones` (input: images).

Both train through the shared :class:`~mimlkit.deep.trainer.Trainer`. Single-positive
extras: ``label_correction`` (AP-based, :class:`~mimlkit.deep.spmll.APLabelCorrector`, once per
epoch, permanent) and ``loss_schedules`` (epoch schedules for loss attributes such as
``ls_coef`` or ``eps_scale``). Losses with per-sample state (ROLE, APL, LL-Cp) receive the
batch's sample ids; losses with epoch state (soft OPML, APL) get the whole training set's
scores at each epoch start.

Persistence: the fitted torch module is ``module_`` (``_torch_modules``), rebuilt by
``_build_torch_module`` from the parameters and plain fitted attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import check_labels
from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["MultiLabelHead", "MultiLabelCNN"]

_POOLINGS = ("mean", "max", "meanmax")


def _torch():
    import torch

    return torch


def _make_task(model, loss, labels, *, prepare=None, corrector=None, schedules=None,
               score_data=None, score_batch: int = 1024, l1_penalty: float = 0.0):
    """The training task shared by both heads (built lazily: torch is imported on use)."""
    import torch

    from mimlkit.deep.spmll import apply_schedules
    from mimlkit.deep.trainer import TrainingTask, move_to_device

    class _Task(TrainingTask):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.loss = loss
            self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.int8).clone())
            self.register_buffer("initial", torch.as_tensor(labels, dtype=torch.int8).clone())
            self.n_corrected = 0

        def get_extra_state(self):
            return {"n_corrected": self.n_corrected}

        def set_extra_state(self, state):
            self.n_corrected = int(state["n_corrected"])

        def _inputs(self, x):
            return prepare(x) if prepare is not None else x

        def param_groups(self):
            groups = [{"params": list(self.model.parameters())}]
            lp = [p for p in self.loss.parameters() if p.requires_grad]
            if lp:
                groups.append({"params": lp, "lr_mult": getattr(self.loss, "lr_mult", 1.0),
                               "weight_decay": 0.0})
            return groups

        def training_step(self, batch, batch_idx):
            x, idx = batch
            logits = self.model(self._inputs(x))
            out = self.loss(logits, self.labels[idx], index=idx)
            if l1_penalty:  # L1 on the weight matrices (not the biases), per step
                out = out + l1_penalty * sum(p.abs().sum() for p in self.model.parameters()
                                             if p.ndim > 1)
            return out

        def validation_step(self, batch, batch_idx):
            x, y = batch
            return {"scores": self.model(self._inputs(x)).float(), "targets": y}

        def validation_epoch_end(self, outputs):
            from mimlkit.deep.spmll import mean_ap

            s = torch.cat([o["scores"] for o in outputs]).cpu()
            y = torch.cat([o["targets"] for o in outputs]).cpu()
            return {"val_map": mean_ap(y.numpy() == 1, s.numpy())}

        @torch.no_grad()
        def training_scores(self, device):
            was = self.model.training
            self.model.eval()
            out = []
            n = len(score_data)
            for start in range(0, n, score_batch):
                xb = score_data[start:start + score_batch] if not callable(
                    getattr(score_data, "batch", None)) else score_data.batch(
                    start, start + score_batch)
                out.append(self.model(self._inputs(move_to_device(xb, device))).float().cpu())
            self.model.train(was)
            return torch.cat(out)

        def on_epoch_start(self, epoch, trainer):
            apply_schedules(self.loss, schedules, epoch)
            self.loss.set_epoch(epoch)
            needs = getattr(self.loss, "needs_epoch_scores", False)
            if not needs and corrector is None:
                return
            scores = self.training_scores(trainer.device)
            if corrector is not None:
                new, k = corrector(self.labels.cpu().numpy(), scores.numpy(),
                                   self.initial.cpu().numpy(), epoch)
                self.labels.copy_(torch.as_tensor(new))
                self.n_corrected += k
            if needs:
                self.loss.epoch_update(epoch, scores, self.labels.cpu())

    return _Task()


class _HeadBase(MIMLClassifierMixin, BaseEstimator):
    """Shared fit plumbing (loss creation, trainer, threshold)."""

    supports_unobserved = True

    def _explicit_threshold(self) -> bool:
        """A given ``threshold`` is kept (no data-chosen thresholds then)."""
        return getattr(self, "threshold", None) is not None

    def _loss(self, n: int, c: int, Y: np.ndarray):
        from mimlkit.deep.losses import create_loss

        params = dict(self.loss_params or {})
        epochs = getattr(self, "n_epochs_", self.max_epochs)  # BagMILBase: after min_steps
        loss = create_loss(self.loss, n_samples=n, n_labels=c, total_epochs=epochs, **params)
        if hasattr(loss, "reset_estimates"):
            if "seed" not in params and hasattr(loss, "seed"):
                loss.seed = int(self.random_state or 0)
            loss.reset_estimates(Y)
        return loss

    def _corrector(self):
        from mimlkit.deep.spmll import APLabelCorrector

        lc = self.label_correction
        if lc is None or lc is False:
            return None
        if lc is True:
            return APLabelCorrector()
        if isinstance(lc, dict):
            return APLabelCorrector(**lc)
        raise ValueError("label_correction must be None, True or a dict of APLabelCorrector "
                         "parameters")

    def _trainer(self, monitor_val: bool):
        from mimlkit.deep.trainer import Trainer

        return Trainer(max_epochs=self.max_epochs, optimizer=self.optimizer, lr=self.lr,
                       weight_decay=self.weight_decay, batch_size=self.batch_size,
                       device=self.device, seed=int(self.random_state or 0),
                       progress=bool(self.verbose), checkpoint_dir=self.checkpoint_dir,
                       resume=bool(getattr(self, "resume", False)),
                       early_stopping_patience=self.early_stopping_patience if monitor_val
                       else None, monitor="val_map", restore_best=monitor_val,
                       amp=getattr(self, "amp", "auto"))

    def _finish(self, loss, trainer, task) -> None:
        self.threshold_ = float(loss.decision_threshold) if self.threshold is None \
            else float(self.threshold)
        self.history_ = [dict(h) for h in trainer.history]
        self.n_epochs_ = len(trainer.history)
        self.n_corrected_ = int(task.n_corrected)
        self.loss_threshold_ = float(loss.decision_threshold)


class MultiLabelHead(_HeadBase):
    """Linear / MLP head on (pooled) feature bags, trained with any registered loss.

    Parameters
    ----------
    loss : registered loss name (``mimlkit.deep.losses.list_losses()``): "bce", "an", "wan",
        "ls", "nls", "focal", "asl", "zlpr", "opml", "opml_soft", "epr", "role", "ll_r",
        "ll_ct", "ll_cp", "entmax", "apl", ...
    loss_params : keyword arguments of the loss (e.g. ``{"a": 0.3, "b": 0.7}`` for OPML).
    hidden : None (linear head), an int or a tuple of ints (MLP widths, ReLU).
    dropout : dropout before each hidden layer's output (MLP only).
    pooling : "mean", "max" or "meanmax" (concatenation) over each bag's instances.
    standardize : z-score the pooled features with training statistics.
    max_epochs, lr, batch_size, weight_decay, optimizer : the shared trainer's settings
        (``weight_decay`` with ``"adam"`` / ``"sgd"`` is the L2 penalty λ/2‖w‖²).
    l1_penalty : λ of an L1 penalty λ‖W‖₁ on the weight matrices (not the biases), added to
        each step's loss (default 0: none). With ``loss="an"`` this is paper 003's
        "BCE + L1R" baseline, as we read it (the paper does not define it).
    label_correction : None, True or a dict for ``APLabelCorrector`` (single positive).
    loss_schedules : ``{attr: schedule}`` applied to the loss at each epoch start.
    early_stopping_patience : with ``fit(..., eval_set=(X_val, Y_val))``, stop when the
        validation mAP stops improving (the best epoch's weights are restored).
    threshold : decision threshold on logits; None = the loss's own (OPML: (log β − log α)/2).
    t_criterion : predict at least the top label per bag.
    random_state : seeds initialisation, batching and dropout.
    device : "cpu", "cuda", "auto".
    checkpoint_dir : optional per-epoch checkpoints through the trainer.
    resume : continue from ``checkpoint_dir/last.pt`` when it exists (same data and params).
    verbose : progress bar.
    """

    _torch_modules = ("module_",)
    _store_input = True  # a bag store is pooled block by block (only n_bags x d is held)

    def __init__(self, loss: str = "bce", loss_params: dict | None = None,
                 hidden: int | tuple[int, ...] | None = None, dropout: float = 0.0,
                 pooling: str = "mean", standardize: bool = True, max_epochs: int = 50,
                 lr: float = 1e-2, batch_size: int = 64, weight_decay: float = 0.0,
                 optimizer: str = "adam", label_correction: Any = None,
                 loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = 0, device: str = "cpu",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False, l1_penalty: float = 0.0) -> None:
        self.loss = loss
        self.loss_params = loss_params
        self.l1_penalty = l1_penalty
        self.hidden = hidden
        self.dropout = dropout
        self.pooling = pooling
        self.standardize = standardize
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.label_correction = label_correction
        self.loss_schedules = loss_schedules
        self.early_stopping_patience = early_stopping_patience
        self.threshold = threshold
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.device = device
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose

    # ------------------------------------------------------------------ internals
    def _pool(self, bags) -> np.ndarray:
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        from mimlkit.learners._bag_source import is_bag_source, map_blocks

        if is_bag_source(bags):  # a bag store: pooled one block of bags at a time
            return map_blocks(bags, self._pool)
        if self.pooling == "meanmax":
            F = np.hstack([bags.pool("mean"), bags.pool("max")])
        else:
            F = bags.pool(self.pooling)
        return np.asarray(F, dtype=np.float32)

    def _features(self, bags) -> np.ndarray:
        return self._standardized(self._pool(bags))

    def _standardized(self, F: np.ndarray) -> np.ndarray:
        if self.standardize:
            F = (F - self.mean_) / self.scale_
        return F.astype(np.float32, copy=False)

    def _build_torch_module(self, name: str = "module_"):
        """The untrained architecture (``module_``) from params and fitted sizes."""
        if name != "module_":
            raise ValueError(f"unknown torch module {name!r}")
        torch = _torch()
        nn = torch.nn
        d, c = int(self.n_pooled_features_), int(self.n_labels_)
        widths = () if self.hidden is None else (
            (int(self.hidden),) if np.isscalar(self.hidden) else tuple(int(h) for h in
                                                                       self.hidden))
        layers: list = []
        d_in = d
        for w in widths:
            layers += [nn.Linear(d_in, w), nn.ReLU()]
            if self.dropout:
                layers.append(nn.Dropout(float(self.dropout)))
            d_in = w
        layers.append(nn.Linear(d_in, c))
        return nn.Sequential(*layers)

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, Y: Any, eval_set: tuple[Any, Any] | None = None) -> MultiLabelHead:
        """Fit on bags ``X`` and labels ``Y`` (1 / 0 / -1 = unobserved). ``eval_set``: a
        fully labelled ``(X_val, Y_val)`` monitored by validation mAP (early stopping)."""
        torch = _torch()
        from mimlkit.deep.trainer import preserve_rng_state

        bags, Y = self._validate_fit(X, Y)
        F = self._pool(bags)
        if self.standardize:
            self.mean_ = F.mean(0).astype(np.float32)
            sd = F.std(0)
            self.scale_ = np.where(sd > 1e-12, sd, 1.0).astype(np.float32)
        self.n_pooled_features_ = F.shape[1]
        F = self._standardized(F)  # (pooled once: a bag store is read once)
        n, c = Y.shape
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state or 0))
            module = self._build_torch_module("module_")
        loss = self._loss(n, c, Y)
        if not float(self.l1_penalty) >= 0.0:
            raise ValueError(f"l1_penalty must be >= 0, got {self.l1_penalty!r}")
        task = _make_task(module, loss, Y, corrector=self._corrector(),
                          schedules=self.loss_schedules, score_data=torch.from_numpy(F),
                          l1_penalty=float(self.l1_penalty))
        train = (torch.from_numpy(F), torch.arange(n))
        val = None
        if eval_set is not None:
            Xv, Yv = eval_set
            bv = self._validate_bags(Xv, reset=False)
            Yv = check_labels(Yv, bv.n_bags, allow_unobserved=False)
            val = (torch.from_numpy(self._features(bv)), torch.from_numpy(Yv))
        trainer = self._trainer(monitor_val=val is not None)
        with preserve_rng_state():
            trainer.fit(task, train, val)
        self.module_ = module.cpu().eval()
        self._finish(loss, trainer, task)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Logits (n_bags x n_labels); larger = more likely."""
        check_is_fitted(self, "module_")
        torch = _torch()
        bags = self._validate_bags(X, reset=False)
        F = torch.from_numpy(self._features(bags))
        self.module_.eval()
        with torch.no_grad():
            out = self.module_(F).float().numpy()
        return out.astype(np.float64)


class _ImageData:
    """Map-style dataset of resized uint8 images (C, H, W) with their row index."""

    def __init__(self, images: Any, preprocess: Any) -> None:
        self.images = images
        self.pre = preprocess

    def __len__(self) -> int:
        return len(self.images)

    def _one(self, i: int):
        torch = _torch()
        arr = self.pre.to_uint8(self.images[int(i)], f"image {int(i)}")
        return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1)

    def __getitem__(self, i: int):
        return self._one(i), int(i)

    def batch(self, start: int, stop: int):
        torch = _torch()
        return torch.stack([self._one(i) for i in range(start, min(stop, len(self)))])


def _collate(items):
    torch = _torch()
    xs, ids = zip(*items)
    return torch.stack(xs), torch.as_tensor(ids, dtype=torch.long)


class MultiLabelCNN(_HeadBase):
    """A CNN backbone (``mimlkit.features.backbones``) + linear layer trained end to end with
    any registered multi-label loss (input: images — an ``ImageSet`` or a list of H x W x 3
    uint8 arrays).

    Parameters: ``backbone`` (e.g. "resnet18", "resnet50", "vgg16", "tiny"), ``weights``
    (None = random init, or a local state-dict file), ``image_size`` (None = the weights'
    size), ``freeze_backbone`` (train only the head), ``backbone_lr_mult`` (learning-rate
    multiplier of the backbone), ``num_workers`` (image decoding), ``amp`` ("auto": mixed
    precision on CUDA); the rest as :class:`MultiLabelHead`. Like every learner it chooses
    per-label thresholds on out-of-fold scores of the training images
    (``threshold_mode="hamming"``: 3 clones up to 1,000 images, one 80/20 hold-out above;
    ``"fixed"`` or a given ``threshold`` keeps the loss's own threshold).
    """

    _torch_modules = ("module_",)
    input_kind = "images"

    def __init__(self, backbone: str = "resnet18", weights: str | None = None,
                 image_size: int | None = None, loss: str = "bce",
                 loss_params: dict | None = None, freeze_backbone: bool = False,
                 backbone_lr_mult: float = 1.0, max_epochs: int = 10, lr: float = 1e-3,
                 batch_size: int = 16, weight_decay: float = 0.0, optimizer: str = "adam",
                 label_correction: Any = None, loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto", num_workers: int = 0,
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False, threshold_mode: str = "hamming") -> None:
        self.threshold_mode = threshold_mode
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.loss = loss
        self.loss_params = loss_params
        self.freeze_backbone = freeze_backbone
        self.backbone_lr_mult = backbone_lr_mult
        self.max_epochs = max_epochs
        self.lr = lr
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.label_correction = label_correction
        self.loss_schedules = loss_schedules
        self.early_stopping_patience = early_stopping_patience
        self.threshold = threshold
        self.t_criterion = t_criterion
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.num_workers = num_workers
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose

    def _load_backbone(self, weights):
        from mimlkit.features.backbones import load_backbone

        return load_backbone(self.backbone, weights, seed=int(self.random_state or 0),
                             image_size=self.image_size)

    def _build_torch_module(self, name: str = "module_"):
        if name != "module_":
            raise ValueError(f"unknown torch module {name!r}")
        torch = _torch()
        bb = self._load_backbone(None)  # architecture only; weights come from the state dict
        return torch.nn.Sequential(bb.trunk(), torch.nn.Linear(bb.feature_dim,
                                                               int(self.n_labels_)))

    def _preprocess(self):
        from mimlkit.features.backbones import Preprocess

        cfg = dict(self.preprocess_config_)
        cfg["mean"], cfg["std"] = tuple(cfg["mean"]), tuple(cfg["std"])
        return Preprocess(**cfg)

    def fit(self, X: Any, Y: Any) -> MultiLabelCNN:
        """Fit on images ``X`` (ImageSet / list of H x W x 3 arrays) and labels ``Y``."""
        torch = _torch()
        from mimlkit.deep.trainer import preserve_rng_state

        n = len(X)
        Y = check_labels(Y, n, allow_unobserved=True)
        self.n_labels_ = Y.shape[1]
        c = self.n_labels_
        bb = self._load_backbone(self.weights)
        self.preprocess_config_ = bb.preprocess.config()
        self.weights_id_ = bb.weights_id
        pre = bb.preprocess
        module = torch.nn.Sequential(bb.trunk(), torch.nn.Linear(bb.feature_dim, c))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state or 0))
            module[1].reset_parameters()
        if self.freeze_backbone:
            for p in module[0].parameters():
                p.requires_grad_(False)
        loss = self._loss(n, c, Y)
        data = _ImageData(X, pre)
        task = _make_task(module, loss, Y, prepare=pre.normalize,
                          corrector=self._corrector(), schedules=self.loss_schedules,
                          score_data=data, score_batch=max(self.batch_size, 1))
        task.collate_fn = _collate
        mult = float(self.backbone_lr_mult)

        def groups():
            g = [{"params": list(module[0].parameters()), "lr_mult": mult},
                 {"params": list(module[1].parameters())}]
            lp = [p for p in loss.parameters() if p.requires_grad]
            if lp:
                g.append({"params": lp, "lr_mult": getattr(loss, "lr_mult", 1.0)})
            return g

        task.param_groups = groups
        trainer = self._trainer(monitor_val=False)
        trainer.num_workers = int(self.num_workers)
        with preserve_rng_state():
            trainer.fit(task, data)
        self.module_ = module.cpu().eval()
        self._finish(loss, trainer, task)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "module_")
        torch = _torch()
        pre = self._preprocess()
        data = _ImageData(X, pre)
        self.module_.eval()
        out = []
        bs = max(int(self.batch_size), 1)
        with torch.no_grad():
            for s in range(0, len(data), bs):
                out.append(self.module_(pre.normalize(data.batch(s, s + bs))).float().numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.n_labels_))
