"""Shared pieces of the ARFF readers: header parsing, value tokenising, Mulan label XML.

Private module: ``arff_miml`` (relational multi-instance ARFF) and ``arff_mulan``
(single-instance Mulan ARFF) build on it; ``_arff_encode`` turns token columns into features.
Every error names the file and the 1-based line.

The ARFF grammar followed here (Weka's ARFF documentation): ``@keywords`` are
case-insensitive; ``%`` starts a comment anywhere outside a quoted value (whole lines in the
header and the data, or the end of a data line); blank lines are ignored; values are separated
by commas with optional spaces/tabs around them; a value may be quoted with ``'`` or ``"``
(backslash escapes ``\\'``, ``\\"``, ``\\\\``, ``\\n``, ``\\t``), which is how values
holding spaces, commas or ``%`` are written; ``?`` (unquoted) is a missing value; a sparse row is
``{index value, ...}``. Files may use any line ending and may start with a UTF-8 BOM.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Attribute",
    "ArffHeader",
    "MISSING_MODES",
    "read_lines",
    "parse_header",
    "read_arff",
    "unquote",
    "tokenize_row",
    "scan_row",
    "parse_sparse_row",
    "strip_comment",
    "read_label_xml",
    "find_label_xml",
    "resolve_label_names",
    "labels_to_int8",
    "label_matrix",
    "dataset_meta",
]

_NUMERIC = ("numeric", "real", "integer")
MISSING_MODES = ("error", "mean", "zero")
# @attribute <name> <type>; the name may be quoted and contain spaces; "x{a,b}" is allowed
_ATTR_RE = re.compile(
    r"""^@attribute\s+('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s{]+)\s*(.+?)\s*$""",
    re.IGNORECASE,
)
# one value of a data row: a quoted value (escapes allowed) or a bare run of characters, then
# the separator: a comma, the start of a trailing comment, or the end of the line
_VALUE_RE = re.compile(
    r"""[ \t]*(?:'([^'\\]*(?:\\.[^'\\]*)*)'|"([^"\\]*(?:\\.[^"\\]*)*)"|([^,'"%]*?))"""
    r"""[ \t]*(,|%|$)"""
)
# one "index value" entry of a sparse row
_SPARSE_RE = re.compile(
    r"""[ \t]*(\d+)[ \t]+(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"|([^,'"%\s}]+))"""
    r"""[ \t]*(,|$)"""
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "%": "%"}


@dataclass
class Attribute:
    """One ARFF attribute: ``kind`` is numeric / nominal / string / date / relational."""

    name: str
    kind: str
    values: list[str] = field(default_factory=list)  # nominal categories, declared order
    children: list[Attribute] = field(default_factory=list)  # relational sub-attributes
    line: int = 0  # 1-based line of the declaration


@dataclass
class ArffHeader:
    relation: str
    attributes: list[Attribute]
    data_line: int  # 0-based index of the first line after ``@data``


def read_lines(path: Path) -> list[str]:
    """The file's lines (any line ending, UTF-8 BOM dropped), with a clear error for a
    missing/unreadable file."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise ValueError(f"{path}: cannot read file ({exc})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()


def _unescape(s: str) -> str:
    if "\\" not in s:
        return s
    plain = s.replace("\\n", "\n")  # the common case: a relational bag's instance breaks
    if "\\" not in plain:
        return plain
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), s)


def unquote(s: str) -> str:
    """``s`` stripped; a quoted value loses its quotes and backslash escapes."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        s = _unescape(s[1:-1])
    return s


def _where(where: str) -> str:
    return f"{where}: " if where else ""


def scan_row(line: str, where: str) -> list[tuple[str, str]]:
    """``(value, quote)`` for each value of a data row (``quote`` is ``'``, ``"`` or ``""``).

    Quoted values are unescaped; bare values are stripped; a ``%`` outside quotes ends the row.
    """
    out: list[tuple[str, str]] = []
    pos, n = 0, len(line)
    match = _VALUE_RE.match
    while True:
        m = match(line, pos)
        if m is None:
            rest = line[pos:].lstrip(" \t")
            q = next((c for c in rest if c in "'\""), "")
            if q and rest.count(q) % 2:
                raise ValueError(f"{_where(where)}unterminated {q} quote (file truncated?)")
            raise ValueError(f"{_where(where)}misplaced quote in value {rest[:40]!r} (quote the "
                             "whole value)")
        sq, dq, bare, sep = m.groups()
        if sq is not None:
            out.append((_unescape(sq), "'"))
        elif dq is not None:
            out.append((_unescape(dq), '"'))
        else:
            out.append((bare, ""))
        pos = m.end()
        if sep != "," or pos > n:
            return out
        if pos == n:  # a trailing comma: one more (empty) value
            out.append(("", ""))
            return out


def tokenize_row(line: str, where: str = "") -> list[str]:
    """The values of one dense data row: quotes removed (escapes resolved), whitespace around
    separators dropped, a trailing ``%`` comment ignored. An unquoted ``?`` stays ``"?"``."""
    return [v for v, _ in scan_row(line, where)]


