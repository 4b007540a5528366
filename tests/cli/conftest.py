"""Fixtures of the CLI tests: a folder of small generated images + a NIH-style label CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

LABELS = ("Effusion", "Mass")


def make_image_folder(root: Path, n: int = 24, side: int = 48) -> Path:
    """``root/imgs/*.png|jpg`` + ``root/labels.csv`` with ``Image Index``, ``Finding Labels``
    (``|``-joined, ``No Finding`` = empty set) and ``Patient ID`` columns. A red top-left
    quadrant means Effusion, a blue bottom-right one Mass; every third image has neither."""
    from PIL import Image

    rng = np.random.default_rng(0)
    d = root / "imgs"
    d.mkdir(parents=True, exist_ok=True)
    rows = ["Image Index,Finding Labels,Patient ID"]
    h = side // 2
    for i in range(n):
        img = (200 + rng.integers(0, 30, (side, side, 3))).astype(np.uint8)
        labs = []
        if i % 3 == 1 or i % 6 == 5:
            img[:h, :h] = (230, 20, 20)
            labs.append("Effusion")
        if i % 3 == 2:
            img[h:, h:] = (20, 20, 230)
            labs.append("Mass")
        name = f"im{i:02d}." + ("png" if i % 2 else "jpg")
        Image.fromarray(img).save(d / name, quality=95)
        rows.append(f"{name},{'|'.join(sorted(set(labs))) or 'No Finding'},p{i // 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "own")
