"""Shared plumbing of the attention-MIL learners (``abmil``, ``transmil``, ``dsmil``,
``meanmil`` / ``maxmil``): bag batching, the training task, prediction and attributions.

* **Scaling**: instance features are standardised per feature with statistics of the
  training instances (``scale="standard"``; Scene's raw features span -248..255).
* **Batching without padding waste**: each epoch the bags are shuffled, stably sorted by
  (capped) length and cut into batches, so a batch holds bags of similar length; the trainer
  shuffles the batch order. Padding inside a batch is masked everywhere (attention logits of
  padded slots are -inf, pooled sums skip them).
* **Huge bags**: ``max_instances`` keeps a random subset of at most that many instances of a
  bag per training step (a fresh draw every epoch); ``instance_dropout`` drops each instance
  with that probability during training (every bag keeps at least one). Prediction always
  uses every instance.
* **Training** runs on the shared :class:`~mimlkit.deep.trainer.Trainer` (AMP on CUDA,
  checkpoints, DDP under ``torchrun``) with any loss of :mod:`mimlkit.deep.losses`; ``Y`` may
  hold -1 (unobserved) entries for single-positive MIML.
* **Bag stores**: ``fit`` / ``predict`` / ``instance_scores`` also take a bag store
  (``open_store``, or ``store.subset(idx)``), read lazily: a training step reads its batch
  of bags (:mod:`mimlkit.deep.store_data`), never the whole store (``docs/store_training.md``).
* **Positions**: tile coordinates ``bags.instance_meta["coords"]`` (N x 2, any tiler) become
  integer grid positions (divided by the tile stride); bags without coordinates get a
  row-major square layout of their instance order (TransMIL's convention).

Every network returns bag logits from ``forward(x, mask, pos)`` and, from
``explain(x, mask, pos)``, a dict of per-instance, per-label tensors (``"attention"``,
``"logit"``, ``"contribution"`` where the model defines them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mimlkit.bags import Bags, check_labels
from mimlkit.datasets.store_view import is_bag_source
from mimlkit.deep.deepmiml import _cpu_threads
from mimlkit.deep.heads import _HeadBase
from mimlkit.learners._bag_source import stream_scaling
from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

__all__ = ["BagMILBase", "grid_positions", "masked_softmax", "InstanceEncoder"]

_MAX_GRID_SIDE = 1024
_PREDICT_INSTANCES = 65536  # padded instances per prediction batch


# ----------------------------------------------------------------------------- helpers
def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int) -> torch.Tensor:
    """Softmax in float32 with masked-out entries at exactly 0 (``mask`` broadcastable)."""
    z = logits.float().masked_fill(~mask, float("-inf"))
    return torch.softmax(z, dim=dim).nan_to_num(0.0)


class InstanceEncoder(nn.Sequential):
    """Instance MLP d -> hidden (ReLU, dropout); the feature extractor of every model."""

    def __init__(self, n_features: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout))


def _usable_coords(bags: Bags) -> np.ndarray | None:
    """The bags' tile coordinates (N, 2) float64 relative to each bag's minimum, or None."""
    coords = bags.instance_meta.get("coords")
    if coords is None:
        return None
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim != 2 or c.shape[1] < 2 or not np.isfinite(c).all():
        return None
    c = c[:, :2]
    return c - np.repeat(np.minimum.reduceat(c, bags.offsets[:-1], axis=0), bags.sizes, axis=0)


def tile_step(bags: Bags) -> np.ndarray | None:
    """Per axis, the smallest positive coordinate offset inside any bag (1 where none), or
    None without usable coordinates; the minimum over blocks of bags is the step of all."""
    c = _usable_coords(bags)
    if c is None:
        return None
    step = np.full(2, np.inf)
    for a in range(2):
        pos = c[:, a][c[:, a] > 1e-9]
        if pos.size:
            step[a] = pos.min()
    return step


def grid_positions(bags: Bags, step: np.ndarray | None = None) -> np.ndarray:
    """(N, 2) int64 grid positions (row, col) of every instance inside its bag.

    From ``instance_meta["coords"]`` when present: coordinates minus the bag's minimum,
    divided by the tile stride (the smallest positive offset along each axis over all bags,
    or ``step`` when given: the stride of a whole store read in blocks).
    Otherwise, or when a bag's grid would exceed 1024 cells per side, instance ``j`` of a bag
    of ``n`` goes to ``(j // w, j % w)`` with ``w = ceil(sqrt(n))``.
    """
    sizes = bags.sizes
    start = np.repeat(bags.offsets[:-1], sizes)
    j = np.arange(bags.n_instances, dtype=np.int64) - start
    w = np.repeat(np.ceil(np.sqrt(sizes)).astype(np.int64), sizes)
    seq = np.stack([j // w, j % w], axis=1)
    c = _usable_coords(bags)
    if c is None:
        return seq
    if step is None:
        step = tile_step(bags)
    step = np.where(np.isfinite(step), step, 1.0)
    g = np.rint(c / step).astype(np.int64)
    too_big = np.repeat(np.maximum.reduceat(g, bags.offsets[:-1], axis=0).max(1)
                        >= _MAX_GRID_SIDE, sizes)
    return np.where(too_big[:, None], seq, g)


def _pad(values: torch.Tensor, rows: np.ndarray, bag_of: np.ndarray, slot: np.ndarray,
         B: int, L: int) -> torch.Tensor:
    out = values.new_zeros((B, L) + tuple(values.shape[1:]))
    out[torch.from_numpy(bag_of), torch.from_numpy(slot)] = values[torch.from_numpy(rows)]
    return out


class _BagBatches:
    """Map-style dataset whose items are whole padded batches of similar-length bags.

    ``set_epoch`` redraws the bucketing (and the instance subsampling / dropout); the number
    of batches is fixed (``ceil(n / batch_size)``) so the trainer's sampler stays valid.
    """

    def __init__(self, X: torch.Tensor, offsets: np.ndarray, pos: torch.Tensor | None,
                 batch_size: int, seed: int, *, train: bool, max_instances: int | None = None,
                 instance_dropout: float = 0.0, order: np.ndarray | None = None,
                 predict_instances: int = _PREDICT_INSTANCES) -> None:
        self.X, self.offsets, self.pos = X, np.asarray(offsets, dtype=np.int64), pos
        self.predict_instances = max(1, int(predict_instances))
        self.sizes = np.diff(self.offsets)
        self.n = self.sizes.size
        self.bs = max(1, int(batch_size))
        self.seed, self.train = int(seed), bool(train)
        self.max_instances = None if max_instances is None else max(1, int(max_instances))
        self.instance_dropout = float(instance_dropout)
        self.order = order
        self.set_epoch(0)

    def __len__(self) -> int:
        return len(self.batches)

    def set_epoch(self, epoch: int) -> None:
        rng = np.random.default_rng([self.seed % 2**32, int(epoch)])
        self.rng = rng
        eff = self.sizes if self.max_instances is None else np.minimum(self.sizes,
                                                                       self.max_instances)
        if self.train:
            perm = rng.permutation(self.n)
            idx = perm[np.argsort(eff[perm], kind="stable")]
            self.batches = [idx[s:s + self.bs] for s in range(0, self.n, self.bs)]
        else:  # prediction: sorted by length, batches capped by padded instance count
            idx = np.argsort(eff, kind="stable")
            self.batches = []
            s = 0
            while s < self.n:
                L = int(eff[idx[min(s + self.bs, self.n) - 1]])
                b = max(1, min(self.bs, self.predict_instances // max(L, 1)))
                self.batches.append(idx[s:s + b])
                s += b

    def _inputs(self, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        """(instances, positions, first row of each bag of ``b`` in them): the whole
        training tensors here; a lazy store dataset reads just the bags ``b``."""
        return self.X, self.pos, self.offsets[b]

    def _keep(self, b: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows kept for bags ``b`` (bag by bag, their first rows at ``starts``) and the
        kept count per bag."""
        sizes = self.sizes[b]
        bag_of = np.repeat(np.arange(b.size), sizes)
        rows = np.repeat(starts - np.cumsum(sizes) + sizes, sizes) + np.arange(sizes.sum())
        if not self.train or (self.max_instances is None and self.instance_dropout <= 0):
            return rows, bag_of
        key = self.rng.random(rows.size)
        order = np.lexsort((key, bag_of))  # random order inside each bag
        rank = np.arange(rows.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        keep = np.ones(rows.size, dtype=bool)
        if self.max_instances is not None:
            keep &= rank < self.max_instances
        if self.instance_dropout > 0:
            keep &= (self.rng.random(rows.size) >= self.instance_dropout) | (rank == 0)
        sel = order[keep]
        return rows[sel], bag_of[sel]

    def __getitem__(self, j: int):
        b = self.batches[int(j)]
        X, P, starts = self._inputs(b)
        rows, bag_of = self._keep(b, starts)
        counts = np.bincount(bag_of, minlength=b.size)
        slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
        B, L = b.size, int(counts.max())
        x = _pad(X, rows, bag_of, slot, B, L)
        mask = torch.from_numpy(np.arange(L)[None, :] < counts[:, None])
        pos = _pad(P, rows, bag_of, slot, B, L) if P is not None else \
            torch.zeros((B, L, 2), dtype=torch.long)
        return (x, mask, pos), torch.from_numpy(b.astype(np.int64))

    def batch(self, start: int, stop: int):
        """Inputs of bags ``start:stop`` in order (for whole-training-set scoring)."""
        b = np.arange(start, min(stop, self.n))
        saved, self.batches = self.batches, [b]
        train, self.train = self.train, False
        try:
            return self[0][0]
        finally:
            self.batches, self.train = saved, train


def _first(items):
    return items[0]


def _make_bag_task(model: nn.Module, loss: nn.Module, labels: np.ndarray, data: _BagBatches,
                   score_data: _BagBatches, corrector=None, schedules=None):
    from mimlkit.deep.spmll import apply_schedules, mean_ap
    from mimlkit.deep.trainer import TrainingTask, move_to_device

    class _BagTask(TrainingTask):
        collate_fn = staticmethod(_first)

        def __init__(self) -> None:
            super().__init__()
            self.model, self.loss = model, loss
            self.register_buffer("labels", torch.as_tensor(labels, dtype=torch.int8).clone())
            self.register_buffer("initial", torch.as_tensor(labels, dtype=torch.int8).clone())
            self.n_corrected = 0

        def get_extra_state(self):
            return {"n_corrected": self.n_corrected}

        def set_extra_state(self, state):
            self.n_corrected = int(state["n_corrected"])

        def param_groups(self):
            groups = [{"params": list(self.model.parameters())}]
            lp = [p for p in self.loss.parameters() if p.requires_grad]
            if lp:
                groups.append({"params": lp, "lr_mult": getattr(self.loss, "lr_mult", 1.0),
                               "weight_decay": 0.0})
            return groups

        def training_step(self, batch, batch_idx):
            (x, mask, pos), idx = batch
            return self.loss(self.model(x, mask, pos), self.labels[idx], index=idx)

        def validation_step(self, batch, batch_idx):
            (x, mask, pos), idx = batch
            return {"scores": self.model(x, mask, pos).float(), "idx": idx}

        def validation_epoch_end(self, outputs):
            s = torch.cat([o["scores"] for o in outputs]).cpu().numpy()
            i = torch.cat([o["idx"] for o in outputs]).cpu().numpy()
            return {"val_map": mean_ap(self.val_labels[i] == 1, s)}

        @torch.no_grad()
        def training_scores(self, device):
            was = self.model.training
            self.model.eval()
            out = [self.model(*move_to_device(score_data.batch(s, s + 256), device)).float()
                   .cpu() for s in range(0, score_data.n, 256)]
            self.model.train(was)
            return torch.cat(out)

        def on_epoch_start(self, epoch, trainer):
            data.set_epoch(epoch)
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

    return _BagTask()


# ----------------------------------------------------------------------------- estimator
class BagMILBase(_HeadBase):
    """Base estimator: subclasses define ``_net()`` (the untrained network), their own
    ``__init__`` (every parameter listed) and ``_default_kind`` (instance score kind)."""

    _torch_modules = ("module_",)
    _uses_positions = False
    _store_input = True
    #: thresholds from out-of-fold scores up to 200 training bags (3 small clones), above
    #: from one 80/20 hold-out + refit (about 1.8x one fit)
    _OOF_MAX_BAGS = 200
    _default_kind = "contribution"
    _score_kinds: tuple[str, ...] = ("attention", "logit", "contribution")

    def _explicit_threshold(self) -> bool:
        """A given ``threshold`` is kept (no data-chosen thresholds then)."""
        return self.threshold is not None

    def _n_epochs(self, n_bags: int) -> int:
        """Epochs to train on ``n_bags`` bags: ``max_epochs``, raised where the learner has a
        ``min_steps`` so that small data still gets that many optimizer steps."""
        epochs = int(self.max_epochs)
        min_steps = getattr(self, "min_steps", None)
        if min_steps:
            per_epoch = max(1, -(-int(n_bags) // int(self.batch_size)))
            epochs = max(epochs, -(-int(min_steps) // per_epoch))
        return epochs

    # ------------------------------------------------------------------ torch plumbing
    def _net(self) -> nn.Module:
        raise NotImplementedError

    def _build_torch_module(self, name: str = "module_") -> nn.Module:
        """Untrained architecture from the params and fitted sizes (persistence protocol)."""
        if name != "module_":
            raise KeyError(f"{type(self).__name__} has no torch module {name!r}")
        return self._net()

    def _check_params(self) -> None:
        if int(self.max_epochs) < 0 or int(self.batch_size) < 1:
            raise ValueError("max_epochs must be >= 0 and batch_size >= 1")
        if self.max_instances is not None and int(self.max_instances) < 1:
            raise ValueError("max_instances must be None or >= 1")
        if not 0.0 <= float(self.instance_dropout) < 1.0:
            raise ValueError("instance_dropout must lie in [0, 1)")

    def _batch_maker(self, bags: Any):
        """``make(batch_size, seed, *, train, **kw) -> _BagBatches`` over ``bags``: the
        scaled instance tensor is built once and shared; for a bag store, a lazy dataset
        that reads each batch's bags from disk (``mimlkit.deep.store_data``)."""
        if is_bag_source(bags):
            from mimlkit.deep.store_data import store_batch_maker

            return store_batch_maker(self, bags)
        Xt, pos = self._tensors(bags)

        def make(batch_size: int, seed: int, *, train: bool, **kw: Any) -> _BagBatches:
            return _BagBatches(Xt, bags.offsets, pos, batch_size, seed, train=train, **kw)

        return make

    def _tensors(self, bags: Bags) -> tuple[torch.Tensor, torch.Tensor | None]:
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_, np.float32)
        pos = torch.from_numpy(grid_positions(bags)) if self._uses_positions else None
        return torch.from_numpy(np.ascontiguousarray(Xs)), pos

    def _device(self) -> torch.device:
        from mimlkit.deep.trainer import resolve_device

        return resolve_device(self.device)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any, eval_set: tuple[Any, Any] | None = None) -> BagMILBase:
        """Fit on bags ``X`` and labels ``Y`` (1 / 0 / -1 = unobserved). ``eval_set``: a
        fully labelled ``(X_val, Y_val)`` monitored by validation mAP (early stopping and
        restore of the best epoch). ``X`` may be a bag store (``open_store``, or a subset):
        it is read lazily, one batch of bags at a time (``Y`` None: the store's labels)."""
        from mimlkit.deep.trainer import Trainer, preserve_rng_state

        self._check_params()
        bags, Y = self._validate_fit(X, Y)
        vf = getattr(self, "validation_fraction", None)
        self.validation_bags_ = None
        if eval_set is None and vf and not (Y == -1).any() and bags.n_bags >= 20:
            # an internal validation part: monitored by mAP, the best epoch is restored
            if not 0.0 < float(vf) < 1.0:
                raise ValueError(f"validation_fraction must be in (0, 1), got {vf!r}")
            perm = np.random.default_rng(int(self.random_state or 0)).permutation(bags.n_bags)
            n_val = max(1, int(round(float(vf) * bags.n_bags)))
            va, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            take = bags.subset if is_bag_source(bags) else bags.take
            eval_set = (take(va), Y[va])
            bags, Y = take(tr), Y[tr]
            self.validation_bags_ = va
        if is_bag_source(bags):  # statistics streamed block by block
            self.scale_offset_, self.scale_factor_ = stream_scaling(bags, self.scale)
        else:
            self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        n, c = Y.shape
        self.n_epochs_ = self._n_epochs(n)
        seed = int(self.random_state or 0)
        make = self._batch_maker(bags)
        data = make(self.batch_size, seed, train=True, max_instances=self.max_instances,
                    instance_dropout=self.instance_dropout)
        score_data = make(256, seed, train=False)
        device = self._device()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = self._build_torch_module("module_")
        # output biases start at the labels' training log-odds (clipped to [0.01, 0.99]):
        # faster start, and a label never (always) seen is scored absent (present) at once
        prior = np.clip((Y == 1).mean(0), 0.01, 0.99)
        with torch.no_grad():
            for b in module.output_biases():
                b.copy_(torch.as_tensor(np.log(prior / (1 - prior)), dtype=b.dtype))
        loss = self._loss(n, c, Y)
        task = _make_bag_task(module, loss, Y, data, score_data, self._corrector(),
                              self.loss_schedules)
        val = None
        if eval_set is not None:
            bv = self._validate_bags(eval_set[0], reset=False)
            task.val_labels = check_labels(eval_set[1], bv.n_bags, allow_unobserved=False)
            val = self._batch_maker(bv)(256, seed, train=False)
        trainer = Trainer(max_epochs=self.n_epochs_, optimizer=self.optimizer, lr=self.lr,
                          weight_decay=self.weight_decay, batch_size=1, device=device,
                          seed=seed, progress=bool(self.verbose),
                          checkpoint_dir=self.checkpoint_dir, resume=bool(self.resume),
                          early_stopping_patience=self.early_stopping_patience
                          if val is not None else None, monitor="val_map",
                          restore_best=val is not None, amp=self.amp,
                          grad_clip=self.grad_clip)
        with preserve_rng_state(), _cpu_threads(self.n_threads, device):
            trainer.fit(task, data, val)
        self.module_ = module.cpu().eval()
        self._finish(loss, trainer, task)
        return self

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _run(self, X: Any, explain: bool):
        check_is_fitted(self, "module_")
        bags = self._validate_bags(X, reset=False)
        net = self.module_
        device = next(net.parameters()).device
        net.eval()
        data = self._batch_maker(bags)(512, 0, train=False)
        bag_out = np.zeros((bags.n_bags, int(self.n_labels_)))
        inst: dict[str, np.ndarray] = {}
        with _cpu_threads(self.n_threads, device):
            for j in range(len(data)):
                (x, mask, p), idx = data[j]
                x, mask, p = x.to(device), mask.to(device), p.to(device)
                b = idx.numpy()
                if not explain:
                    bag_out[b] = net(x, mask, p).float().cpu().numpy()
                    continue
                out = net.explain(x, mask, p)
                bag_out[b] = out.pop("logits").float().cpu().numpy()
                m = mask.cpu().numpy()
                rows = (bags.offsets[b][:, None] + np.arange(m.shape[1])[None, :])[m]
                for k, v in out.items():
                    arr = inst.setdefault(k, np.zeros((bags.n_instances, int(self.n_labels_))))
                    arr[rows] = v.float().cpu().numpy()[m]
        return bags, bag_out, inst

    def decision_function(self, X: Any) -> np.ndarray:
        """Bag logits (n_bags, n_labels); a label is present above ``threshold_``."""
        return self._run(X, explain=False)[1]

    def instance_scores(self, X: Any, kind: str | None = None) -> list[np.ndarray]:
        """Per-bag (n_i, n_labels) instance scores. ``kind``: ``"contribution"`` (attention
        x instance logit: the instance's share of the bag logit), ``"attention"`` or
        ``"logit"`` (the instance classifier) where the model defines them; default: the
        model's ``_default_kind``."""
        kind = self._default_kind if kind is None else kind
        if kind not in self._score_kinds:
            raise ValueError(f"{type(self).__name__} instance score kind must be one of "
                             f"{self._score_kinds}, got {kind!r}")
        bags, _, inst = self._run(X, explain=True)
        return np.split(inst[kind], bags.offsets[1:-1])


_COMMON_DOC = """
    loss : registered loss name (``mimlkit.deep.losses.list_losses()``): "bce", "asl",
        "zlpr", "opml", "an", "role", "entmax", ... (``Y`` may hold -1 = unobserved).
    loss_params : keyword arguments of the loss.
    hidden : width of the instance encoder (d -> hidden, ReLU, dropout).
    dropout : dropout of the instance encoder.
    scale : "standard" (default), "minmax" or None: per-feature scaling fitted on the
        training instances.
    max_instances : at most this many randomly drawn instances per bag per training step
        (None: all); prediction always uses all instances.
    instance_dropout : probability of dropping an instance during training.
    max_epochs, lr, batch_size, weight_decay, optimizer, grad_clip : trainer settings.
    label_correction, loss_schedules : single-positive extras (as ``MultiLabelHead``).
    early_stopping_patience : with ``fit(..., eval_set=...)``, stop on validation mAP.
    threshold : a fixed decision threshold on logits (then nothing is chosen on data);
        None = chosen as ``threshold_mode`` says.
    threshold_mode : "hamming" (default): per-label thresholds chosen on bags held out of
        training (3 folds up to 200 training bags, else one 80/20 split; then the final fit
        on all of them;
        ``learners/_thresholds.py``: a label is switched on only when it saves errors beyond
        noise, so hamming loss stays at most the empty predictor's); "f1", "rate"; "fixed"
        = the loss's own threshold.
    t_criterion : "auto" (default): give a bag left empty its top label only when no
        training bag is empty and that helps on the held-out bags; True / False.
    random_state : seeds initialisation, batching, subsampling and dropout.
    device : "auto" (CUDA when present), "cpu", "cuda".
    amp : mixed precision ("auto": bf16/fp16 on CUDA, off on CPU).
    n_threads : torch CPU threads during fit/predict (1 is fastest for these small nets).
    checkpoint_dir, resume : per-epoch checkpoints through the trainer.
    verbose : progress bar.
"""

_COMMON_DEFAULTS: dict[str, Any] = dict(
    loss="bce", loss_params=None, hidden=128, dropout=0.1, scale="standard",
    max_instances=None, instance_dropout=0.0, max_epochs=40, lr=1e-3, batch_size=32,
    weight_decay=1e-4, optimizer="adamw", grad_clip=None, label_correction=None,
    loss_schedules=None, early_stopping_patience=None, threshold=None, t_criterion="auto",
    threshold_mode="hamming", random_state=0, device="auto", amp="auto", n_threads=1,
    checkpoint_dir=None, resume=False, verbose=False)


def set_common(est: Any, values: dict[str, Any]) -> None:
    """Assign the shared constructor arguments (keeps subclass ``__init__`` explicit)."""
    for k in _COMMON_DEFAULTS:
        setattr(est, k, values[k])