def strip_comment(line: str) -> str:
    """``line`` without a trailing ``%`` comment (a ``%`` inside quotes is kept)."""
    if "%" not in line:
        return line
    if "'" not in line and '"' not in line:
        return line.split("%", 1)[0].rstrip()
    q = ""
    i = 0
    while i < len(line):
        c = line[i]
        if q:
            if c == "\\":
                i += 1
            elif c == q:
                q = ""
        elif c in "'\"":
            q = c
        elif c == "%":
            return line[:i].rstrip()
        i += 1
    return line


def parse_sparse_row(line: str, where: str = "") -> tuple[list[int], list[str]]:
    """``(indices, values)`` of a sparse row ``{i v, j 'w x', ...}`` (trailing comment allowed)."""
    s = strip_comment(line).strip()
    if not s.endswith("}"):
        raise ValueError(f"{_where(where)}unterminated sparse row (file truncated?)")
    inner = s[1:-1].strip()
    idx: list[int] = []
    vals: list[str] = []
    pos, n = 0, len(inner)
    while pos < n:
        m = _SPARSE_RE.match(inner, pos)
        if m is None:
            item = inner[pos:].split(",", 1)[0].strip()
            raise ValueError(f"{_where(where)}bad sparse entry {item!r} (expected 'index value')")
        k, sq, dq, bare, sep = m.groups()
        idx.append(int(k))
        vals.append(_unescape(sq) if sq is not None else _unescape(dq) if dq is not None
                    else bare)
        pos = m.end()
        if sep != ",":
            break
        if pos == n:
            raise ValueError(f"{_where(where)}bad sparse entry '' (expected 'index value')")
    return idx, vals


def _parse_type(spec: str, path: Path, lineno: int) -> tuple[str, list[str]]:
    s = spec.strip()
    low = s.lower()
    if s.startswith("{"):
        if not s.endswith("}"):
            raise ValueError(f"{path}, line {lineno}: unterminated nominal value list {s!r}")
        vals = scan_row(s[1:-1], f"{path}, line {lineno}")
        return "nominal", [v for v, q in vals if v != "" or q]
    if low in _NUMERIC:
        return "numeric", []
    if low == "string":
        return "string", []
    if low.startswith("date"):
        return "date", []
    if low == "relational":
        return "relational", []
    raise ValueError(f"{path}, line {lineno}: unknown attribute type {s!r}")


def parse_header(lines: list[str], path: Path) -> ArffHeader:
    """Parse ``@relation`` / ``@attribute`` (incl. relational blocks) up to ``@data``."""
    relation = ""
    attrs: list[Attribute] = []
    stack: list[Attribute] = []  # open relational attributes
    for i, raw in enumerate(lines):
        line = raw.strip()
        if not line or line.startswith("%"):
            continue
        if "%" in line:
            line = strip_comment(line)
        low = line.lower()
        if low.startswith("@relation"):
            relation = unquote(line[len("@relation"):])
        elif low.startswith("@attribute"):
            m = _ATTR_RE.match(line)
            if m is None:
                raise ValueError(f"{path}, line {i + 1}: malformed attribute declaration {line!r}")
            kind, values = _parse_type(m.group(2), path, i + 1)
            att = Attribute(unquote(m.group(1)), kind, values, line=i + 1)
            (stack[-1].children if stack else attrs).append(att)
            if kind == "relational":
                stack.append(att)
        elif low.startswith("@end"):
            name = unquote(line[4:])
            if not stack or stack[-1].name != name:
                raise ValueError(f"{path}, line {i + 1}: '@end {name}' without a matching "
                                 "relational attribute")
            stack.pop()
        elif low.startswith("@data"):
            if stack:
                raise ValueError(f"{path}, line {i + 1}: relational attribute "
                                 f"{stack[-1].name!r} is not closed by '@end'")
            if not attrs:
                raise ValueError(f"{path}, line {i + 1}: no @attribute declarations before @data")
            return ArffHeader(relation, attrs, i + 1)
        else:
            raise ValueError(f"{path}, line {i + 1}: unexpected header line {line[:60]!r}")
    raise ValueError(f"{path}: no @data section (file truncated in its header after "
                     f"{len(lines)} lines?)")



def read_arff(path: str | Path) -> tuple[Path, list[str], ArffHeader]:
    """``(Path(path), lines, header)``: the file's lines and its parsed header."""
    path = Path(path)
    lines = read_lines(path)
    return path, lines, parse_header(lines, path)


