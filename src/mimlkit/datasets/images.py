"""Image folder + label CSV -> image ``MIMLDataset`` (lazy ``ImageSet``, ``bags=None``).

Two CSV layouts (header row required):

- **one 0/1 column per label** (MSRC v2 ``labels.csv``: ``image,building,grass,...``). Label
  columns are all columns except the image and group columns, or the ``labels=`` subset.
  Cells may be 1/0, -1 or empty (unobserved -> -1).
- **one column of label names** (``label_column=``) joined by ``separator`` (ChestX-ray14
  ``Finding Labels``: ``Effusion|Infiltration``); the ``no_finding`` token (default
  ``"No Finding"``; ``None``/``""`` disables it) or an empty cell gives an empty label
  set. The label vocabulary is ``labels=`` when given (an unknown name is an error),
  otherwise the sorted names seen.

The image column defaults to ``image`` / ``Image Index`` / ``path`` / ``file`` /
``filename`` if present, otherwise the first column; its values are paths relative to
``image_dir`` (default: a folder ``images`` or ``images_png`` next to the CSV). An optional
``group_column`` (patient id) fills ``groups``. Every image file is checked to exist when
the CSV is read; images are decoded lazily (``ds.images[i]``, EXIF orientation applied), and
an unreadable one raises a ``ValueError`` naming the file. Errors name the CSV file and its
line; a column named twice in the header is refused. The encoding is detected
(``read_csv_text``): UTF-8 with or without BOM, else Windows-1252 with a warning.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mimlkit.datasets.base import ImageSet, MIMLDataset

__all__ = ["load_image_csv", "default_image_dir", "read_csv_text"]

_IMAGE_COLUMNS = ("image", "image index", "path", "file", "filename", "image_path", "img")
_IMAGE_DIRS = ("images", "images_png", "imgs", "img")


def default_image_dir(csv_path: str | Path) -> Path | None:
    """``images`` / ``images_png`` / ... folder next to the CSV, if one exists."""
    parent = Path(csv_path).parent
    for name in _IMAGE_DIRS:
        if (parent / name).is_dir():
            return parent / name
    return None


def read_csv_text(path: str | Path, encoding: str | None = None) -> str:
    """Text of a CSV file. ``encoding=None`` detects it: UTF-8 (with or without a byte-order
    mark), else Windows-1252 / Latin-1 with a ``UserWarning`` naming the file (spreadsheet
    exports on Windows); a file that decodes under none of them (e.g. UTF-16 without BOM)
    raises ``ValueError`` naming the file and the offending byte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if encoding is not None:
        try:
            return data.decode(encoding)
        except (UnicodeDecodeError, LookupError) as exc:
            raise ValueError(f"{path}: cannot decode as {encoding} ({exc})") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise ValueError(f"{path}: not UTF-8 text (NUL bytes: UTF-16 without byte-order mark, "
                         "or a binary file?); save the CSV as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = exc.start
    for enc in ("cp1252", "latin-1"):
        try:
            text = data.decode(enc)
        except UnicodeDecodeError:
            continue
        line = data.count(b"\n", 0, bad) + 1
        warnings.warn(f"{path}: not UTF-8 (byte {data[bad]:#04x} on line {line}); read as "
                      f"{'Windows-1252' if enc == 'cp1252' else 'Latin-1'}", UserWarning,
                      stacklevel=3)
        return text
    raise ValueError(f"{path}: cannot decode")  # pragma: no cover (latin-1 decodes anything)


def _parse_flag(cell: str) -> int | None:
    c = cell.strip().lower()
    if c in ("1", "1.0", "true", "yes"):
        return 1
    if c in ("0", "0.0", "false", "no"):
        return 0
    if c in ("-1", "-1.0", "", "?", "nan"):
        return -1
    return None


def load_image_csv(
    csv_path: str | Path,
    image_dir: str | Path | None = None,
    *,
    labels: Sequence[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    separator: str = "|",
    no_finding: str | None = "No Finding",
    group_column: str | None = None,
    check_files: bool = True,
    encoding: str | None = None,
) -> MIMLDataset:
    """Read a label CSV and its image folder into an image dataset (see module docstring)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ValueError(f"{csv_path}: no such file")
    if image_dir is None:
        image_dir = default_image_dir(csv_path)
        if image_dir is None:
            raise ValueError(f"{csv_path}: no image folder given and none of "
                             f"{', '.join(_IMAGE_DIRS)} exists next to it; pass image_dir=")
    image_dir = Path(image_dir)
    if not image_dir.is_dir():
        raise ValueError(f"{image_dir}: image folder not found")
    text = read_csv_text(csv_path, encoding)
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    if not rows or not any(c.strip() for c in rows[0]):
        raise ValueError(f"{csv_path}: empty CSV (a header row is required)")
    header = [c.strip() for c in rows[0]]
    first: dict[str, int] = {}
    for i, h in enumerate(header):
        if h.lower() in first:
            raise ValueError(f"{csv_path}, line 1: column {h!r} appears twice in the header "
                             f"(columns {first[h.lower()] + 1} and {i + 1}); rename one")
        first[h.lower()] = i
    col = {h: i for i, h in enumerate(header)}
    col_lower = {h.lower(): i for i, h in enumerate(header)}

    def find(name: str | None, what: str) -> int | None:
        if name is None:
            return None
        if name in col:
            return col[name]
        if name.lower() in col_lower:
            return col_lower[name.lower()]
        raise ValueError(f"{csv_path}, line 1: no {what} column {name!r} in header {header}")

    img_c = find(image_column, "image")
    if img_c is None:
        img_c = next((col_lower[n] for n in _IMAGE_COLUMNS if n in col_lower), 0)
    grp_c = find(group_column, "group")
    lab_c = find(label_column, "label")

    body = [(ln, r) for ln, r in enumerate(rows[1:], start=2) if any(c.strip() for c in r)]
    if not body:
        raise ValueError(f"{csv_path}: no data rows after the header")
    for ln, r in body:
        if len(r) != len(header):
            raise ValueError(f"{csv_path}, line {ln}: {len(r)} fields, the header has "
                             f"{len(header)} (file truncated?)")
    names_col = [r[img_c].strip() for _, r in body]
    linenos = [ln for ln, _ in body]

    if lab_c is not None:  # one column of label names
        token = no_finding.strip() if no_finding else None
        sets: list[list[str]] = []
        for _, r in body:
            cell = r[lab_c].strip()
            parts = [p.strip() for p in cell.split(separator)] if cell else []
            parts = [p for p in parts if p and p != token]
            sets.append(parts)
        if labels is not None:
            label_names = [str(x) for x in labels]
            known = set(label_names)
            for (ln, _), parts in zip(body, sets):
                for p in parts:
                    if p not in known:
                        raise ValueError(
                            f"{csv_path}, line {ln}: unknown label name {p!r} in column "
                            f"{header[lab_c]!r} (known: {', '.join(label_names)})"
                        )
        else:
            label_names = sorted({p for parts in sets for p in parts})
            if not label_names:
                raise ValueError(f"{csv_path}: column {header[lab_c]!r} holds no label names")
        pos = {n: k for k, n in enumerate(label_names)}
        Y = np.zeros((len(body), len(label_names)), dtype=np.int8)
        rr = [i for i, parts in enumerate(sets) for _ in parts]
        cc = [pos[p] for parts in sets for p in parts]
        Y[rr, cc] = 1
        label_cols: list[int] = []
    else:  # one 0/1 column per label
        if labels is not None:
            label_cols = []
            for n in labels:
                if n not in col:
                    raise ValueError(f"{csv_path}, line 1: unknown label name {n!r}: not a "
                                     f"column of the header {header}")
                label_cols.append(col[n])
        else:
            label_cols = [i for i in range(len(header)) if i not in (img_c, grp_c)]
        if not label_cols:
            raise ValueError(f"{csv_path}, line 1: no label columns besides the image column")
        label_names = [header[i] for i in label_cols]
        Y = np.zeros((len(body), len(label_cols)), dtype=np.int8)
        for i, (ln, r) in enumerate(body):
            for k, c in enumerate(label_cols):
                v = _parse_flag(r[c])
                if v is None:
                    raise ValueError(f"{csv_path}, line {ln}: label {header[c]!r} has value "
                                     f"{r[c]!r}; expected 1, 0, -1 or empty")
                Y[i, k] = v
    seen: dict[str, int] = {}
    for ln, name in zip(linenos, names_col):
        if not name:
            raise ValueError(f"{csv_path}, line {ln}: empty image name")
        if name in seen:
            raise ValueError(f"{csv_path}, line {ln}: image {name!r} is listed twice "
                             f"(first on line {seen[name]})")
        seen[name] = ln
    paths = [image_dir / n for n in names_col]
    if check_files:
        missing = [i for i, p in enumerate(paths) if not p.is_file()]
        if missing:
            i = missing[0]
            more = f" ({len(missing) - 1} more missing)" if len(missing) > 1 else ""
            raise ValueError(f"{csv_path}, line {linenos[i]}: image {names_col[i]!r} not found "
                             f"at {paths[i]}{more}")
    groups = np.array([r[grp_c].strip() for _, r in body]) if grp_c is not None else None
    meta = {
        "source": str(csv_path),
        "format": "image-csv",
        "image_dir": str(image_dir),
        "label_layout": "names" if lab_c is not None else "columns",
    }
    return MIMLDataset(Y=Y, label_names=label_names, images=ImageSet(paths), groups=groups,
                       name=csv_path.parent.name if csv_path.stem == "labels"
                       else csv_path.stem, meta=meta)
