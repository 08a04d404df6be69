"""The report as a list of blocks, rendered to HTML (:mod:`.render_html`) and Markdown (:mod:`.render_md`).

Every string in a block is plain text (model generations included): the renderers escape
it. Nothing in this module is markup, so no caller can inject any.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import Optional, Union


@dataclass
class Heading:
    level: int  # 1..4
    text: str
    anchor: str = ""


@dataclass
class Para:
    text: str
    kind: str = "p"  # p | note (small, grey) | lead (larger)


@dataclass
class Callout:
    """A highlighted box: the rank recommendation. ``status`` picks its colour."""

    title: str
    lines: list[str]
    status: str = "info"  # reached | not_reached | undefined | info


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    first_col_bold: bool = True
    wrap_last: bool = False  # the last column holds sentences: let them wrap


@dataclass
class Figure:
    name: str  # file name stem in plots/ (unique in the report)
    png: bytes
    caption: str
    alt: str = ""

    def __post_init__(self):
        self.name = file_stem(self.name)


def file_stem(name: str, limit: int = 80) -> str:
    """A figure name as a safe file name stem: letters, digits, ``.``, ``_`` and ``-`` only, not
    starting with ``.``, ``_`` or ``-``, and at most ``limit`` characters (a long one, e.g. from a long metric name
    in metrics.csv, keeps its start and gets a hash of the whole, so distinct names stay distinct)."""
    stem = re.sub(r"[^A-Za-z0-9._-]", "-", str(name)).lstrip("._-") or "figure"
    if stem == name and len(stem) <= limit:
        return stem
    digest = hashlib.sha1(str(name).encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{stem[: limit - 11].rstrip('-.') or 'figure'}-{digest}"


@dataclass
class KeyValues:
    items: list[tuple[str, str]]


@dataclass
class Pre:
    text: str


@dataclass
class Example:
    """One prompt and the generations of several variants side by side."""

    prompt: str
    group: str
    cells: list[tuple[str, str, str]]  # (variant, generation, score text)


@dataclass
class Details:
    summary: str
    blocks: list["Block"] = field(default_factory=list)
    warning: str = ""  # shown inside, before the blocks (content warnings)
    open: bool = False


@dataclass
class FigureRow:
    """Figures shown side by side in HTML (one after another in Markdown)."""

    figures: list[Figure]


Block = Union[Heading, Para, Callout, Table, Figure, KeyValues, Pre, Example, Details, FigureRow]


def fmt(x: Optional[float], digits: int = 3) -> str:
    """A number for a table: 3 decimals in the usual range, 3 significant digits outside it."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    ax = abs(x)
    if ax != 0 and (ax >= 1000 or ax < 0.001):
        return f"{x:.{digits}g}"
    return f"{x:.{digits}f}"


def fmt_est(value: float, lo: float, hi: float) -> str:
    """``value [lo, hi]`` or just the value when there is no interval."""
    if math.isnan(lo) or math.isnan(hi):
        return fmt(value)
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]"


def walk_figures(blocks: list[Block]):
    """Every Figure in the blocks, depth first (for writing plots/)."""
    for b in blocks:
        if isinstance(b, Figure):
            yield b
        elif isinstance(b, FigureRow):
            yield from b.figures
        elif isinstance(b, Details):
            yield from walk_figures(b.blocks)