# ---------------------------------------------------------------------- Mulan XML
def read_label_xml(path: Path) -> list[str]:
    """Label names of a Mulan label XML (``<labels><label name=...>``), document order.

    Hierarchical label files (nested ``<label>``) are flattened in document order.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: label XML not found")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ValueError(f"{path}: malformed label XML ({exc})") from None
    names = []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "label":
            name = el.get("name")
            if name is None:
                raise ValueError(f"{path}: a <label> element has no 'name' attribute")
            names.append(name)
    if not names:
        raise ValueError(f"{path}: no <label name=...> elements")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise ValueError(f"{path}: label {dup!r} is listed twice")
    return names


def find_label_xml(arff_path: Path) -> Path | None:
    """The Mulan XML next to an ARFF, by dataset stem.

    ``emotions.arff`` -> ``emotions.xml``; ``yeast-train.arff`` -> ``yeast.xml`` (trailing
    ``-part`` / ``_part`` segments are stripped one at a time until a file matches).
    """
    arff_path = Path(arff_path)
    stem = arff_path.stem
    while True:
        cand = arff_path.with_name(stem + ".xml")
        if cand.is_file():
            return cand
        cut = max(stem.rfind("-"), stem.rfind("_"))
        if cut <= 0:
            return None
        stem = stem[:cut]


def resolve_label_names(
    attrs: list[Attribute],
    path: Path,
    *,
    labels_xml: str | Path | None,
    labels: int | list[str] | None,
    default_last: int | None = None,
) -> tuple[list[int], str]:
    """Positions (ARFF order) of the label attributes among ``attrs`` and where they came from.

    Priority: explicit ``labels`` (a count of trailing attributes or a list of names), an
    explicit ``labels_xml``, the XML found by stem, then ``default_last`` trailing attributes.
    Names are matched exactly; the ARFF attribute order is the canonical label order.
    """
    names = [a.name for a in attrs]
    pos_of = {n: i for i, n in enumerate(names)}
    source: str
    if isinstance(labels, int) and not isinstance(labels, bool):
        if not 0 < labels < len(attrs) + 1:
            raise ValueError(f"{path}: labels={labels} but the file has {len(attrs)} attributes")
        return list(range(len(attrs) - labels, len(attrs))), f"last {labels} attributes"
    if labels is not None:
        wanted = [str(x) for x in labels]
        source = "labels= argument"
        where = "labels= argument"
    else:
        xml = Path(labels_xml) if labels_xml is not None else find_label_xml(path)
        if xml is None:
            if default_last is not None:
                return (list(range(len(attrs) - default_last, len(attrs))),
                        "attributes after the bag")
            raise ValueError(
                f"{path}: no Mulan label XML found next to it (tried the dataset stem); pass "
                "labels_xml=PATH (CLI --labels-xml) or labels=N / labels=[names]"
            )
        wanted = read_label_xml(xml)
        source = str(xml)
        where = f"label XML {xml}"
    missing = [n for n in wanted if n not in pos_of]
    if missing:
        raise ValueError(
            f"{path}: {len(missing)} of the {len(wanted)} labels of the {where} are not "
            f"attributes of the ARFF (first: {missing[0]!r}); label count or names do not match"
        )
    pos = sorted(pos_of[n] for n in wanted)
    return pos, source


# ---------------------------------------------------------------------- label values
_TRUE = {"1", "+1", "1.0", "true", "yes", "y", "t"}
_FALSE = {"0", "-1", "0.0", "-1.0", "false", "no", "n", "f"}


def labels_to_int8(tokens, att: Attribute, path: Path, linenos) -> np.ndarray:
    """Map one label column of raw tokens to int8 (1 present, 0 absent, -1 for ``?``).

    Accepts the usual binary spellings ({0,1}, {-1,+1}, true/false, yes/no); ``-1`` is read
    as *absent* because ARFF label attributes are binary (unobserved is ``?``).
    """
    arr = np.asarray(tokens, dtype=str)
    if arr.size and (np.char.find(arr, "'") >= 0).any() | (np.char.find(arr, '"') >= 0).any():
        arr = np.char.strip(arr, "'\"")
    uniq, inv = np.unique(arr, return_inverse=True)
    lut = np.empty(uniq.size, dtype=np.int8)
    for j, u in enumerate(uniq):
        lu = u.lower()
        if lu == "?":
            lut[j] = -1
        elif lu in _TRUE:
            lut[j] = 1
        elif lu in _FALSE:
            lut[j] = 0
        else:
            row = int(np.flatnonzero(inv == j)[0])
            raise ValueError(f"{path}, line {linenos[row]}: label {att.name!r} has value "
                             f"{str(u)!r}; expected 0/1 (or ?)")
    return lut[inv.reshape(-1)]


def label_matrix(table: np.ndarray, attrs: list[Attribute], label_pos: list[int], path: Path,
                 linenos: list[int]) -> np.ndarray:
    """The n x q int8 label matrix from the raw token columns ``table[:, p]``, p in
    ``label_pos`` (see ``labels_to_int8``)."""
    return np.stack([labels_to_int8(table[:, p], attrs[p], path, linenos) for p in label_pos],
                    axis=1)


def dataset_meta(path: Path, fmt: str, header: ArffHeader, label_src: str,
                 feature_names: list[str]) -> dict:
    """The ``MIMLDataset.meta`` entries both ARFF readers record."""
    return {
        "source": str(path),
        "format": fmt,
        "relation": header.relation,
        "labels_from": label_src,
        "feature_names": feature_names,
    }
