"""The trainer's task of the self-paced MIML learner (:mod:`mimlkit.deep.selfpaced`, which
re-exports :class:`SelfPacedTask`); the loop itself is :class:`mimlkit.deep.trainer.Trainer`.

:class:`SelfPacedTask` wires the building blocks of :mod:`mimlkit.deep.selfpaced_parts` into
the loop: the instance sampler's weights (Eq. 5) at each epoch start; per step, random
horizontal flips of image tiles, the pseudo-label dispatcher (Eq. 8) and the self-paced loss
(Eq. 10); at each epoch end, committing the pseudo-labels, rebuilding the label-combination
groups and coefficients, and resetting the optimizer; validation on image scores = class-wise
max over tiles (Eq. 7) with the paper's metrics.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mimlkit.deep.selfpaced_images import SelfPacedNet
from mimlkit.deep.selfpaced_metrics import _bag_max, paper_metrics
from mimlkit.deep.selfpaced_parts import (
    AlphaStore,
    dispatch_targets,
    ohem_weights,
    sampler_weights,
    self_paced_bce,
)
from mimlkit.deep.trainer import TrainingTask

__all__ = ["SelfPacedTask"]


class SelfPacedTask(TrainingTask):
    """The trainer's task: sampler (epoch start), dispatcher + loss (step), regrouping,
    coefficient update and optimizer reset (epoch end), bag-level validation (max over tiles).
    """

    def __init__(self, net: SelfPacedNet, store: AlphaStore | None, T: np.ndarray, *,
                 sampling: str = "weighted", pseudo_label: str = "bernoulli",
                 reduction: str = "sum", hflip: bool = True, reset_optimizer: bool = True,
                 threshold: float = 0.5, Y_val: np.ndarray | None = None) -> None:
        super().__init__()
        self.net = net
        self.store = store
        self.register_buffer("T", torch.as_tensor((np.asarray(T) > 0).astype(np.float32)))
        self.sampling = sampling
        self.pseudo_label = pseudo_label
        self.reduction = reduction
        self.hflip = hflip
        self.reset_opt = reset_optimizer
        self.threshold = threshold
        self.Y_val = Y_val
        # per-tile loss at its last visit (OHEM sampler only; NaN = not visited yet); a
        # buffer, so it follows the device and the trainer's checkpoints
        self.register_buffer("last_loss", torch.full((self.T.shape[0],), float("nan"))
                             if sampling == "ohem" else None)

    def param_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": list(self.net.parameters())}]
        if self.store is not None:
            groups.append({"params": [self.store.alpha], "row_wise": True,
                           "alpha_optimizer": self._alpha_optimizer,
                           "lr": float(self._alpha_lr)})
        return groups

    _alpha_lr: float = 1e-3
    _alpha_optimizer: str = "adam"

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        n = int(self.T.shape[0])
        if self.sampling == "random":
            trainer.sampler.set_weights(np.ones(n), num_samples=n, replacement=True)
            return
        if self.sampling == "ohem":
            w = ohem_weights(self._merged_last_loss(getattr(trainer, "dist", None)))
            if w is None:
                trainer.sampler.set_weights(None)
            else:
                trainer.sampler.set_weights(w, num_samples=n, replacement=True)
            return
        if self.sampling != "weighted":
            trainer.sampler.set_weights(None)
            return
        alpha = self.store.alpha if self.store is not None else None
        w = sampler_weights(alpha, self.T).cpu().numpy()
        if not np.isfinite(w).all() or w.sum() <= 0:
            warnings.warn("instance sampler: every tile has zero weight (all α <= 0); "
                          "falling back to uniform sampling for this epoch", stacklevel=2)
            trainer.sampler.set_weights(None)
            return
        trainer.sampler.set_weights(w, num_samples=len(w), replacement=True)

    def _merged_last_loss(self, dist: Any) -> np.ndarray:
        """The OHEM loss record, merged over ranks under DDP (every rank must draw from the
        same weights): a tile visited on several ranks keeps its largest recorded loss."""
        v = self.last_loss.detach().cpu()
        if dist is not None and getattr(dist, "enabled", False):
            import torch.distributed as tdist

            m = torch.nan_to_num(v, nan=-1.0).to(self.T.device)
            tdist.all_reduce(m, op=tdist.ReduceOp.MAX)
            v = torch.where(m.cpu() < 0, torch.full_like(v, float("nan")), m.cpu())
        return v.numpy()

    def _record_loss(self, logits: torch.Tensor, targets: torch.Tensor,
                     idx: torch.Tensor) -> None:
        """OHEM: each drawn tile's unweighted BCE against the targets of this step."""
        if self.last_loss is None:
            return
        with torch.no_grad():
            z = targets.float()
            lg = logits.detach().float()
            row = -(z * F.logsigmoid(lg) + (1 - z) * F.logsigmoid(-lg)).sum(dim=1)
            dev = self.last_loss.device
            self.last_loss[idx.to(dev)] = row.to(dev)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, idx = batch
        if self.hflip and x.dim() == 4:  # image tiles only (not feature vectors)
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        logits = self.net(x)
        t = self.T[idx]
        if self.store is None:
            self._record_loss(logits, t, idx)
            return self_paced_bce(logits, t, None, self.reduction)
        a = self.store.alpha[idx]
        targets = dispatch_targets(a, t, self.pseudo_label)
        self.store.record(idx, targets)
        self._record_loss(logits, targets, idx)
        return self_paced_bce(logits, targets, a, self.reduction)

    def on_epoch_end(self, epoch: int, trainer: Any, metrics: dict) -> dict | None:
        if self.store is None:
            return None
        self.store.commit(getattr(trainer, "dist", None))
        if self.store.coefficient == "label_aware":
            self.store.regroup()
        if self.reset_opt:
            trainer.reset_optimizer()
        return self.store.stats()

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, bag = batch
        return {"p": torch.sigmoid(self.net(x).float()), "bag": bag}

    def validation_epoch_end(self, outputs: list[dict]) -> dict[str, float]:
        p = torch.cat([o["p"] for o in outputs]).cpu().numpy()
        bag = torch.cat([o["bag"] for o in outputs]).cpu().numpy()
        S = _bag_max(p, bag, len(self.Y_val))
        return {f"val_{k}": v for k, v in paper_metrics(self.Y_val, S, self.threshold).items()}
