"""``TileBagger``: cut an RGB image into a grid of square tiles (one bag of instances).

MONAI-style transform: configured in ``__init__``, applied in ``__call__``::

    tiler = TileBagger(64, stride=32, border="pad", foreground=0.8)
    tiles, coords = tiler(image)   # (N, 64, 64, 3) uint8, (N, 2) int64 (y, x)

Border policies (what happens when the grid does not cover the image exactly):

- ``"drop"``: keep only tiles that lie fully inside the image (the right/bottom remainder
  is dropped). An image smaller than one tile in a dimension is padded up to the tile size
  in that dimension, so every image yields at least one tile (no error).
- ``"pad"``: pad bottom/right (with the image mean colour, or ``fill``) so that the grid
  covers the whole image.
- ``"fit"``: resize the image (bilinear) to the nearest size the grid fits exactly, at
  least one tile; ``coords`` are mapped back to the original image's pixel frame.

Coordinates are the tile's top-left corner ``(y, x)`` in original-image pixels (row-major
order: y, then x). Tiling is vectorised with ``sliding_window_view``, no pixel loops.

Foreground filter: ``foreground=None`` keeps every tile; a float ``t`` in (0, 1] marks as
foreground the pixels whose grey level (0..1) is below ``t`` (bright background, as in
slides/X-ray margins); a callable ``f(image) -> H x W bool`` gives any mask. Tiles with a
foreground fraction below ``min_foreground`` are dropped; padded pixels count as background.
If no tile passes, the tile with the largest fraction is kept, so bags are never empty.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["TileBagger", "as_rgb_uint8"]

_BORDERS = ("drop", "pad", "fit")


def as_rgb_uint8(image: Any, where: str = "image") -> np.ndarray:
    """Validate/coerce an image to H x W x 3 uint8 (grey is replicated, alpha dropped)."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"{where}: expected an H x W x 3 RGB image, got shape {a.shape}")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    if a.dtype != np.uint8:
        if a.dtype.kind in "iu" and a.size and a.min() >= 0 and a.max() <= 255:
            a = a.astype(np.uint8)
        else:
            raise ValueError(f"{where}: expected uint8 pixels (0..255), got dtype {a.dtype}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{where}: empty image of shape {a.shape}")
    return a


