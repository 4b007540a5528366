"""DeepMIML (Feng & Zhou, AAAI 2017), port for pre-extracted instance features.

Spec ``classic_miml.md`` §7. The VGG16 instance generator of the paper is replaced by an
instance MLP (d -> hidden, ReLU, dropout), keeping the rest of the network:

* sub-concept layer: one linear map to ``n_labels * n_subconcepts`` scores per instance,
  reshaped to (K labels, L sub-concepts), max over the L sub-concepts (the paper's
  "2D sub-concept layer" + max pooling along the sub-concept axis);
* per-instance label scores: softmax over the K labels (``label_softmax=True``, faithful) or a
  sigmoid per label (``False``, more natural for multi-label instances);
* max over the bag's instances (padding masked) -> K bag probabilities;
* binary cross-entropy on the bag labels.

Trains on padded bags + mask (``Bags.padded``) with Adam (the paper used Adadelta,
``optimizer="adadelta"`` is available). This module imports torch; it is only imported on
use (``mimlkit.deep`` is never imported by ``import mimlkit``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mimlkit.bags import Bags
from mimlkit.datasets.store_view import is_bag_source
from mimlkit.learners._bag_source import stream_scaling
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

__all__ = ["DeepMIML", "DeepMIMLNet"]

_EPS = 1e-7


class DeepMIMLNet(nn.Module):
    """Instance encoder -> sub-concept layer -> max over sub-concepts -> max over instances."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 512,
                 n_subconcepts: int = 20, dropout: float = 0.5,
                 label_softmax: bool = True) -> None:
        super().__init__()
        self.n_labels = int(n_labels)
        self.n_subconcepts = int(n_subconcepts)
        self.label_softmax = bool(label_softmax)
        self.encoder = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                                     nn.Dropout(dropout))
        self.subconcepts = nn.Linear(hidden, self.n_labels * self.n_subconcepts)

    def instance_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(..., d) -> (..., K): max over sub-concepts of the sub-concept scores."""
        s = self.subconcepts(self.encoder(x))
        return s.view(*s.shape[:-1], self.n_labels, self.n_subconcepts).amax(dim=-1)

    def instance_probs(self, x: torch.Tensor) -> torch.Tensor:
        s = self.instance_logits(x)
        return torch.softmax(s, dim=-1) if self.label_softmax else torch.sigmoid(s)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Bag outputs (B, K): probabilities if ``label_softmax`` else logits."""
        s = self.instance_logits(x)  # (B, n, K)
        if self.label_softmax:
            p = torch.softmax(s, dim=-1).masked_fill(~mask[..., None], 0.0)
            return p.amax(dim=1)
        return s.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)


