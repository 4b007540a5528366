"""TransMIL (Shao et al., NeurIPS 2021), multi-label, on feature bags.

Following the paper's description (Sec. 3.3, "TPT" module):

1. instances are projected, ``h_i = ReLU(W x_i)`` (dim ``D``), and a learnable class token
   is prepended (Eq. 8's ``[h_cls; H]``);
2. a transformer layer (pre-norm multi-head self-attention with a residual, no MLP block, as
   in the paper);
3. the **PPEG** positional encoding: the instance tokens are placed on a 2-D grid and
   ``grid + DWConv7(grid) + DWConv5(grid) + DWConv3(grid)`` (depthwise convolutions) is read
   back at each token's cell. The grid is the tiles' real layout when the bags carry tile
   coordinates (``instance_meta["coords"]``); otherwise the paper's square layout of the
   instance order (``pos_encoding="sincos"``: fixed 2-D sinusoidal codes instead;
   ``None``: no positional encoding);
4. a second transformer layer, LayerNorm, and a linear map of the class token to the ``K``
   label logits.

``attention="linear"`` replaces the softmax attention by kernelised linear attention
(feature map ``elu(x) + 1``, Katharopoulos et al. 2020), O(n) in the bag length, for bags
of thousands of instances (the paper used the Nystrom approximation for the same purpose);
``max_instances`` subsamples huge bags during training.

Attributions: ``"attention"`` = the class token's attention to each instance in the last
layer (mean over heads, the same for every label); ``"logit"`` = the classifier applied to
each instance's output token; ``"contribution"`` = attention x logit (without the bias).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mimlkit.deep.mil_base import _COMMON_DOC, BagMILBase, masked_softmax, set_common

__all__ = ["TransMIL", "TransMILNet"]


class _SelfAttention(nn.Module):
    """Multi-head self-attention with a key mask; returns (output, class-token attention)."""

    def __init__(self, dim: int, heads: int, linear: bool) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden ({dim}) must be divisible by n_heads ({heads})")
        self.heads, self.linear = int(heads), bool(linear)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        B, n, D = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(B, n, 3, h, D // h).permute(2, 0, 3, 1, 4)  # (B, h, n, dh)
        # attention in fp32 even under autocast: autocast runs einsum / matmul in fp16, whose
        # sums over thousands of instances overflow (linear attention: NaN at the first step)
        with torch.autocast(device_type=x.device.type, enabled=False):
            q, k, v = q.float(), k.float(), v.float()
            if self.linear:
                fq = F.elu(q) + 1.0
                fk = (F.elu(k) + 1.0) * mask[:, None, :, None]
                kv = torch.einsum("bhnd,bhne->bhde", fk, v)
                z = 1.0 / (torch.einsum("bhnd,bhd->bhn", fq, fk.sum(2)) + 1e-6)
                o = torch.einsum("bhnd,bhde->bhne", fq, kv) * z[..., None]
                cls = torch.einsum("bhd,bhnd->bhn", fq[:, :, 0], fk) * z[:, :, :1]
            else:
                att = (q @ k.transpose(-1, -2)) / math.sqrt(D // h)
                att = masked_softmax(att, mask[:, None, None, :], dim=-1)
                o = att @ v
                cls = att[:, :, 0]
        o = o.to(x.dtype).transpose(1, 2).reshape(B, n, D)
        return self.out(o), cls.mean(1)


class _Layer(nn.Module):
    def __init__(self, dim: int, heads: int, linear: bool, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = _SelfAttention(dim, heads, linear)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor):
        o, cls = self.attn(self.norm(x), mask)
        return x + self.drop(o), cls


class _PPEG(nn.Module):
    """Pyramid position encoding generator on the tiles' grid (depthwise 7/5/3 convs)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim)
                                   for k in (7, 5, 3))

    def forward(self, t: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        B, n, D = t.shape
        bi, ni = mask.nonzero(as_tuple=True)
        r, c = pos[bi, ni, 0], pos[bi, ni, 1]
        H, W = int(r.max()) + 1 if r.numel() else 1, int(c.max()) + 1 if c.numel() else 1
        tok = bi * n + ni  # flat token rows
        cell = (bi * H + r) * W + c  # flat grid cells
        flat = t.reshape(B * n, D)
        grid = t.new_zeros((B * H * W, D)).index_copy(0, cell, flat.index_select(0, tok))
        g = grid.view(B, H, W, D).permute(0, 3, 1, 2)
        # conv7 + conv5 + conv3 (centred, zero padded) == one conv with the summed kernel;
        # offsets beyond the grid's extent only ever see zero padding, so crop the kernel
        w = sum(F.pad(conv.weight, [(7 - conv.kernel_size[0]) // 2] * 4) for conv in self.convs)
        rad = min(3, max(H, W) - 1)
        w = w[:, :, 3 - rad:4 + rad, 3 - rad:4 + rad]
        bias = sum(conv.bias for conv in self.convs)
        g = g + F.conv2d(g, w.to(g.dtype), bias.to(g.dtype), padding=rad, groups=D)
        g = g.permute(0, 2, 3, 1).reshape(B * H * W, D)
        out = t.new_zeros((B * n, D)).index_copy(0, tok, g.index_select(0, cell))
        return out.view(B, n, D)


def _sincos(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed 2-D sinusoidal codes (dim/2 per axis) of integer grid positions (B, n, 2)."""
    q = dim // 4
    freq = torch.exp(-math.log(1000.0) * torch.arange(q, device=pos.device) / max(q, 1))
    parts = []
    for a in range(2):
        ang = pos[..., a:a + 1].float() * freq
        parts += [torch.sin(ang), torch.cos(ang)]
    out = torch.cat(parts, -1)
    return F.pad(out, (0, dim - out.shape[-1]))


class TransMILNet(nn.Module):
    """Projection -> [CLS; tokens] -> layer -> PPEG -> layer -> LayerNorm -> CLS logits
    (``readout="cls+mean"``: the logits read the class token and the mean instance token)."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 128, n_heads: int = 4,
                 dropout: float = 0.1, pos_encoding: str | None = "ppeg",
                 linear: bool = False, readout: str = "cls") -> None:
        super().__init__()
        self.pos_encoding = pos_encoding
        self.readout = readout
        self.fc = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.cls_token = nn.Parameter(torch.randn(1, 1, hidden) * 0.02)
        self.layer1 = _Layer(hidden, n_heads, linear, dropout)
        self.layer2 = _Layer(hidden, n_heads, linear, dropout)
        self.ppeg = _PPEG(hidden) if pos_encoding == "ppeg" else None
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden * (2 if readout == "cls+mean" else 1), int(n_labels))

    def _tokens(self, x: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor):
        h = self.fc(x)
        if self.pos_encoding == "sincos":
            h = h + _sincos(pos, h.shape[-1]).to(h.dtype)
        B = h.shape[0]
        t = torch.cat([self.cls_token.expand(B, -1, -1).to(h.dtype), h], 1)
        m = torch.cat([mask.new_ones((B, 1)), mask], 1)
        t, _ = self.layer1(t, m)
        if self.ppeg is not None:
            t = torch.cat([t[:, :1], self.ppeg(t[:, 1:], mask, pos)], 1)
        t, cls = self.layer2(t, m)
        return self.norm(t), cls[:, 1:]

    def output_biases(self) -> list[torch.Tensor]:
        return [self.head.bias]

    def _bag_vector(self, t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.readout != "cls+mean":
            return t[:, 0]
        m = mask.to(t.dtype)[..., None]
        mean = (t[:, 1:] * m).sum(1) / m.sum(1).clamp_min(1.0)
        return torch.cat([t[:, 0], mean], -1)

    def _instance_weight(self) -> torch.Tensor:
        """Classifier weights applied to one instance token read as the whole bag."""
        W = self.head.weight
        if self.readout == "cls+mean":
            h = W.shape[1] // 2
            return W[:, :h] + W[:, h:]
        return W

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        t, _ = self._tokens(x, mask, pos)
        return self.head(self._bag_vector(t, mask))

    def explain(self, x: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor) -> dict:
        t, a = self._tokens(x, mask, pos)
        s = t[:, 1:] @ self._instance_weight().T
        a = a[..., None].expand_as(s).to(s.dtype)
        return {"logits": self.head(self._bag_vector(t, mask)), "attention": a,
                "logit": s + self.head.bias, "contribution": a * s}


class TransMIL(BagMILBase):
    """Multi-label TransMIL (Shao et al. 2021) on feature bags.

    Parameters
    ----------
    n_heads : attention heads (``hidden`` must be divisible by it).
    pos_encoding : "ppeg" (the paper's conditional encoding on the tile grid), "sincos" or
        None.
    attention : "full" (softmax) or "linear" (O(n) kernelised attention for huge bags).
    readout : "cls" (the paper: the class token alone feeds the classifier) or
        "cls+mean" (class token and mean instance token, concatenated).
    min_steps : at least this many optimizer steps: on few bags ``max_epochs`` is raised to
        ``ceil(min_steps / batches per epoch)`` (``n_epochs_`` holds the epochs trained).
        Default 200, chosen over 100 and none (exactly ``max_epochs``, the earlier default)
        on inner splits of eleven zoo training parts
        (``benchmarks/results/select_transmil_round3.md``: 8 epochs of 73 large bags were
        24 steps, inner AP .549 vs .958). ``None`` = exactly ``max_epochs``.
    validation_fraction : share of the training bags held out (seeded) when ``fit`` gets no
        ``eval_set``: the epoch with the best validation mAP is restored. ``None`` trains on
        every bag for ``max_epochs``. Skipped with unobserved (-1) labels or < 20 bags.
    """

    _uses_positions = True

    def __init__(self, n_heads: int = 4, pos_encoding: str | None = "ppeg",
                 attention: str = "full", loss: str = "bce", loss_params: dict | None = None,
                 hidden: int = 128, dropout: float = 0.1, scale: str | None = "standard",
                 max_instances: int | None = None, instance_dropout: float = 0.0,
                 max_epochs: int = 8, lr: float = 3e-3, batch_size: int = 32,
                 weight_decay: float = 1e-4, optimizer: str = "adamw",
                 grad_clip: float | None = None, label_correction: Any = None,
                 loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto", n_threads: int | None = 1,
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False, validation_fraction: float | None = None,
                 readout: str = "cls", min_steps: int | None = 200) -> None:
        self.n_heads = n_heads
        self.min_steps = min_steps
        self.readout = readout
        self.validation_fraction = validation_fraction
        self.pos_encoding = pos_encoding
        self.attention = attention
        set_common(self, locals())

    def _net(self) -> TransMILNet:
        if self.pos_encoding not in ("ppeg", "sincos", None):
            raise ValueError(f"pos_encoding must be 'ppeg', 'sincos' or None, got "
                             f"{self.pos_encoding!r}")
        if self.attention not in ("full", "linear"):
            raise ValueError(f"attention must be 'full' or 'linear', got {self.attention!r}")
        if self.readout not in ("cls", "cls+mean"):
            raise ValueError(f"readout must be 'cls' or 'cls+mean', got {self.readout!r}")
        return TransMILNet(int(self.n_features_in_), int(self.n_labels_), int(self.hidden),
                           int(self.n_heads), float(self.dropout), self.pos_encoding,
                           self.attention == "linear", self.readout)


TransMIL.__doc__ = (TransMIL.__doc__ or "") + _COMMON_DOC
