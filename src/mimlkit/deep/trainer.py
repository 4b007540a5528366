"""One training loop shared by every deep learner in mimlkit.

Lightning-style split (``specs/conventions.md`` §5): a **task** holds the model, the loss and
any curriculum state (α stores, pseudo-label stores, corrected label matrices); the
:class:`Trainer` owns epochs, devices, precision, distribution, checkpoints and logging.

Task protocol
-------------
A task is an ``nn.Module`` (subclass :class:`TrainingTask` for the defaults) with

* ``training_step(batch, batch_idx) -> Tensor | dict`` — the loss (or ``{"loss": ...}``);
* ``validation_step(batch, batch_idx) -> Tensor | dict`` (optional);
* ``validation_epoch_end(outputs) -> dict[str, float]`` (optional; default: mean of the
  ``"loss"`` entries, reported as ``val_loss``);
* ``predict_step(batch, batch_idx) -> Tensor`` (optional, for :meth:`Trainer.predict`);
* ``configure_optimizers(trainer)`` (optional) returning an optimizer or
  ``(optimizer, scheduler)``; otherwise the trainer builds one from ``param_groups()``
  (optional, dicts with ``"params"`` and an optional ``"lr_mult"``) or ``parameters()``;
* hooks ``on_fit_start(trainer)``, ``on_epoch_start(epoch, trainer)``,
  ``on_epoch_end(epoch, trainer, metrics) -> dict | None``, ``on_fit_end(trainer)``;
* ``collate_fn`` (optional) for map-style datasets.

Everything the task must carry across a resume lives in its ``state_dict()`` (parameters,
buffers and ``get_extra_state``); the checkpoint also holds the optimizer, scheduler, grad
scaler, sampler, every rank's python/numpy/torch RNG states, the epoch, the history and the
early-stopping state, so ``resume=True`` continues bitwise-exactly on CPU in deterministic mode.

Data
----
``train_data`` / ``val_data`` are either a tuple of tensors/arrays with a common first
dimension (fast path: batches are index gathers, the batch is the tuple of gathered tensors)
or a map-style ``torch.utils.data.Dataset`` (batched with a ``DataLoader`` driven by the
trainer's sampler). Per-sample state (e.g. ROLE's label estimates) gets its sample indices by
including ``torch.arange(n)`` as one of the tensors.

Distribution
------------
Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) the trainer initialises the process
group (gloo on CPU, nccl on GPU), wraps the task in ``DistributedDataParallel`` (its
``forward`` runs ``training_step``), and uses :class:`EpochSampler`: every rank draws the same
global index list from a shared seed, then takes its shard ``global[rank::world_size]``.
``batch_size`` is per process. Validation runs on the full validation set on every rank, so
early-stopping decisions agree without communication. Rank 0 writes checkpoints and logs.

Modules: this one holds the loop (:class:`Trainer`, :class:`TrainingTask`, data access);
``mimlkit.deep.distributed`` the process group and the sampler; ``mimlkit.deep.runtime``
seeding, devices, RNG states and checkpoint files (all re-exported here).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mimlkit.deep.distributed import DistContext, EpochSampler
from mimlkit.deep.runtime import (  # noqa: F401 - re-exported (public names of this module)
    _atomic_write_text,
    _clone_state,
    _rng_state,
    _set_rng_state,
    _to_float,
    atomic_torch_save,
    load_checkpoint,
    move_to_device,
    preserve_rng_state,
    resolve_device,
    seed_everything,
)

__all__ = [
    "TrainingTask",
    "Trainer",
    "EpochSampler",
    "load_checkpoint",
    "DistContext",
    "seed_everything",
    "resolve_device",
    "atomic_torch_save",
    "move_to_device",
    "preserve_rng_state",
]

CHECKPOINT_VERSION = 1
_MAX_MODES = ("map", "ap", "acc", "f1", "auc", "overall", "score", "precision", "recall")


# ----------------------------------------------------------------------------- data access
class _Data:
    """Uniform batch access for a tuple of tensors (fast path) or a map-style dataset."""

    def __init__(self, data: Any, collate_fn: Callable | None, num_workers: int,
                 pin_memory: bool, seed: int) -> None:
        self.collate_fn = collate_fn
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        if isinstance(data, (tuple, list)) and data and all(
                isinstance(t, (torch.Tensor, np.ndarray)) for t in data):
            tensors = tuple(torch.as_tensor(t) for t in data)
            n = tensors[0].shape[0]
            for t in tensors:
                if t.shape[0] != n:
                    raise ValueError("all tensors in the data tuple need the same first "
                                     f"dimension; got {[int(x.shape[0]) for x in tensors]}")
            self.tensors: tuple[torch.Tensor, ...] | None = tensors
            self.dataset = None
            self.n = int(n)
        elif isinstance(data, torch.Tensor | np.ndarray):
            self.tensors = (torch.as_tensor(data),)
            self.dataset = None
            self.n = int(self.tensors[0].shape[0])
        else:
            if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
                raise ValueError("training data must be a tuple of tensors or a map-style "
                                 "Dataset with __len__ and __getitem__")
            self.tensors = None
            self.dataset = data
            self.n = len(data)

    def iterate(self, batches: Sequence[np.ndarray], epoch: int) -> Iterator[Any]:
        if self.tensors is not None:
            for b in batches:
                ib = torch.from_numpy(np.ascontiguousarray(b))
                yield tuple(t[ib] for t in self.tensors)
            return
        from torch.utils.data import DataLoader

        g = torch.Generator()
        g.manual_seed(self.seed * 1_000_003 + epoch)
        base = self.seed * 1_000_003 + epoch

        def _init(worker_id: int) -> None:  # deterministic worker RNGs
            s = (base * 7919 + worker_id) % (2**32)
            random.seed(s)
            np.random.seed(s)
            torch.manual_seed(s)

        loader = DataLoader(self.dataset, batch_sampler=[b.tolist() for b in batches],
                            collate_fn=self.collate_fn, num_workers=self.num_workers,
                            pin_memory=self.pin_memory, generator=g,
                            worker_init_fn=_init if self.num_workers else None)
        yield from loader


# ----------------------------------------------------------------------------- task base
class TrainingTask(nn.Module):
    """Base class for tasks: override ``training_step`` (and optionally the rest).

    ``forward(batch, batch_idx)`` runs ``training_step`` so the trainer can wrap the whole
    task in ``DistributedDataParallel``.
    """

    def forward(self, batch: Any, batch_idx: int = 0) -> Any:  # noqa: D102
        return self.training_step(batch, batch_idx)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor | dict:
        raise NotImplementedError

    def on_fit_start(self, trainer: Trainer) -> None:
        pass

    def on_epoch_start(self, epoch: int, trainer: Trainer) -> None:
        pass

    def on_epoch_end(self, epoch: int, trainer: Trainer, metrics: dict) -> dict | None:
        return None

    def on_fit_end(self, trainer: Trainer) -> None:
        pass


# ----------------------------------------------------------------------------- trainer
class Trainer:
    """The shared training loop (see the module docstring for the task protocol).

    Parameters
    ----------
    max_epochs : number of epochs.
    optimizer : ``"adam" | "adamw" | "sgd"`` or a callable ``(param_groups, lr) -> Optimizer``.
    lr, weight_decay, momentum : optimizer settings (``momentum`` for SGD).
    scheduler : ``None``, ``"cosine"``, ``"step:<every>:<gamma>"`` or a callable
        ``(optimizer, trainer) -> scheduler``; stepped once per epoch.
    batch_size : per process. ``shuffle``, ``drop_last`` : batching.
    device : ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
    amp : ``"auto"`` (bf16 autocast on CUDA when supported, else fp16 with a grad scaler; off
        on CPU), ``True``, ``False``, ``"bf16"``, ``"fp16"``.
    grad_clip : max gradient norm (``None`` = off).
    checkpoint_dir : write ``last.pt`` every epoch (atomically) and ``best.pt`` on improvement.
    resume : continue from ``checkpoint_dir/last.pt`` when it exists.
    early_stopping_patience : epochs without improvement of ``monitor`` before stopping.
    monitor : metric name in the epoch record (``"val_loss"``, ``"val_map"``, ``"train_loss"``).
    monitor_mode : ``"min"``, ``"max"`` or ``"auto"`` (max for names containing map/ap/acc/f1/
        auc/overall/score).
    restore_best : at the end, load the weights of the best monitored epoch (when validating).
    seed : seeds every RNG at the start of ``fit`` and drives the sampler.
    deterministic : ``torch.use_deterministic_algorithms`` (warn-only) and cuDNN determinism
        for the duration of ``fit``.
    progress : tqdm bar per epoch (rank 0 only).
    history_path, curve_path : metrics history JSON and loss/metric curve PNG (default: inside
        ``checkpoint_dir`` when given).
    distributed : ``"auto"`` (``torchrun`` detection), ``False`` or ``True``.
    """

    def __init__(self, max_epochs: int = 10, *, optimizer: str | Callable = "adam",
                 lr: float = 1e-3, weight_decay: float = 0.0, momentum: float = 0.9,
                 scheduler: str | Callable | None = None, batch_size: int = 32,
                 shuffle: bool = True, drop_last: bool = False, num_workers: int = 0,
                 device: str | torch.device = "auto", amp: str | bool = "auto",
                 grad_clip: float | None = None, checkpoint_dir: str | os.PathLike | None = None,
                 resume: bool = False, early_stopping_patience: int | None = None,
                 monitor: str = "val_loss", monitor_mode: str = "auto",
                 restore_best: bool = True, seed: int = 0, deterministic: bool = True,
                 progress: bool = True, history_path: str | os.PathLike | None = None,
                 curve_path: str | os.PathLike | None = None,
                 distributed: str | bool = "auto",
                 ddp_find_unused_parameters: bool = False) -> None:
        if max_epochs < 0:
            raise ValueError("max_epochs must be >= 0")
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.max_epochs = int(max_epochs)
        self.optimizer_spec = optimizer
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.momentum = float(momentum)
        self.scheduler_spec = scheduler
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.num_workers = int(num_workers)
        self.device_spec = device
        self.amp_spec = amp
        self.grad_clip = grad_clip
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.early_stopping_patience = early_stopping_patience
        self.monitor = monitor
        self.monitor_mode = monitor_mode
        self.restore_best = restore_best
        self.seed = int(seed)
        self.deterministic = deterministic
        self.progress = progress
        self.history_path = Path(history_path) if history_path else (
            self.checkpoint_dir / "history.json" if self.checkpoint_dir else None)
        self.curve_path = Path(curve_path) if curve_path else (
            self.checkpoint_dir / "curves.png" if self.checkpoint_dir else None)
        self.distributed = distributed
        self.ddp_find_unused_parameters = ddp_find_unused_parameters
        # run state
        self.history: list[dict[str, Any]] = []
        self.epoch = 0
        self.should_stop = False
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.scaler: Any = None
        self.sampler: EpochSampler | None = None
        self.dist = DistContext()
        self.device = torch.device("cpu")
        self.task: nn.Module | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------ properties
    @property
    def rank(self) -> int:
        return self.dist.rank

    @property
    def world_size(self) -> int:
        return self.dist.world_size

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    @property
    def last_checkpoint(self) -> Path | None:
        return self.checkpoint_dir / "last.pt" if self.checkpoint_dir else None

    @property
    def best_checkpoint(self) -> Path | None:
        return self.checkpoint_dir / "best.pt" if self.checkpoint_dir else None

    # ------------------------------------------------------------------ building blocks
    def _amp_dtype(self) -> torch.dtype | None:
        spec = self.amp_spec
        if spec in (False, None, "off", "no", "fp32"):
            return None
        if self.device.type != "cuda":
            if spec in ("auto",):
                return None
            if spec in ("bf16", "bfloat16"):
                return torch.bfloat16  # CPU autocast supports bf16
            return None
        if spec in ("bf16", "bfloat16"):
            return torch.bfloat16
        if spec in ("fp16", "float16", "half"):
            return torch.float16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = self._amp_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    def _param_groups(self, task: nn.Module) -> list[dict[str, Any]]:
        if hasattr(task, "param_groups"):
            groups = []
            for g in task.param_groups():
                g = dict(g)
                g["params"] = [p for p in g["params"] if p.requires_grad]
                mult = g.pop("lr_mult", 1.0)
                g.setdefault("lr", self.lr * mult)
                if g["params"]:
                    groups.append(g)
            return groups
        return [{"params": [p for p in task.parameters() if p.requires_grad], "lr": self.lr}]

    def build_optimizer(self, task: nn.Module) -> torch.optim.Optimizer:
        """The optimizer from the trainer's settings (also used by ``reset_optimizer``)."""
        groups = self._param_groups(task)
        if not groups:
            raise ValueError("the task has no trainable parameters")
        spec = self.optimizer_spec
        if callable(spec):
            return spec(groups, self.lr)
        name = str(spec).lower()
        if name == "adam":
            return torch.optim.Adam(groups, lr=self.lr, weight_decay=self.weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        if name == "sgd":
            return torch.optim.SGD(groups, lr=self.lr, momentum=self.momentum,
                                   weight_decay=self.weight_decay)
        raise ValueError(f"unknown optimizer {spec!r}; use adam, adamw, sgd or a callable")

    def _build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        spec = self.scheduler_spec
        if spec is None:
            return None
        if callable(spec):
            return spec(optimizer, self)
        if spec == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                              T_max=max(self.max_epochs, 1))
        if isinstance(spec, str) and spec.startswith("step"):
            parts = spec.split(":")
            every = int(parts[1]) if len(parts) > 1 else 10
            gamma = float(parts[2]) if len(parts) > 2 else 0.1
            return torch.optim.lr_scheduler.StepLR(optimizer, step_size=every, gamma=gamma)
        raise ValueError(f"unknown scheduler {spec!r}")

    def reset_optimizer(self) -> None:
        """Rebuild the optimizer (and scheduler) from scratch, e.g. at an epoch start."""
        assert self.task is not None
        self.optimizer = self.build_optimizer(self.task)
        self.scheduler = self._build_scheduler(self.optimizer)

    def _monitor_is_max(self) -> bool:
        if self.monitor_mode in ("min", "max"):
            return self.monitor_mode == "max"
        if self.monitor_mode != "auto":
            raise ValueError("monitor_mode must be 'min', 'max' or 'auto'")
        m = self.monitor.lower()
        return "loss" not in m and any(k in m for k in _MAX_MODES)

    # ------------------------------------------------------------------ checkpoints
    def _checkpoint(self, epoch: int, rng_states: list[dict]) -> dict[str, Any]:
        task = self.task
        assert task is not None
        return {
            "version": CHECKPOINT_VERSION,
            "epoch": epoch,
            "task": task.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "sampler": self.sampler.state_dict() if self.sampler else None,
            "rng": rng_states,
            "world_size": self.world_size,
            "history": copy.deepcopy(self.history),
            "early_stopping": {"best_score": self.best_score, "best_epoch": self.best_epoch,
                               "bad_epochs": self.bad_epochs, "should_stop": self.should_stop},
            "seed": self.seed,
        }

    def _load_checkpoint(self, path: Path) -> int:
        """Restore everything; returns the next epoch to run."""
        ck = load_checkpoint(path)
        if ck.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path}: unsupported checkpoint version {ck.get('version')}")
        task = self.task
        assert task is not None
        task.load_state_dict(ck["task"])
        task.to(self.device)
        if ck["optimizer"] is not None and self.optimizer is not None:
            self.optimizer.load_state_dict(ck["optimizer"])
        if ck["scheduler"] is not None and self.scheduler is not None:
            self.scheduler.load_state_dict(ck["scheduler"])
        if ck["scaler"] is not None and self.scaler is not None:
            self.scaler.load_state_dict(ck["scaler"])
        if ck["sampler"] is not None and self.sampler is not None:
            self.sampler.load_state_dict(ck["sampler"])
        self.history = list(ck["history"])
        es = ck["early_stopping"]
        self.best_score, self.best_epoch = es["best_score"], es["best_epoch"]
        self.bad_epochs, self.should_stop = es["bad_epochs"], es["should_stop"]
        rngs = ck["rng"]
        if len(rngs) == self.world_size:
            _set_rng_state(rngs[self.rank])
        else:  # different world size: fall back to rank 0's state
            _set_rng_state(rngs[0])
        if self.restore_best and self.best_checkpoint is not None and \
                self.best_checkpoint.exists():
            best = load_checkpoint(self.best_checkpoint)
            self._best_state = best["task"]
        return int(ck["epoch"]) + 1

    # ------------------------------------------------------------------ logging
    def _write_history(self) -> None:
        if self.history_path is None or not self.is_main:
            return
        _atomic_write_text(self.history_path,
                           json.dumps({"monitor": self.monitor, "best_epoch": self.best_epoch,
                                       "best_score": self.best_score, "epochs": self.history},
                                      indent=2, default=float) + "\n")

    def plot_curves(self, path: str | os.PathLike | None = None) -> Path | None:
        """Loss / metric curves (one panel per metric family) as a PNG (matplotlib Agg)."""
        path = Path(path) if path else self.curve_path
        if path is None or not self.history or not self.is_main:
            return None
        from mimlkit._extras import require

        matplotlib = require("report", "matplotlib", "Trainer.plot_curves")

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        keys = sorted({k for h in self.history for k, v in h.items()
                       if isinstance(v, (int, float)) and k not in ("epoch", "time_s", "lr")})
        losses = [k for k in keys if "loss" in k]
        others = [k for k in keys if "loss" not in k]
        panels = [p for p in (losses, others) if p]
        fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 3.8), squeeze=False)
        ep = [h["epoch"] for h in self.history]
        for ax, ks in zip(axes[0], panels):
            for k in ks:
                ax.plot(ep, [h.get(k, np.nan) for h in self.history], marker=".", label=k)
            if self.best_epoch is not None:
                ax.axvline(self.best_epoch, color="grey", ls=":", lw=1)
            ax.set_xlabel("epoch")
            ax.legend(fontsize=8)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
        os.close(fd)
        fig.savefig(tmp, dpi=100)
        plt.close(fig)
        os.replace(tmp, path)
        return path

    # ------------------------------------------------------------------ main loop
    def fit(self, task: nn.Module, train_data: Any, val_data: Any = None) -> Trainer:
        """Train ``task`` on ``train_data``; validate on ``val_data`` every epoch."""
        if not hasattr(task, "training_step"):
            raise ValueError("task must define training_step(batch, batch_idx)")
        dev_type = "cuda" if (self.device_spec in ("auto", None) and torch.cuda.is_available()
                              ) or str(self.device_spec).startswith("cuda") else "cpu"
        self.dist = DistContext.from_env(self.distributed, dev_type)
        self.device = resolve_device(self.device_spec, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        prev_det = torch.are_deterministic_algorithms_enabled()
        prev_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.deterministic = True
            torch.backends.cudnn.benchmark = False
        try:
            return self._fit(task, train_data, val_data)
        finally:
            if self.deterministic:
                torch.use_deterministic_algorithms(prev_det, warn_only=True)
                torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = prev_cudnn
            self.dist.shutdown()

    def _fit(self, task: nn.Module, train_data: Any, val_data: Any) -> Trainer:
        seed_everything(self.seed + self.rank)
        self.task = task
        task.to(self.device)
        collate = getattr(task, "collate_fn", None)
        pin = self.device.type == "cuda"
        train = _Data(train_data, collate, self.num_workers, pin, self.seed)
        val = _Data(val_data, collate, self.num_workers, pin, self.seed) \
            if val_data is not None else None
        self.sampler = EpochSampler(train.n, shuffle=self.shuffle, seed=self.seed,
                                    rank=self.rank, world_size=self.world_size,
                                    drop_last=self.drop_last and self.world_size > 1)
        if hasattr(task, "configure_optimizers"):
            out = task.configure_optimizers(self)
            self.optimizer, self.scheduler = (out if isinstance(out, tuple) else (out, None))
        else:
            self.reset_optimizer()
        amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if (
            amp_dtype == torch.float16 and self.device.type == "cuda") else None
        self.history, self.best_score, self.best_epoch = [], None, None
        self.bad_epochs, self.should_stop, self._best_state = 0, False, None
        start = 0
        if self.resume and self.last_checkpoint is not None and self.last_checkpoint.exists():
            start = self._load_checkpoint(self.last_checkpoint)
        ddp = None
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ddp = DistributedDataParallel(
                task, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.ddp_find_unused_parameters)
        if hasattr(task, "on_fit_start"):
            task.on_fit_start(self)
        has_val = val is not None and hasattr(task, "validation_step")
        is_max = self._monitor_is_max()
        for epoch in range(start, self.max_epochs):
            if self.should_stop:
                break
            self.epoch = epoch
            t0 = time.perf_counter()
            self.sampler.set_epoch(epoch)
            if hasattr(task, "on_epoch_start"):
                task.on_epoch_start(epoch, self)
            train_loss = self._train_epoch(task, ddp, train, epoch)
            record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            if has_val:
                record.update(self._validate(task, val))
            if hasattr(task, "on_epoch_end"):
                extra = task.on_epoch_end(epoch, self, record)
                if extra:
                    record.update({k: _to_float(v) for k, v in extra.items()})
            if self.scheduler is not None:
                self.scheduler.step()
            record["lr"] = float(self.optimizer.param_groups[0]["lr"])
            record["time_s"] = round(time.perf_counter() - t0, 4)
            self.history.append(record)
            improved = self._update_early_stopping(record, epoch, is_max)
            rng_states = self.dist.all_gather_object(_rng_state())
            if self.checkpoint_dir is not None and self.is_main:
                ck = self._checkpoint(epoch, rng_states)
                if improved:
                    atomic_torch_save({"epoch": epoch, "task": ck["task"]}, self.best_checkpoint)
                atomic_torch_save(ck, self.last_checkpoint)
            self.dist.barrier()
            self._write_history()
        if self.restore_best and self._best_state is not None and has_val:
            task.load_state_dict(self._best_state)
        if hasattr(task, "on_fit_end"):
            task.on_fit_end(self)
        self._write_history()
        from mimlkit._extras import has_extra

        if self.curve_path is not None and has_extra("report"):  # PNG needs matplotlib
            self.plot_curves()
        return self

    def _update_early_stopping(self, record: dict, epoch: int, is_max: bool) -> bool:
        value = record.get(self.monitor)
        if value is None or not np.isfinite(value):
            return False
        better = self.best_score is None or (value > self.best_score if is_max
                                             else value < self.best_score)
        if better:
            self.best_score, self.best_epoch, self.bad_epochs = float(value), epoch, 0
            if self.restore_best:
                self._best_state = _clone_state(self.task.state_dict())
        else:
            self.bad_epochs += 1
            if self.early_stopping_patience is not None and \
                    self.bad_epochs >= self.early_stopping_patience:
                self.should_stop = True
        return better

    def _train_epoch(self, task: nn.Module, ddp: nn.Module | None, train: _Data,
                     epoch: int) -> float:
        task.train()
        batches = self.sampler.batches(self.batch_size, epoch, drop_last=self.drop_last)
        bar = None
        if self.progress and self.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{self.max_epochs}",
                       leave=False, dynamic_ncols=True)
        total, count = 0.0, 0
        opt = self.optimizer
        for i, batch in enumerate(train.iterate(batches, epoch)):
            batch = move_to_device(batch, self.device, non_blocking=True)
            opt.zero_grad(set_to_none=True)
            with self._autocast():
                out = ddp(batch, i) if ddp is not None else task.training_step(batch, i)
            loss = out["loss"] if isinstance(out, dict) else out
            if not torch.isfinite(loss.detach()).all():
                raise FloatingPointError(f"non-finite training loss at epoch {epoch}, "
                                         f"batch {i}: {float(loss.detach())}")
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                if self.grad_clip:
                    self.scaler.unscale_(opt)
                    nn.utils.clip_grad_norm_(task.parameters(), self.grad_clip)
                self.scaler.step(opt)
                self.scaler.update()
            else:
                loss.backward()
                if self.grad_clip:
                    nn.utils.clip_grad_norm_(task.parameters(), self.grad_clip)
                opt.step()
            lv = float(loss.detach())
            total += lv
            count += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{lv:.4f}")
        if bar is not None:
            bar.close()
        return self.dist.mean(total / max(count, 1))

    @torch.no_grad()
    def _validate(self, task: nn.Module, val: _Data) -> dict[str, float]:
        task.eval()
        sampler = EpochSampler(val.n, shuffle=False)
        outputs = []
        for i, batch in enumerate(val.iterate(sampler.batches(self.batch_size), 0)):
            batch = move_to_device(batch, self.device)
            with self._autocast():
                outputs.append(task.validation_step(batch, i))
        if hasattr(task, "validation_epoch_end"):
            metrics = task.validation_epoch_end(outputs) or {}
        else:
            losses = [o["loss"] if isinstance(o, dict) else o for o in outputs]
            metrics = {"val_loss": float(torch.stack([torch.as_tensor(v, dtype=torch.float32)
                                                      .float().mean() for v in losses]).mean())}
        return {k: _to_float(v) for k, v in metrics.items()}

    @torch.no_grad()
    def predict(self, task: nn.Module, data: Any, batch_size: int | None = None) -> torch.Tensor:
        """Concatenate ``task.predict_step`` over ``data`` (eval mode, no grad, in order)."""
        device = resolve_device(self.device_spec) if self.task is None else self.device
        task.to(device)
        was_training = task.training
        task.eval()
        d = _Data(data, getattr(task, "collate_fn", None), 0, False, self.seed)
        sampler = EpochSampler(d.n, shuffle=False)
        outs = []
        for i, batch in enumerate(d.iterate(sampler.batches(batch_size or self.batch_size), 0)):
            batch = move_to_device(batch, device)
            with self._autocast():
                outs.append(task.predict_step(batch, i).float().cpu())
        task.train(was_training)
        return torch.cat(outs, 0) if outs else torch.empty(0)
