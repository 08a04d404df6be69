"""``select``: targeted data selection — the fine-tuning records chosen by a fairness signal, within the same
record budget, deterministic given the seed.

1. ``max_toxicity``: records the toxicity scorer (``scorer``, default jigsaw-bilstm) rates at or above the
   threshold are dropped (their text: ``text``, or ``prompt`` + ``completion``).
2. ``balance``: the records are balanced across identity groups — of an axis of the word lists ``cda`` uses
   (``gender``, ``race``, ``religion``: a record names one group when its text holds terms of that group only)
   or of a field of the records (``field:group``, e.g. the classification datasets' protected group). Each
   group gets the same number of records; a group with fewer is repeated (seeded draws with replacement, when
   ``oversample``) or left smaller. Records naming no group are kept (``ungrouped: keep``) or dropped.
3. ``budget``: at most this many records (default: as many as the plain training set), a seeded sample when
   more remain.

Needs: text records (and, for ``balance``, records naming at least two groups); refuses otherwise.
"""

from __future__ import annotations

import random
from typing import Literal, Optional

from pydantic import Field, field_validator

from lorafair.data.wordlists import AXES, record_text, text_group
from lorafair.errors import UserError
from lorafair.strategies.base import Strategy, StrategyConfig, StrategyContext, register_strategy


class SelectConfig(StrategyConfig):
    budget: Optional[int] = Field(default=None, gt=0, description="At most this many training records (default: the "
                                  "number of plain training records, the same record budget).")
    max_toxicity: Optional[float] = Field(default=None, gt=0, le=1, description="Drop records the scorer rates at or "
                                          "above this toxicity (null: no toxicity filter).")
    scorer: str = Field(default="jigsaw-bilstm", description="The toxicity scorer NAME[:ARG] (see `lorafair scorers`).")
    balance: Optional[str] = Field(default=None, description=f"Balance across groups: an axis ({', '.join(AXES)}) of "
                                   "the cda word lists, or field:NAME for a field of the records (null: no balancing).")
    ungrouped: Literal["keep", "drop"] = Field(default="keep", description="Records naming no group (or several) when "
                                               "balancing: kept, or dropped.")
    oversample: bool = Field(default=True, description="A group with fewer records than its share is repeated "
                             "(seeded draws with replacement) up to it; false: it stays smaller.")

    @field_validator("balance")
    @classmethod
    def _balance(cls, v):
        if v is None or v in AXES or (v.startswith("field:") and len(v) > len("field:")):
            return v
        raise ValueError(f"expected one of {', '.join(AXES)} or field:NAME")


@register_strategy("select", help="targeted data selection: drop toxic records, balance identity groups (same budget)")
class Select(Strategy):
    Config = SelectConfig
    needs = "text or prompt/completion records; for balance, records naming at least two groups (axis terms or a field)"

    def group_of(self, rec: dict) -> str:
        b = self.config.balance
        if b.startswith("field:"):
            v = rec.get(b.removeprefix("field:"))
            return "" if v is None else str(v)
        return text_group(record_text(rec), b)

    def select(self, rows: list[dict], ctx: StrategyContext) -> list[dict]:
        cfg = self.config
        rng = random.Random(ctx.seed)
        budget = cfg.budget or len(rows)
        idx = list(range(len(rows)))
        summary: dict = {"budget": budget}
        if cfg.max_toxicity is not None:
            from lorafair.scorers.base import SCORERS, build_scorer

            if cfg.scorer.partition(":")[0] not in SCORERS:
                raise UserError(f"{self.field}.scorer", cfg.scorer, f"a scorer NAME[:ARG] with NAME one of "
                                f"{', '.join(SCORERS.names())} (see `lorafair scorers`)")
            scorer = build_scorer(cfg.scorer, device=ctx.device)
            scores = scorer.score([record_text(r) for r in rows])
            tox = [float(s[scorer.main_label]) for s in scores]
            idx = [i for i in idx if tox[i] == tox[i] and tox[i] < cfg.max_toxicity]  # NaN (unscored) is dropped too
            summary["dropped_toxic"] = len(rows) - len(idx)
            if not idx:
                raise UserError(f"{self.field}.max_toxicity", cfg.max_toxicity,
                                "a threshold some training record is below (the scorer rates every record at or above it)")
        if cfg.balance is not None:
            idx = self._balanced(rows, idx, budget, rng, summary)
        elif len(idx) > budget:
            idx = sorted(rng.sample(idx, budget))
        self.summary = summary | {"records": len(idx)}
        return [rows[i] for i in idx]

    def _balanced(self, rows, idx, budget, rng, summary) -> list[int]:
        cfg = self.config
        by: dict[str, list[int]] = {}
        for i in idx:
            by.setdefault(self.group_of(rows[i]), []).append(i)
        ungrouped = by.pop("", [])
        if len(by) < 2:
            found = ", ".join(sorted(by)) or "none"
            raise UserError(f"{self.field}.balance", cfg.balance, f"training records naming at least two groups "
                            f"(found: {found}); {self.needs}")
        keep_u = ungrouped if cfg.ungrouped == "keep" else []
        if len(keep_u) > budget // 2:  # the groups keep at least half of the budget
            keep_u = sorted(rng.sample(keep_u, budget // 2))
        share = (budget - len(keep_u)) // len(by)
        chosen = list(keep_u)
        counts = {}
        for g in sorted(by):
            members = by[g]
            if len(members) >= share:
                take = rng.sample(members, share)
            elif cfg.oversample:
                take = members + [rng.choice(members) for _ in range(share - len(members))]
            else:
                take = list(members)
            counts[g] = {"available": len(members), "chosen": len(take)}
            chosen += take
        summary.update({"balance": cfg.balance, "share": share, "groups": counts, "ungrouped_kept": len(keep_u),
                        "ungrouped_available": len(ungrouped)})
        return sorted(chosen)
