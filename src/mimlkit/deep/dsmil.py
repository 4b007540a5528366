"""DSMIL, dual-stream MIL (Li, Li & Eliceiri, CVPR 2021), multi-label, on feature bags.

From the paper's description (Sec. 3.1):

* **max stream**: an instance classifier ``c_ik = W_0 h_i`` on the instance embeddings; the
  stream's bag score per label is ``c_mk = max_i c_ik`` (Eq. 3), and the argmax ``m_k`` is
  the label's *critical instance*;
* **bag stream**: queries ``q_i = tanh(W_q h_i)`` and values ``v_i = ReLU(W_v h_i)``; the
  attention of instance ``i`` for label ``k`` is the softmax over the bag of its similarity
  to the critical instance, ``U_ik = softmax_i(<q_i, q_mk> / sqrt(d_q))`` (Eq. 5, with the
  usual scaling); the bag embedding ``b_k = sum_i U_ik v_i`` (Eq. 6) is scored by a
  per-label linear map ``c_bk = w_k^T b_k + beta_k``;
* the bag logit is the mean of the two streams, ``(c_mk + c_bk) / 2`` (Eq. 7). The chosen
  loss is applied once to this mean (so stateful single-positive losses see one score per
  bag; the paper sums two BCE terms).

Attributions: ``"logit"`` = the instance classifier ``c_ik``; ``"attention"`` = ``U_ik``;
``"contribution"`` = ``(1[i = m_k] c_ik + U_ik w_k^T v_i) / 2``, the instance's exact share
of the bag logit (without the bag-stream bias).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mimlkit.deep.mil_base import (
    _COMMON_DOC,
    BagMILBase,
    InstanceEncoder,
    masked_softmax,
    set_common,
)

__all__ = ["DSMIL", "DSMILNet"]


class DSMILNet(nn.Module):
    """Instance encoder -> max stream + critical-instance attention stream, per label."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 128, q_dim: int = 64,
                 dropout: float = 0.1) -> None:
        super().__init__()
        K = int(n_labels)
        self.encoder = InstanceEncoder(n_features, hidden, dropout)
        self.instance_classifier = nn.Linear(hidden, K)
        self.q = nn.Sequential(nn.Linear(hidden, q_dim), nn.Tanh())
        self.v = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())
        self.bag_weight = nn.Parameter(torch.empty(K, hidden))
        self.bag_bias = nn.Parameter(torch.zeros(K))
        nn.init.xavier_uniform_(self.bag_weight)

    def _parts(self, x: torch.Tensor, mask: torch.Tensor):
        h = self.encoder(x)
        c = self.instance_classifier(h)  # (B, n, K)
        cm = c.masked_fill(~mask[..., None], float("-inf"))
        crit = cm.argmax(1)  # (B, K)
        c_max = cm.amax(1)
        q = self.q(h)  # (B, n, Q)
        qc = torch.gather(q, 1, crit[..., None].expand(-1, -1, q.shape[-1]))  # (B, K, Q)
        s = torch.einsum("bnq,bkq->bnk", q, qc) / math.sqrt(q.shape[-1])
        a = masked_softmax(s, mask[..., None], dim=1).to(h.dtype)  # (B, n, K)
        v = self.v(h)
        vs = v @ self.bag_weight.T  # (B, n, K): w_k^T v_i
        c_bag = (a * vs).sum(1) + self.bag_bias
        return c, crit, c_max, a, vs, c_bag

    def output_biases(self) -> list[torch.Tensor]:
        return [self.instance_classifier.bias, self.bag_bias]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> torch.Tensor:
        _, _, c_max, _, _, c_bag = self._parts(x, mask)
        return 0.5 * (c_max + c_bag)

    def explain(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> dict:
        c, crit, c_max, a, vs, c_bag = self._parts(x, mask)
        onehot = torch.zeros_like(c).scatter_(1, crit[:, None, :], 1.0)
        return {"logits": 0.5 * (c_max + c_bag), "attention": a, "logit": c,
                "contribution": 0.5 * (onehot * c + a * vs)}


class DSMIL(BagMILBase):
    """Multi-label dual-stream MIL (Li et al. 2021) on feature bags.

    Parameters
    ----------
    q_dim : width of the query space of the critical-instance attention.
    """

    def __init__(self, q_dim: int = 64, loss: str = "bce", loss_params: dict | None = None,
                 hidden: int = 128, dropout: float = 0.3, scale: str | None = "standard",
                 max_instances: int | None = None, instance_dropout: float = 0.0,
                 max_epochs: int = 30, lr: float = 3e-3, batch_size: int = 32,
                 weight_decay: float = 1e-4, optimizer: str = "adamw",
                 grad_clip: float | None = None, label_correction: Any = None,
                 loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto", n_threads: int | None = 1,
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False) -> None:
        self.q_dim = q_dim
        set_common(self, locals())

    def _net(self) -> DSMILNet:
        return DSMILNet(int(self.n_features_in_), int(self.n_labels_), int(self.hidden),
                        int(self.q_dim), float(self.dropout))


DSMIL.__doc__ = (DSMIL.__doc__ or "") + _COMMON_DOC
