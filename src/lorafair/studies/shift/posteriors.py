"""Batching texts for next-token posteriors, and a per-run cache of reference posteriors.

A record's text is ``text``, or ``prompt`` + ``completion``. Positions scored: every position that
predicts a real token of the text (position t predicts token t+1); for prompt+completion records
only the positions predicting completion tokens. Padding is on the right and masked out.
The tokenizer is never mutated (it may be shared): padding and the forward pass are the LM engine's
(:mod:`lorafair.lm`); the records' encoding and the reference cache are the shift study's.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from typing import Any, Optional

import torch

from lorafair.errors import UserError
from lorafair.lm import LM, PositionBatch, position_batches, rows_logp, rows_of, tokens

__all__ = ["Batch", "ReferenceCache", "encode_record", "fingerprint", "forward_batch", "make_batches",
           "rows_logp", "rows_of"]


Batch = PositionBatch  # input_ids, attention_mask, score_mask (position t predicts a kept token t+1), index


def _ids(tokenizer, text: str) -> list[int]:
    return tokens(tokenizer, text, special=False)


def encode_record(tokenizer, rec: dict, max_length: int) -> tuple[list[int], int]:
    """(token ids, index of the first *scored target* token) for one record, truncated to max_length.
    A BOS token is prepended when the tokenizer has one, so the first real token is scored too."""
    bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None else []
    if "completion" in rec and "prompt" in rec:
        p, c = _ids(tokenizer, str(rec["prompt"])), _ids(tokenizer, str(rec["completion"]))
        ids, first = bos + p + c, len(bos) + len(p)
    elif "text" in rec or "prompt" in rec:
        ids, first = bos + _ids(tokenizer, str(rec.get("text", rec.get("prompt")))), 1
    else:
        raise UserError.plain(f"shift data: record has neither 'text' nor 'prompt' (keys: {sorted(rec)[:6]})")
    ids = ids[:max_length]
    return ids, max(1, first)


def make_batches(tokenizer, records: list[dict], *, max_length: int, batch_size: int) -> list[Batch]:
    """Right-padded batches (:func:`lorafair.lm.position_batches`); records with fewer than one scored
    position are skipped."""
    enc = []
    for i, rec in enumerate(records):
        ids, first = encode_record(tokenizer, rec, max_length)
        if len(ids) > first:
            enc.append((i, ids, first))
    if not enc:
        raise UserError.plain("shift data: no record has a token to score (empty texts or completions?)")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return position_batches(enc, pad, batch_size)


def forward_batch(model, batch: Batch, device, hidden: bool = False):
    """The model's output on a batch (no gradients, no KV cache), with hidden states on request
    (:meth:`lorafair.lm.LM.forward`)."""
    return LM(model, device=device).forward(batch.input_ids, batch.attention_mask, hidden=hidden)[1]


def fingerprint(records: list[dict], max_length: int, batch_size: int) -> str:
    h = hashlib.sha256(json.dumps([records, max_length, batch_size], sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


class ReferenceCache:
    """Log-posteriors of reference models (base, full) per batch, kept across variants of one run
    under a byte budget. Keys include the run dir, seed and data fingerprint, so a different model or
    data never hits. Entries belong to a *group* (one run, seed and data): a new group evicts older
    groups (least recently used first), but within a group nothing is evicted — a ladder reads the
    batches in the same order for every variant, and LRU eviction under a too-small budget would turn
    every read into a miss. What does not fit is not kept (``skipped`` counts it)."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.used = 0
        self._d: "OrderedDict[Any, tuple[Any, torch.Tensor]]" = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.skipped = 0

    def get(self, key) -> Optional[torch.Tensor]:
        item = self._d.get(key)
        if item is None:
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return item[1]

    def put(self, key, value: torch.Tensor, group: Any = None) -> None:
        size = value.element_size() * value.nelement()
        if self.used + size > self.budget:
            for k in [k for k, (g, _) in self._d.items() if g != group]:
                if self.used + size <= self.budget:
                    break
                self._drop(k)
        if self.used + size > self.budget:
            self.skipped += 1
            return
        self._d[key] = (group, value)
        self.used += size

    def _drop(self, key) -> None:
        _, old = self._d.pop(key)
        self.used -= old.element_size() * old.nelement()

    def resize(self, budget_bytes: int) -> None:
        self.budget = budget_bytes
        while self.used > self.budget and self._d:
            self._drop(next(iter(self._d)))
