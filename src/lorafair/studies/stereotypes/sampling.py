"""Seeded subsets and the train/eval split of the benchmark items.

- :func:`stratified_sample` keeps ``limit`` items spread evenly over groups (round-robin over
  groups in a seeded order, each group shuffled with the same seed), so a small subset still has
  every bias type / category.
- :func:`split_items` is the deterministic split by item id shared with the ``antistereotype``
  dataset builder (:func:`lorafair.data.options.split_keys`: each item goes to "eval" or
  "train" by a SHA-256 hash of ``"<benchmark>:<id>"``, about ``eval_fraction`` of them to "eval").
  It does not depend on the seed nor on which other items are present, so anti-stereotypical training sentences taken from the "train" split never overlap the
  items evaluated with the default ``split: eval``.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Hashable, Sequence, TypeVar

from lorafair.data.options import split_keys

T = TypeVar("T")

SPLIT_EVAL_FRACTION = 0.5


def stratified_sample(items: Sequence[T], key: Callable[[T], Hashable], limit: int | None, seed: int) -> list[T]:
    """Seeded subset of at most ``limit`` items, balanced over ``key`` (all items if limit is None)."""
    rng = random.Random(seed)
    groups: dict[Hashable, list[T]] = defaultdict(list)
    for it in items:
        groups[key(it)].append(it)
    names = sorted(groups, key=str)
    for g in names:
        rng.shuffle(groups[g])
    if limit is None or limit >= len(items):
        out = [it for g in names for it in groups[g]]
        rng.shuffle(out)
        return out
    rng.shuffle(names)
    out: list[T] = []
    pos = 0
    while len(out) < limit:
        progressed = False
        for g in names:
            if pos < len(groups[g]) and len(out) < limit:
                out.append(groups[g][pos])
                progressed = True
        if not progressed:
            break
        pos += 1
    return out


def split_items(items: Sequence[dict], benchmark: str, split: str, eval_fraction: float = SPLIT_EVAL_FRACTION) -> list[dict]:
    """Items of ``split`` ("train", "eval" or "all"), split on ``f"{benchmark}:{item['id']}"``."""
    if split == "all":
        return list(items)
    if split not in ("train", "eval"):
        raise ValueError(f"split must be train, eval or all, not {split!r}")
    assign = split_keys((f"{benchmark}:{it['id']}" for it in items), eval_fraction)
    return [it for it in items if assign[f"{benchmark}:{it['id']}"] == split]
