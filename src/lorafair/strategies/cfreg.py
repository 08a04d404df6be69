"""``cfreg``: counterfactual invariance for generation, a fairness-regularised objective.

The training loss becomes ``LM loss + λ · D``, where D is a divergence (Jensen–Shannon, or symmetric KL)
between the model's next-token distributions on a training text and on its group-swapped counterfactual (the
swap lists ``cda`` uses, :mod:`lorafair.data.wordlists`), so the update cannot make the continuation depend on
the identity term. The two token sequences differ around the swapped terms; the positions compared are those
predicting the tokens of their common suffix (what follows the last swapped term, EOS included) and the token
after it: position ``len - k + j`` of each sequence for ``j < k``, with ``k`` = common-suffix length + 1. A
record naming no term adds nothing; a batch without pairs adds 0. λ = 0 trains exactly as plain fine-tuning.

Needs: text or prompt/completion records of which at least one names a term of the chosen axes; refuses otherwise.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from lorafair.data.wordlists import axes_mapping, swap_record
from lorafair.errors import UserError
from lorafair.lm import encode_record, learnable, pad
from lorafair.lm.positions import logits_at
from lorafair.strategies.base import Axes, Strategy, StrategyConfig, StrategyContext, axes_field, register_strategy


class CfregConfig(StrategyConfig):
    lam: float = Field(default=1.0, ge=0, description="λ: the weight of the divergence added to the LM loss.")
    divergence: Literal["js", "skl"] = Field(default="js", description="'js': Jensen–Shannon; 'skl': symmetric KL "
                                             "(the mean of KL(p‖q) and KL(q‖p)).")
    axes: Axes = axes_field("Identity axes whose terms are swapped")


def divergence(logp: torch.Tensor, logq: torch.Tensor, kind: str = "js") -> torch.Tensor:
    """Per-row divergence between two distributions given as log-probabilities (last dimension): Jensen–Shannon
    (``js``, in nats, at most ln 2) or symmetric KL (``skl``: (KL(p‖q) + KL(q‖p)) / 2)."""
    logp, logq = logp.double(), logq.double()
    p, q = logp.exp(), logq.exp()
    if kind == "skl":
        return (0.5 * ((p - q) * (logp - logq)).sum(-1)).to(torch.float32)
    # with d = log q − log p: log p − log m = −log1p(expm1(d) / 2), log q − log m = −log1p(expm1(−d) / 2): exactly
    # 0 where p = q (a mixture's logsumexp would leave rounding); |d| capped at 60 where the weight is < e^-60
    d = (logq - logp).clamp(-60.0, 60.0)
    js = 0.5 * (p * -torch.log1p(torch.expm1(d) / 2)).sum(-1) + 0.5 * (q * -torch.log1p(torch.expm1(-d) / 2)).sum(-1)
    return js.to(torch.float32)


def common_suffix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _tail_logp(model, ids: torch.Tensor, mask: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Log-probabilities at the last ``k[i]`` real positions of each row (right padding), flat (sum k, V): row by
    row, positions ascending, so the rows of a text and of its counterfactual line up from the end. Logits are
    computed at those positions only (:func:`lorafair.lm.positions.logits_at`)."""
    lengths = mask.sum(1, keepdim=True)
    j = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
    keep = (j < lengths) & (j >= lengths - k.unsqueeze(1))
    return torch.log_softmax(logits_at(model, ids, mask, keep).float(), dim=-1)


class CounterfactualInvariance:
    """The ``cfreg`` objective (see the module doc): ``penalty`` = λ · mean divergence over the aligned positions
    of the batch's (text, counterfactual) pairs."""

    def __init__(self, lam: float, kind: str, mapping: dict[str, str], field: str = "strategies.cfreg"):
        self.lam, self.kind, self.mapping, self.field = lam, kind, mapping, field

    def encode(self, rows: list[dict], tok, max_length: int) -> list[dict]:
        out, pairs = [], 0
        for r in rows:
            e = encode_record(r, tok, max_length)
            if not learnable(e):  # as encode_records: nothing to learn
                continue
            cf, n = swap_record(r, self.mapping)
            e["cf_input_ids"], e["cf_k"] = [], 0
            if n:
                c = encode_record(cf, tok, max_length)["input_ids"]
                if c != e["input_ids"]:
                    e["cf_input_ids"] = c
                    e["cf_k"] = min(common_suffix(e["input_ids"], c) + 1, len(c), len(e["input_ids"]))
                    pairs += 1
            out.append(e)
        if not pairs:
            raise UserError(f"{self.field}.axes", None, message=f"{self.field}.axes: expected training records of "
                            "which some name an identity term of these axes (none does, so there is no counterfactual "
                            "to be invariant to)")
        return out

    def collate(self, records: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        idx = [i for i, r in enumerate(records) if r.get("cf_k", 0) > 0]
        ids, mask = pad([records[i]["cf_input_ids"] for i in idx], pad_id, "right")
        return {"cf_index": torch.tensor(idx, dtype=torch.long), "cf_input_ids": ids, "cf_attention_mask": mask,
                "cf_k": torch.tensor([records[i]["cf_k"] for i in idx], dtype=torch.long)}

    def term(self, model, batch: dict) -> torch.Tensor:
        """The mean divergence (before λ) over the batch's aligned positions; 0 when it holds no pair."""
        idx = batch["cf_index"]
        if idx.numel() == 0:
            return torch.zeros((), device=batch["input_ids"].device)
        k = batch["cf_k"]
        lp = _tail_logp(model, batch["input_ids"][idx], batch["attention_mask"][idx], k)
        lq = _tail_logp(model, batch["cf_input_ids"], batch["cf_attention_mask"], k)
        return divergence(lp, lq, self.kind).mean()

    def penalty(self, model, batch: dict) -> torch.Tensor:
        return self.lam * self.term(model, batch)


@register_strategy("cfreg", help="counterfactual invariance: λ × divergence of next-token distributions on text vs its swap")
class Cfreg(Strategy):
    Config = CfregConfig
    needs = "text or prompt/completion records, some naming an identity term of the chosen axes"

    def objective(self, ctx: StrategyContext) -> CounterfactualInvariance:
        c = self.config
        return CounterfactualInvariance(c.lam, c.divergence, axes_mapping(c.axes), self.field)
