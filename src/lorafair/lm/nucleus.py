"""Nucleus (top-p) sampling at temperature ``T`` without touching the whole vocabulary more than once.

``generate(do_sample=True, temperature=T, top_p=p)`` costs, per generated token and row, a full sort of
the vocabulary (HF's ``TopPLogitsWarper``), a full softmax and ``torch.multinomial``, which on a CPU
draws one exponential random number per vocabulary entry: with a 49k vocabulary these took half of a
decoding step of SmolLM2-135M (240 rows, 2 CPU cores). Here the nucleus is read from the top-``K``
tokens (``torch.topk``), which hold it whenever they carry at least ``p`` of the probability (rows where
they do not are retried with a larger ``K``, then with the full sort), and the token is drawn by the
inverse CDF over the nucleus with one uniform random number per row.

The distribution is HF's: sorted by probability, a token is in the nucleus while the probability of the
tokens before it is below ``p`` (the most probable token always is), and it is drawn with its probability
renormalised over the nucleus. The same set up to float rounding of the running sum at the boundary and
the order of exactly tied logits; the random draws are not HF's (different texts, same distribution).

:class:`NucleusSampler` is a logits processor that makes the choice itself and leaves only the chosen
token finite, so ``generate`` runs greedy (``do_sample=False``) and its argmax takes it.
"""

from __future__ import annotations

import torch

STEPS = (256, 4096)  # candidate-set sizes tried before the full sort


def nucleus_sample(logits: torch.Tensor, top_p: float, u: torch.Tensor, steps: tuple[int, ...] = STEPS) -> torch.Tensor:
    """One token per row of ``logits`` (rows × vocabulary), drawn from the row's nucleus of mass ``top_p``
    with the uniform numbers ``u`` (one per row, in [0, 1)): the first nucleus token (most probable first)
    whose running probability exceeds ``u`` × the nucleus's mass."""
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
        prob = (val - lse.index_select(0, todo)).exp()
        run = torch.cumsum(prob, dim=-1)
        covered = run[:, -1] >= top_p if k < vocab else torch.ones(todo.numel(), dtype=torch.bool, device=sub.device)
        last = torch.full((todo.numel(),), k - 1, dtype=torch.long, device=sub.device)
        if top_p < 1:
            inside = (run - prob) < top_p  # the first token always: 0 < top_p
            prob = prob * inside
            run = torch.cumsum(prob, dim=-1)
            last = inside.sum(dim=-1) - 1
        target = (u.index_select(0, todo).to(run.dtype) * run[:, -1]).unsqueeze(1)
        pick = torch.minimum(torch.searchsorted(run.contiguous(), target, right=True).squeeze(1), last)
        got = idx.gather(1, pick.unsqueeze(1)).squeeze(1)
        choice[todo[covered]] = got[covered]
        todo = todo[~covered]
    return choice


class NucleusSampler:
    """Temperature, top-p and the draw, as one logits processor (the ``(input_ids, scores) -> scores`` callable a
    ``LogitsProcessorList`` holds; transformers is not imported here): every token but the drawn one gets -inf,
    so ``generate(do_sample=False)`` emits the draw. The uniform numbers come from torch's default generator
    (the caller seeds it), one per row and step."""

    def __init__(self, temperature: float, top_p: float):
        if not temperature > 0 or not 0 < top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]")
        self.temperature, self.top_p = float(temperature), float(top_p)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.temperature != 1.0:
            scores = scores / self.temperature
        u = torch.rand(scores.shape[0], device=scores.device)
        token = nucleus_sample(scores, self.top_p, u)
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, token.unsqueeze(1), 0.0)
