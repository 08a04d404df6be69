"""The run directory's naming: the one place that knows how variant folders are named and parsed and what
columns ``metrics.csv`` has. (The runner, the tables, the report and the studies use these; nothing else
builds or parses a ``<variant>-s<seed>`` name.)"""

from __future__ import annotations

import re
from typing import Optional

COLUMNS = ("variant", "method", "rank", "seed", "study", "metric", "group", "value", "ci_low", "ci_high", "n", "note")

TRAIN_STATUS = "train"  # the study of metrics.csv rows of variants whose training failed

_VARIANT_RE = re.compile(r"^(?P<method>[a-z0-9_]+)-r(?P<rank>\d{1,9})$")  # a rank fits a plot axis
_FOLDER_RE = re.compile(r"^(?P<variant>.+)-s(?P<seed>\d+)$")


def variant_name(method: str, rank: Optional[int] = None) -> str:
    """``lora-r8`` for a ranked method, the method itself (``base``, ``full``) otherwise."""
    return f"{method}-r{rank}" if rank is not None else method


def variant_folder(variant: str, seed: int) -> str:
    """The folder of one variant and seed: ``lora-r8-s0``."""
    return f"{variant}-s{seed}"


def parse_variant(name: str) -> tuple[str, Optional[int]]:
    """Method and rank of a variant name: ``"lora-r8"`` -> ``("lora", 8)``, ``"base"`` -> ``("base", None)``."""
    m = _VARIANT_RE.match(name)
    if m:
        return m.group("method"), int(m.group("rank"))
    return name, None


def parse_folder(name: str) -> Optional[tuple[str, int]]:
    """``(variant, seed)`` of a variant folder name, or None for any other name."""
    m = _FOLDER_RE.match(name)
    return (m.group("variant"), int(m.group("seed"))) if m else None
