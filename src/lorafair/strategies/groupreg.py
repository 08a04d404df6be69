"""``dpreg`` / ``eoreg``: group-fairness penalties for yes/no decisions, fairness-regularised objectives.

For each prompt/completion record of a batch, the model's answer score is ``s = log p(yes) − log p(no)`` of the
first token where the two answers differ, at the position predicting it (after the prompt and the answers'
common first tokens, e.g. a byte-level tokenizer's space), and ``π = σ(s)``, the probability of "yes"
between the two answers. The smooth gap is the mean, over the pairs of groups present in the batch, of
``(π̄_g − π̄_h)²`` (π̄_g: the mean π of group g's records): over every record (``dpreg``, demographic parity) or
over the records whose answer is the positive one (``eoreg``, equal opportunity: the true-positive rates). The
training loss becomes ``LM loss + λ · gap``; a batch with fewer than two groups adds 0.

Needs: prompt/completion records with a group field naming at least two groups (the classification datasets'
``group``), answers ``positive`` / ``negative`` whose first tokens differ; refuses otherwise.
"""

from __future__ import annotations

import itertools

import torch
from pydantic import Field

from lorafair.errors import UserError
from lorafair.lm import IGNORE, encode_record, learnable
from lorafair.lm.encode import tokens
from lorafair.lm.positions import logits_at
from lorafair.strategies.base import Strategy, StrategyConfig, StrategyContext, register_strategy


class GroupRegConfig(StrategyConfig):
    lam: float = Field(default=1.0, ge=0, description="λ: the weight of the group gap added to the LM loss.")
    group_field: str = Field(default="group", min_length=1, description="The record field naming its group.")
    positive: str = Field(default=" yes", min_length=1, description="The positive answer (its first token is scored).")
    negative: str = Field(default=" no", min_length=1, description="The negative answer.")