@contextlib.contextmanager
def _cpu_threads(n: int | None, device: torch.device):
    """Temporarily set torch's intra-op CPU threads (restored afterwards)."""
    if n is None or device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(max(1, int(n)))
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DeepMIML(MIMLClassifierMixin, BaseEstimator):
    """Deep MIML network with a sub-concept layer on feature bags (Feng & Zhou 2017).

    Parameters
    ----------
    hidden : int, default 512
        Width of the instance encoder (d -> hidden, ReLU, dropout).
    n_subconcepts : int, default 20
        Sub-concepts per label (L in the paper, K = 20 in its code).
    dropout : float, default 0.5
    label_softmax : bool, default True
        Softmax over labels per instance (faithful); ``False``: one sigmoid per label.
    optimizer : {"adam", "adadelta"}, default "adam"
    lr : float, default 1e-3 (Adadelta: use 1.0)
    weight_decay : float, default 0.0
    batch_size : int, default 32
    epochs : int, default 30
    scale : {"standard", "minmax", None}, default "standard"
        Instance feature scaling fitted on the training instances.
    device : "auto", "cpu", "cuda", ...
    n_threads : int or None, default 1
        torch CPU threads during fit/predict (restored afterwards). The network is small,
        so one thread is fastest: on 2 busy cores an epoch of Scene took 0.3 s with 1 thread
        and 2-3 s with 2. None leaves torch's setting alone.
    t_criterion : bool or "auto", default "auto"
        Give a bag with no label above its threshold its top label. "auto": only when no
        training bag has an empty label set and it adds no error on held-out training
        scores (``learners/_thresholds.py``).
    threshold_mode : {"hamming", "f1", "rate", "fixed"}, default "hamming"
        How the decision thresholds are chosen: per label on held-out training scores
        (``learners/_thresholds.py``), or the learner's own fixed threshold ("fixed", the
        paper's rule and the ``paper`` preset).
    random_state : int, RandomState or None
        Seeds the weight initialisation, dropout and the batch order (deterministic on CPU).
    verbose : bool, default False
        Print the mean training loss per epoch.

    Attributes
    ----------
    module_ : DeepMIMLNet (in eval mode after fit)
    loss_curve_ : list of mean training losses per epoch
    """

    decision_threshold = 0.5
    _torch_modules = ("module_",)
    _store_input = True  # a bag store is read lazily (mimlkit.deep.store_data)

    def __init__(self, hidden: int = 512, n_subconcepts: int = 20, dropout: float = 0.5,
                 label_softmax: bool = True, optimizer: str = "adam", lr: float = 1e-3,
                 weight_decay: float = 0.0, batch_size: int = 32, epochs: int = 30,
                 scale: str | None = "standard", device: str = "auto",
                 n_threads: int | None = 1, t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: Any = None,
                 verbose: bool = False) -> None:
        self.hidden = hidden
        self.n_subconcepts = n_subconcepts
        self.dropout = dropout
        self.label_softmax = label_softmax
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.scale = scale
        self.device = device
        self.n_threads = n_threads
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ torch plumbing
    def _build_torch_module(self, name: str = "module_") -> DeepMIMLNet:
        """Untrained architecture from the params and fitted sizes (persistence protocol)."""
        if name != "module_":
            raise KeyError(f"DeepMIML has no torch module {name!r}")
        return DeepMIMLNet(int(self.n_features_in_), int(self.n_labels_), int(self.hidden),
                           int(self.n_subconcepts), float(self.dropout),
                           bool(self.label_softmax))

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        module = state.get("module_")
        if isinstance(module, nn.Module):  # device-independent, torch-version-robust pickles
            state = dict(state)
            state["module_"] = {k: v.detach().cpu().numpy().copy()
                                for k, v in module.state_dict().items()}
        return state

    def __setstate__(self, state: dict) -> None:
        module = state.get("module_")
        super().__setstate__(state)
        if isinstance(module, dict):
            net = self._build_torch_module("module_")
            net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in module.items()})
            net.eval()
            self.module_ = net

    def _scaled(self, bags: Any) -> Any:
        if is_bag_source(bags):  # scaled batch by batch in _batch
            return bags
        return bags.with_instances(
            apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_, np.float32))

    def _batch(self, bags: Any, idx: np.ndarray, device: torch.device):
        if is_bag_source(bags):  # read just these bags from the store, scale, pad
            from mimlkit.deep.store_data import padded_scaled

            x, m = padded_scaled(bags.take(idx), self.scale_offset_, self.scale_factor_)
        else:
            x, m = bags.take(idx).padded()
        return (torch.from_numpy(x).to(device, non_blocking=True),
                torch.from_numpy(m).to(device, non_blocking=True))

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any) -> DeepMIML:
        """Fit on bags ``X`` and labels ``Y``; ``X`` may be a bag store (``open_store``),
        read one batch of bags at a time (``Y`` None: the store's labels)."""
        bags, Y = self._validate_fit(X, Y)
        if self.optimizer not in ("adam", "adadelta"):
            raise ValueError(f"optimizer must be 'adam' or 'adadelta', got {self.optimizer!r}")
        if int(self.epochs) < 0 or int(self.batch_size) < 1:
            raise ValueError("epochs must be >= 0 and batch_size >= 1")
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(0, 2**31 - 1))
        device = _resolve_device(self.device)
        if is_bag_source(bags):  # statistics streamed block by block
            self.scale_offset_, self.scale_factor_ = stream_scaling(bags, self.scale)
        else:
            self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        bags_s = self._scaled(bags)
        Yt = torch.from_numpy(Y.astype(np.float32)).to(device)
        n = bags.n_bags
        fork_devices = [device.index or 0] if device.type == "cuda" else []
        with _cpu_threads(self.n_threads, device), torch.random.fork_rng(devices=fork_devices):
            torch.manual_seed(seed)
            net = self._build_torch_module("module_").to(device)
            if self.optimizer == "adam":
                opt = torch.optim.Adam(net.parameters(), lr=self.lr,
                                       weight_decay=self.weight_decay)
            else:
                opt = torch.optim.Adadelta(net.parameters(), lr=self.lr,
                                           weight_decay=self.weight_decay)
            losses: list[float] = []
            bs = int(self.batch_size)
            for epoch in range(int(self.epochs)):
                net.train()
                perm = rng.permutation(n)
                total = 0.0
                for start in range(0, n, bs):
                    idx = perm[start:start + bs]
                    x, m = self._batch(bags_s, idx, device)
                    out = net(x, m)
                    t = Yt[idx]
                    if net.label_softmax:
                        p = out.clamp(_EPS, 1 - _EPS)
                        loss = -(t * p.log() + (1 - t) * (1 - p).log()).mean()
                    else:
                        loss = nn.functional.binary_cross_entropy_with_logits(out, t)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    total += float(loss.detach()) * idx.size
                    del x, m, out, loss  # free this batch before the next one is read
                losses.append(total / n)
                if self.verbose:
                    print(f"DeepMIML epoch {epoch + 1}/{self.epochs}: loss {losses[-1]:.4f}")
        net.eval()
        self.module_ = net
        self.loss_curve_ = losses
        return self

    # ------------------------------------------------------------------ predict
    @torch.no_grad()
    def _instance_matrix(self, bags: Bags, scaled: bool = False) -> np.ndarray:
        net = self.module_
        device = next(net.parameters()).device
        net.eval()
        Xs = bags.instances if scaled else apply_scaling(
            bags.instances, self.scale_offset_, self.scale_factor_, np.float32)
        out = []
        with _cpu_threads(self.n_threads, device):
            for start in range(0, Xs.shape[0], 65536):
                x = torch.from_numpy(Xs[start:start + 65536]).to(device)
                out.append(net.instance_probs(x).cpu().numpy())
        return np.concatenate(out, axis=0).astype(np.float64)

    def _store_blocks(self, source: Any):
        """(instance probabilities, local offsets) of consecutive runs of a store's bags."""
        from mimlkit.deep.store_data import iter_scaled_blocks

        for _, _, blk in iter_scaled_blocks(source, self.scale_offset_, self.scale_factor_):
            out = self._instance_matrix(blk, scaled=True), blk.offsets
            del blk  # free this block before the next one is read
            yield out

    def decision_function(self, X: Any) -> np.ndarray:
        """Bag label probabilities (n_bags, n_labels): max over instances (threshold 0.5).
        ``X`` may be a bag store, scored one block of bags at a time."""
        check_is_fitted(self, "module_")
        bags = self._validate_bags(X, reset=False)
        if is_bag_source(bags):
            return np.concatenate([np.maximum.reduceat(P, off[:-1], axis=0)
                                   for P, off in self._store_blocks(bags)])
        return np.maximum.reduceat(self._instance_matrix(bags), bags.offsets[:-1], axis=0)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Same as ``decision_function`` (the outputs are probabilities)."""
        return self.decision_function(X)

    def instance_scores(self, X: Any) -> list[np.ndarray]:
        """Per-bag (n_i, n_labels) instance label probabilities (bag score = column max)."""
        check_is_fitted(self, "module_")
        bags = self._validate_bags(X, reset=False)
        if is_bag_source(bags):
            P = np.concatenate([P for P, _ in self._store_blocks(bags)])
            return np.split(P, bags.offsets[1:-1])
        return np.split(self._instance_matrix(bags), bags.offsets[1:-1])

