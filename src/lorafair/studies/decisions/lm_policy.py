"""The language model as a lending policy.

P(approve) is read from the model's probabilities of the two answers after the prompt
(:func:`render.render_prompts`), renormalised over the pair:

    P(approve) = exp(lp_a) / (exp(lp_a) + exp(lp_d)),   lp_x = log P(answer x | prompt)

When both answers are single tokens, lp_x is the next-token log-probability; otherwise it is the sum of
the answer tokens' log-probabilities (teacher forcing). The simulator turns P(approve) into a decision
(threshold at 0.5, or a seeded draw). Prompts are right-padded, so a row's logits do not depend on the
other rows of the batch: batched decisions equal one-by-one decisions up to float rounding. The scoring
is :meth:`lorafair.lm.LM.answer_logprobs` (shared with the classification study), batches in prompt order.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from lorafair.lm import LM
from lorafair.studies.decisions.render import ANSWERS, render_prompts
from lorafair.studies.decisions.simulator import Applicants


class LMPolicy:
    def __init__(self, model, tokenizer, groups: Sequence[str], *, include_group: bool = True,
                 answers: tuple[str, str] = ANSWERS, batch_size: int = 32, device=None):
        self.model, self.tok, self.groups = model, tokenizer, list(groups)
        self.include_group, self.batch_size = include_group, batch_size
        self.lm = LM(model, tokenizer, batch_size=batch_size, device=device)
        self.device = self.lm.device
        self.answers = tuple(answers)
        self.answer_ids = self.lm.answer_token_ids(answers)
        if self.answer_ids[0] == self.answer_ids[1]:
            raise ValueError(f"answers {answers} tokenize identically")
        self.single_token = all(len(a) == 1 for a in self.answer_ids)
        self.answer_mass: list[float] = []  # P(approve) + P(deny) before renormalising (single-token answers)

    @property
    def _keep_ok(self) -> bool:
        """Whether the LM head is applied to the positions read only (``logits_to_keep``)."""
        return self.lm.logits_to_keep_ok

    @_keep_ok.setter
    def _keep_ok(self, value: bool) -> None:
        self.lm.logits_to_keep_ok = bool(value)

    # --- policy interface --------------------------------------------------------------------

    def approve_prob(self, applicants: Applicants, histories) -> np.ndarray:
        prompts = render_prompts(applicants, histories, self.groups, self.include_group)
        lp = self.answer_logprobs(prompts)
        return torch.softmax(torch.from_numpy(lp), dim=1)[:, 0].numpy()

    # --- scoring ------------------------------------------------------------------------------

    def answer_logprobs(self, prompts: Sequence[str]) -> np.ndarray:
        """(len(prompts) × 2) log P(answer | prompt) for (approve, deny), in batches of ``batch_size``."""
        if not len(prompts):
            return np.zeros((0, 2))
        lp = self.lm.answer_logprobs(prompts, self.answers, padding="right", order="given")
        if self.single_token:  # float32, as the log-probabilities were computed
            self.answer_mass.extend(torch.from_numpy(lp).float().exp().sum(dim=1).tolist())
        return lp