def group_gap(score: torch.Tensor, group: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over pairs of groups (present among the ``mask``ed rows) of the squared difference of their mean
    ``sigmoid(score)``; 0 with fewer than two groups. ``group``: int ids (-1: no group, never counted)."""
    p = torch.sigmoid(score.float())
    keep = mask & (group >= 0)
    means = [p[keep & (group == g)].mean() for g in torch.unique(group[keep]).tolist()]
    if len(means) < 2:
        return torch.zeros((), device=score.device)
    return torch.stack([(a - b) ** 2 for a, b in itertools.combinations(means, 2)]).mean()


class GroupGap:
    """The ``dpreg`` / ``eoreg`` objective (module doc)."""

    def __init__(self, cfg: GroupRegConfig, tok, equal_opportunity: bool, field: str):
        self.cfg, self.eo, self.field = cfg, equal_opportunity, field
        yes, no = tokens(tok, cfg.positive, special=False), tokens(tok, cfg.negative, special=False)
        c = 0  # the answers' common first tokens (a byte-level tokenizer's space): scored after them
        while c < min(len(yes), len(no)) and yes[c] == no[c]:
            c += 1
        if c == min(len(yes), len(no)):
            raise UserError(f"{field}.negative", cfg.negative, f"an answer whose tokens differ from "
                            f"{cfg.positive!r}'s (neither may be the start of the other)")
        self.shared, self.yes, self.no = yes[:c], [yes[c]], [no[c]]

    def encode(self, rows: list[dict], tok, max_length: int) -> list[dict]:
        gf = self.cfg.group_field
        if any("prompt" not in r or "completion" not in r for r in rows):
            raise UserError(self.field, None, message=f"{self.field}: expected prompt/completion (yes/no) training "
                            "records; this data has text records (a group penalty scores the answer to a prompt)")
        names = sorted({str(r[gf]) for r in rows if r.get(gf) is not None})
        if len(names) < 2:
            raise UserError(f"{self.field}.group_field", gf, f"a field of the training records naming at least two "
                            f"groups (found: {', '.join(names) or 'none'})")
        gid = {n: i for i, n in enumerate(names)}
        out = []
        for r in rows:
            e = encode_record(r, tok, max_length)
            if not learnable(e):  # as encode_records: nothing to learn
                continue
            n_prompt = next((i for i, x in enumerate(e["labels"]) if x != IGNORE), len(e["labels"]))
            c = len(self.shared)
            if e["input_ids"][n_prompt:n_prompt + c] != self.shared or n_prompt + c >= len(e["input_ids"]):
                raise UserError(f"{self.field}.positive", self.cfg.positive, message=f"{self.field}.positive: expected "
                                f"training completions that are the answers {self.cfg.positive!r} / "
                                f"{self.cfg.negative!r}; a record's completion is {str(r['completion'])[:40]!r}")
            e["answer_pos"] = max(0, n_prompt - 1 + c)
            e["group_id"] = gid[str(r[gf])] if r.get(gf) is not None else -1
            e["positive"] = int(str(r["completion"]).strip() == self.cfg.positive.strip())
            out.append(e)
        if self.eo and not any(e["positive"] for e in out):
            raise UserError(f"{self.field}.positive", self.cfg.positive, "the answer of some training record "
                            "(equal opportunity compares the groups on the records whose answer is positive)")
        return out

    def collate(self, records: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
        return {k: torch.tensor([r[k] for r in records], dtype=torch.long) for k in ("answer_pos", "group_id", "positive")}

    def scores(self, model, batch: dict) -> torch.Tensor:
        """``log p(yes) − log p(no)`` at each record's answer position."""
        ids = batch["input_ids"]
        keep = torch.zeros_like(ids, dtype=torch.bool)
        keep[torch.arange(ids.shape[0], device=ids.device), batch["answer_pos"]] = True
        # logits at the answer positions only (one per record, in record order)
        return self._score(logits_at(model, ids, batch["attention_mask"], keep))

    def _score(self, answer_logits: torch.Tensor) -> torch.Tensor:
        lp = torch.log_softmax(answer_logits.float(), dim=-1)
        return lp[:, self.yes[0]] - lp[:, self.no[0]]

    def _gap(self, score: torch.Tensor, batch: dict) -> torch.Tensor:
        mask = batch["positive"] == 1 if self.eo else torch.ones_like(batch["positive"], dtype=torch.bool)
        return group_gap(score, batch["group_id"], mask)

    def term(self, model, batch: dict) -> torch.Tensor:
        return self._gap(self.scores(model, batch), batch)

    def penalty(self, model, batch: dict) -> torch.Tensor:
        return self.cfg.lam * self.term(model, batch)

    def penalty_from_logits(self, logits: torch.Tensor, keep: torch.Tensor, batch: dict) -> torch.Tensor | None:
        """The penalty from the LM loss's own forward pass: ``logits`` are the rows of the (batch, length) boolean
        ``keep`` positions (row-major). Every answer position is supervised (it predicts the completion's first
        differing token), so its row is among them; None if one is not (the caller then runs :meth:`penalty`)."""
        rows = torch.arange(keep.shape[0], device=keep.device)
        pos = batch["answer_pos"].to(keep.device)
        if not bool(keep[rows, pos].all()):
            return None
        row_of = keep.flatten().long().cumsum(0).view_as(keep) - 1  # kept position -> its row in logits
        return self.cfg.lam * self._gap(self._score(logits[row_of[rows, pos]]), batch)


@register_strategy("dpreg", help="demographic-parity penalty: λ × smooth gap of P(yes) across groups in a batch")
class Dpreg(Strategy):
    Config = GroupRegConfig
    needs = "prompt/completion yes/no records with a group field naming at least two groups"
    equal_opportunity = False

    def objective(self, ctx: StrategyContext) -> GroupGap:
        return GroupGap(self.config, ctx.tokenizer, self.equal_opportunity, self.field)


@register_strategy("eoreg", help="equal-opportunity penalty: λ × smooth gap of P(yes) across groups on positive records")
class Eoreg(Dpreg):
    equal_opportunity = True
