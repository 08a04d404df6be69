"""Padding and batching of token sequences (the only padding code of the LM engine).

:func:`pad` pads right (the default: a row's real tokens keep positions 0 … L-1, and causal attention never
looks at the padding after them) or left (generation, and scoring that reads the last positions), with
the attention mask 0 on padding. :func:`batches` groups sequence indices into batches in a given
order: ``"given"`` (as listed), ``"ascending"`` or ``"descending"`` length (stable, so ties keep their
order; similar lengths per batch means less padding). Results are always returned in the caller's order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

ORDERS = ("given", "ascending", "descending")
SIDES = ("right", "left")


def pad(seqs: Sequence[Sequence[int]], value: int, side: str = "right", width: int | None = None
        ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, mask): the sequences padded with ``value`` to a common width (at least 1), long tensors;
    mask 1 on real tokens."""
    if side not in SIDES:
        raise ValueError(f"padding side must be one of {SIDES}, not {side!r}")
    n = max(1, width if width is not None else max((len(s) for s in seqs), default=0))
    ids = torch.full((len(seqs), n), value, dtype=torch.long)
    mask = torch.zeros((len(seqs), n), dtype=torch.long)
    for i, s in enumerate(seqs):
        L = len(s)
        if not L:
            continue
        sl = slice(0, L) if side == "right" else slice(n - L, n)
        ids[i, sl] = torch.tensor(list(s), dtype=torch.long)
        mask[i, sl] = 1
    return ids, mask


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: cumulative sum of the mask, minus one, floored at 0."""
    return (mask.cumsum(dim=1) - 1).clamp(min=0)


def batches(lengths: Sequence[int], batch_size: int, order: str = "given") -> list[list[int]]:
    """Indices ``0 … len(lengths)-1`` in batches of at most ``batch_size``, in ``order``."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    idx = list(range(len(lengths)))
    if order == "ascending":
        idx = sorted(idx, key=lambda i: lengths[i])
    elif order == "descending":
        idx = sorted(idx, key=lambda i: -lengths[i])
    return [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]


@dataclass
class PositionBatch:
    """A right-padded batch whose next-token distributions are read at the positions ``score_mask``."""

    input_ids: torch.Tensor  # B × T
    attention_mask: torch.Tensor  # B × T
    score_mask: torch.Tensor  # B × T: position t's posterior is scored (it predicts a kept token t+1)
    index: list[int]  # the sequences' indices (the caller's)


def position_batches(seqs: Sequence[tuple[int, Sequence[int], int]], pad_id: int, batch_size: int) -> list[PositionBatch]:
    """Batches (in the given order) of ``(index, ids, first)``: ``first`` is the index of the first scored
    *target* token, so positions ``first-1 … len(ids)-2`` are scored."""
    out = []
    for idx in batches([len(s[1]) for s in seqs], batch_size, "given"):
        chunk = [seqs[i] for i in idx]
        ids, mask = pad([s for _, s, _ in chunk], pad_id, "right")
        score = torch.zeros(ids.shape, dtype=torch.bool)
        for b, (_, s, first) in enumerate(chunk):
            score[b, first - 1 : len(s) - 1] = True  # position t predicts token t+1
        out.append(PositionBatch(ids, mask, score, [i for i, _, _ in chunk]))
    return out