class TileBagger:
    """Grid tiler: image -> (tiles N x t x t x 3 uint8, coords N x 2 int64 (y, x)).

    Parameters
    ----------
    tile_size : side of the square tiles in pixels.
    stride : step between tiles (default ``tile_size``: no overlap).
    border : ``"drop"`` | ``"pad"`` | ``"fit"`` (see module docstring).
    foreground : None | grey threshold in (0, 1] | callable image -> H x W bool mask.
    min_foreground : minimum foreground fraction for a tile to be kept.
    fill : padding value: ``"mean"`` (per-channel image mean) or a number 0..255.
    """

    def __init__(
        self,
        tile_size: int,
        stride: int | None = None,
        border: str = "drop",
        foreground: float | Callable[[np.ndarray], np.ndarray] | None = None,
        min_foreground: float = 0.5,
        fill: str | float = "mean",
    ) -> None:
        self.tile_size = tile_size
        self.stride = stride
        self.border = border
        self.foreground = foreground
        self.min_foreground = min_foreground
        self.fill = fill
        self._check()

    def _check(self) -> None:
        t = self.tile_size
        if not isinstance(t, (int, np.integer)) or t < 1:
            raise ValueError(f"tile_size must be a positive integer, got {t!r}")
        s = self.stride
        if s is not None and (not isinstance(s, (int, np.integer)) or s < 1):
            raise ValueError(f"stride must be a positive integer or None, got {s!r}")
        if self.border not in _BORDERS:
            raise ValueError(f"border must be one of {_BORDERS}, got {self.border!r}")
        fg = self.foreground
        if fg is not None and not callable(fg):
            if not isinstance(fg, (int, float)) or not 0 < float(fg) <= 1:
                raise ValueError(f"foreground must be None, a callable or a threshold in (0, 1], "
                                 f"got {fg!r}")
        if not 0 <= float(self.min_foreground) <= 1:
            raise ValueError(f"min_foreground must be in [0, 1], got {self.min_foreground!r}")
        if self.fill != "mean" and not isinstance(self.fill, (int, float)):
            raise ValueError(f"fill must be 'mean' or a number, got {self.fill!r}")

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """JSON-friendly configuration (a callable foreground is stored by its name)."""
        fg = self.foreground
        if callable(fg):
            fg = getattr(fg, "__qualname__", repr(fg))
        return {"tile_size": int(self.tile_size), "stride": self.stride, "border": self.border,
                "foreground": fg, "min_foreground": float(self.min_foreground),
                "fill": self.fill}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"TileBagger({args})"

    @property
    def step(self) -> int:
        return int(self.stride if self.stride is not None else self.tile_size)

    # ------------------------------------------------------------------ geometry
    def _n_steps(self, length: int) -> int:
        """Number of tile positions along one axis for the current border policy."""
        t, s = int(self.tile_size), self.step
        if length <= t:
            return 1
        if self.border == "drop":
            return (length - t) // s + 1
        if self.border == "pad":
            return -(-(length - t) // s) + 1
        return max(1, int(np.floor((length - t) / s + 0.5)) + 1)  # fit: nearest, half up

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """(rows, cols) of the tile grid for an image of this size (before the fg filter)."""
        return self._n_steps(int(height)), self._n_steps(int(width))

    def windows(self, height: int, width: int, coords: np.ndarray) -> np.ndarray:
        """Pixel window of each tile in the original image: N x 4 int64 ``(y0, x0, y1, x1)``
        (end exclusive), clipped to the image (``pad`` / a too-small image: the padded part
        is outside). ``coords`` are tile corners as returned by ``__call__`` for an image of
        this size (any subset, e.g. after the foreground filter). Under ``fit`` the window
        is the tile's span mapped back through the resize (rounded to pixels)."""
        self._check()
        H, W = int(height), int(width)
        t, s = int(self.tile_size), self.step
        c = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        ny, nx = self.grid_shape(H, W)
        need = np.array([(ny - 1) * s + t, (nx - 1) * s + t], dtype=np.float64)
        size = np.array([H, W], dtype=np.float64)
        if self.border == "fit" and (need != size).any():
            scale = size / need
            idx = np.clip(np.round(c / (s * scale)), 0, np.array([ny, nx]) - 1)
            lo = np.round(idx * s * scale)
            hi = np.round((idx * s + t) * scale)
        else:
            lo, hi = c.astype(np.float64), c + float(t)
        lo = np.minimum(lo, size - 1)
        hi = np.clip(hi, lo + 1, size)
        return np.concatenate([lo, hi], axis=1).astype(np.int64)

    # ------------------------------------------------------------------ apply
    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self._check()
        img = as_rgb_uint8(image)
        t, s = int(self.tile_size), self.step
        H, W = img.shape[:2]
        ny, nx = self.grid_shape(H, W)
        need_h, need_w = (ny - 1) * s + t, (nx - 1) * s + t
        scale_y = scale_x = 1.0
        mask = self._mask(img)
        if self.border == "fit" and (need_h, need_w) != (H, W):
            img = _resize(img, need_h, need_w)
            if mask is not None:
                mask = _resize((mask * 255).astype(np.uint8)[:, :, None].repeat(3, 2),
                               need_h, need_w)[:, :, 0] >= 128
            scale_y, scale_x = H / need_h, W / need_w
        elif need_h > H or need_w > W:  # pad (or a too-small image under drop)
            ph, pw = max(0, need_h - H), max(0, need_w - W)
            if self.fill == "mean":
                val = img.reshape(-1, 3).mean(axis=0).round().astype(np.uint8)
            else:
                val = np.full(3, np.clip(round(float(self.fill)), 0, 255), dtype=np.uint8)
            padded = np.empty((H + ph, W + pw, 3), dtype=np.uint8)
            padded[:] = val
            padded[:H, :W] = img
            img = padded
            if mask is not None:
                m = np.zeros((H + ph, W + pw), dtype=bool)
                m[:H, :W] = mask
                mask = m
        win = sliding_window_view(img, (t, t), axis=(0, 1))[: need_h - t + 1 : s,
                                                            : need_w - t + 1 : s]
        # win: (ny, nx, 3, t, t) -> (N, t, t, 3)
        tiles = np.ascontiguousarray(win.transpose(0, 1, 3, 4, 2)).reshape(ny * nx, t, t, 3)
        gy, gx = np.meshgrid(np.arange(ny) * s, np.arange(nx) * s, indexing="ij")
        coords = np.stack([gy.ravel(), gx.ravel()], axis=1).astype(np.float64)
        if scale_y != 1.0 or scale_x != 1.0:
            coords = np.round(coords * np.array([scale_y, scale_x]))
        coords = coords.astype(np.int64)
        if mask is not None:
            frac = (sliding_window_view(mask, (t, t))[: need_h - t + 1 : s, : need_w - t + 1 : s]
                    .mean(axis=(2, 3)).ravel())
            keep = frac >= float(self.min_foreground)
            if not keep.any():
                keep[int(np.argmax(frac))] = True
            tiles, coords = tiles[keep], coords[keep]
        return tiles, coords

    def _mask(self, img: np.ndarray) -> np.ndarray | None:
        fg = self.foreground
        if fg is None:
            return None
        if callable(fg):
            m = np.asarray(fg(img))
            if m.shape != img.shape[:2]:
                raise ValueError(f"foreground callable returned shape {m.shape}, expected the "
                                 f"image's H x W {img.shape[:2]}")
            return m.astype(bool)
        grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return grey < float(fg) * 255.0


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))
