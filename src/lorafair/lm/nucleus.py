"""Nucleus (top-p) sampling at temperature ``T`` without touching the whole vocabulary more than once, drawn
so that two nearly equal distributions draw the same token.

``generate(do_sample=True, temperature=T, top_p=p)`` costs, per generated token and row, a full sort of
the vocabulary (HF's ``TopPLogitsWarper``), a full softmax and ``torch.multinomial``, which on a CPU
draws one exponential random number per vocabulary entry: with a 49k vocabulary these took half of a
decoding step of SmolLM2-135M (240 rows, 2 CPU cores). Here the nucleus is read from the top-``K``
tokens (``torch.topk``), which hold it whenever they carry at least ``p`` of the probability (rows where
they do not are retried with a larger ``K``, then with the full sort).

The draw is an exponential race (the Gumbel-max trick): every nucleus token ``i`` gets an exponential
number ``E_i``, a hash of the row's two random 32-bit keys and the token's id (:func:`exponentials`), and the
token with the smallest ``E_i / p_i`` wins, which it does with probability ``p_i`` renormalised over the nucleus.
The numbers belong to token ids, not to places in a sorted list, so two models (or precisions) that share
the keys (common random numbers: the engine seeds them per batch) pick the same token unless their
distributions really differ there: the chance of a different pick is at most about twice their total
variation distance. This module's earlier draw, the inverse CDF over the sorted nucleus, lost that: near-tied
tail tokens trade places at the slightest change: 0–2% of one SmolLM2 variant's fp32 and bf16 samples were
identical with it, 64–75% are with the race (docs/toxicity.md). With ``top_p`` 1 the race covers the whole
vocabulary (a hash per token and row at each step).

The distribution is HF's: sorted by probability, a token is in the nucleus while the probability of the
tokens before it is below ``p`` (the most probable token always is), and it is drawn with its probability
renormalised over the nucleus. The same set up to float rounding of the running sum at the boundary and
the order of exactly tied logits; the random draws are not HF's (different texts, same distribution).

:class:`NucleusSampler` is a logits processor that makes the choice itself and leaves only the chosen
token finite, so ``generate`` runs greedy (``do_sample=False``) and its argmax takes it.
"""

from __future__ import annotations

from typing import Callable

import torch

STEPS = (256, 4096)  # candidate-set sizes tried before the full sort
M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``x * c mod 2**32`` for int64 ``x`` in [0, 2**32), with no intermediate above 2**49 (no int64 overflow)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & M32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (Wellons' ``lowbias32``) of int64 ``x`` in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def exponentials(keys: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Exponential(1) numbers (float64, rows × n) for the token ids ``ids`` (int64, rows × n) of each row, from the
    row's keys (int64, rows × 2, each in [0, 2**32)): ``-log U`` with ``U = (h + 1/2) / 2**32`` and ``h`` two
    rounds of :func:`mix32` over the key and the id. With uniform keys every ``U`` is exactly uniform on its
    grid (the rounds are bijections), the same id and keys always give the same number, and different ids
    give numbers as independent as a counter-based generator's."""
    h = mix32((ids & M32) ^ keys[:, :1])
    h = mix32((h + keys[:, 1:]) & M32)
    wide = torch.float32 if h.device.type == "mps" else torch.float64  # MPS has no float64
    return -torch.log((h.to(wide) + 0.5) / 2.0**32)


def nucleus_sample(logits: torch.Tensor, top_p: float, keys: torch.Tensor, steps: tuple[int, ...] = STEPS,
                   noise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = exponentials) -> torch.Tensor:
    """One token per row of ``logits`` (rows × vocabulary), drawn from the row's nucleus of mass ``top_p``
    with the keys ``keys`` (int64, rows × 2, in [0, 2**32)): the nucleus token with the smallest
    ``E / p``, ``E = noise(keys, ids)`` (:func:`exponentials`)."""
    logits = logits.float()
    rows, vocab = logits.shape
    lse = torch.logsumexp(logits, dim=-1, keepdim=True)
    choice = torch.empty(rows, dtype=torch.long, device=logits.device)
    todo = torch.arange(rows, device=logits.device)
    for k in [*(s for s in steps if s < vocab), vocab] if top_p < 1 else [vocab]:
        if todo.numel() == 0:
            break
        sub = logits.index_select(0, todo) if todo.numel() < rows else logits
        if k < vocab:
            val, idx = torch.topk(sub, k, dim=-1)
        elif top_p < 1:
            val, idx = torch.sort(sub, dim=-1, descending=True)
        else:  # the whole vocabulary: no order needed
            val, idx = sub, torch.arange(vocab, device=sub.device).expand(sub.shape[0], vocab)
        logp = val - lse.index_select(0, todo)
        if top_p < 1:
            prob = logp.exp()
            run = torch.cumsum(prob, dim=-1)
            covered = run[:, -1] >= top_p if k < vocab else torch.ones(todo.numel(), dtype=torch.bool, device=sub.device)
            inside = (run - prob) < top_p  # the first token always: 0 < top_p
        else:
            covered = torch.ones(todo.numel(), dtype=torch.bool, device=sub.device)
            inside = torch.ones_like(logp, dtype=torch.bool)
        # argmin E / p = argmax log p - log E, over the nucleus
        e = noise(keys.index_select(0, todo), idx)
        race = (logp.to(e.dtype) - e.log()).masked_fill(~inside, float("-inf"))
        got = idx.gather(1, race.argmax(dim=-1, keepdim=True)).squeeze(1)
        choice[todo[covered]] = got[covered]
        todo = todo[~covered]
    return choice


class NucleusSampler:
    """Temperature, top-p and the draw, as one logits processor (the ``(input_ids, scores) -> scores`` callable a
    ``LogitsProcessorList`` holds; transformers is not imported here): every token but the drawn one gets -inf,
    so ``generate(do_sample=False)`` emits the draw. The keys come from torch's default generator (the caller
    seeds it), two 32-bit numbers per row and step. ``copies``: the rows are that many blocks of the same sequences
    (a mixed-adapter batch, one block per variant), which share their keys: each block draws as it would alone."""

    def __init__(self, temperature: float, top_p: float, copies: int = 1):
        if not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")
        if copies < 1:
            raise ValueError("copies must be >= 1")
        self.temperature, self.top_p, self.copies = float(temperature), float(top_p), int(copies)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.temperature != 1.0:
            scores = scores / self.temperature
        rows = scores.shape[0]
        if rows % self.copies:
            raise ValueError(f"{rows} rows are not {self.copies} blocks of equal size")
        keys = torch.randint(0, 2**32, (rows // self.copies, 2), dtype=torch.long, device=scores.device)
        if self.copies > 1:
            keys = keys.repeat(self.copies, 1)
        token = nucleus_sample(scores, self.top_p, keys)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token.unsqueeze(1), 0.0)
