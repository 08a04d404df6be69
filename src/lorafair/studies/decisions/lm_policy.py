"""The language model as a lending policy.

P(approve) is read from the model's probabilities of the two answers after the prompt
(:func:`render.render_prompts`), renormalised over the pair:

    P(approve) = exp(lp_a) / (exp(lp_a) + exp(lp_d)),   lp_x = log P(answer x | prompt)

When both answers are single tokens, lp_x is the next-token log-probability; otherwise it is the sum of
the answer tokens' log-probabilities (teacher forcing). The simulator turns P(approve) into a decision
(threshold at 0.5, or a seeded draw). Prompts are right-padded, so a row's logits do not depend on the
other rows of the batch: batched decisions equal one-by-one decisions up to float rounding.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lorafair.studies.decisions.render import ANSWERS, render_prompts
from lorafair.studies.decisions.simulator import Applicants


class LMPolicy:
    def __init__(self, model, tokenizer, groups: Sequence[str], *, include_group: bool = True,
                 answers: tuple[str, str] = ANSWERS, batch_size: int = 32, device=None):
        self.model, self.tok, self.groups = model, tokenizer, list(groups)
        self.include_group, self.batch_size = include_group, batch_size
        self.device = device if device is not None else next(model.parameters()).device
        self.answer_ids = [tokenizer(a, add_special_tokens=False)["input_ids"] for a in answers]
        if any(len(a) == 0 for a in self.answer_ids):
            raise ValueError(f"an answer tokenizes to nothing: {answers}")
        if self.answer_ids[0] == self.answer_ids[1]:
            raise ValueError(f"answers {answers} tokenize identically")
        self.single_token = all(len(a) == 1 for a in self.answer_ids)
        self.answer_mass: list[float] = []  # P(approve) + P(deny) before renormalising (single-token answers)
        self._keep_ok = True

    # --- policy interface --------------------------------------------------------------------

    def approve_prob(self, applicants: Applicants, histories) -> np.ndarray:
        prompts = render_prompts(applicants, histories, self.groups, self.include_group)
        lp = self.answer_logprobs(prompts)
        return torch.softmax(torch.from_numpy(lp), dim=1)[:, 0].numpy()

    # --- scoring ------------------------------------------------------------------------------

    @torch.no_grad()
    def answer_logprobs(self, prompts: Sequence[str]) -> np.ndarray:
        """(len(prompts) × 2) log P(answer | prompt) for (approve, deny), in batches of ``batch_size``."""
        out = []
        for i in range(0, len(prompts), self.batch_size):
            chunk = [self.tok(p, add_special_tokens=True)["input_ids"] for p in prompts[i : i + self.batch_size]]
            if self.single_token:
                logp = self._last_logprobs(chunk)
                ids = torch.tensor([a[0] for a in self.answer_ids])
                sel = logp[:, ids]
                self.answer_mass.extend(sel.exp().sum(dim=1).tolist())
                out.append(sel)
            else:
                out.append(torch.stack([self._sequence_logprob(chunk, a) for a in self.answer_ids], dim=1))
        return torch.cat(out).double().numpy() if out else np.zeros((0, 2))

    def _forward(self, seqs: list[list[int]], keep: torch.Tensor | None = None) -> torch.Tensor:
        """Right-padded forward pass; returns log-softmax logits as float32, (batch × length × vocab), or
        (batch × len(keep) × vocab) for the positions ``keep`` only (the LM head is then applied to those
        positions only, through transformers' ``logits_to_keep``, when the model accepts it)."""
        n = max(len(s) for s in seqs)
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), n), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), n), dtype=torch.long)
        for j, s in enumerate(seqs):
            ids[j, : len(s)] = torch.tensor(s)
            mask[j, : len(s)] = 1
        kwargs = dict(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logits = None
        if keep is not None and self._keep_ok:
            try:
                logits = self.model(**kwargs, logits_to_keep=keep.to(self.device)).logits
            except TypeError:  # a model without logits_to_keep
                pass
            if logits is None or logits.shape[1] != len(keep):  # not supported (or ignored): slice ourselves
                self._keep_ok, logits = False, None
        if logits is None:
            logits = self.model(**kwargs).logits
            if keep is not None:
                logits = logits[:, keep.to(logits.device)]
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    def _last_logprobs(self, seqs: list[list[int]]) -> torch.Tensor:
        last = torch.tensor([len(s) - 1 for s in seqs])
        keep, where = torch.unique(last, return_inverse=True)  # the few distinct last positions
        logp = self._forward(seqs, keep)
        return logp[torch.arange(len(seqs)), where]

    def _sequence_logprob(self, seqs: list[list[int]], answer: list[int]) -> torch.Tensor:
        logp = self._forward([s + answer for s in seqs])
        total = torch.zeros(len(seqs))
        for j, s in enumerate(seqs):
            pos = torch.arange(len(s) - 1, len(s) - 1 + len(answer))
            total[j] = logp[j, pos, torch.tensor(answer)].sum()
        return total
