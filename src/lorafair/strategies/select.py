"""``select``: targeted data selection — the fine-tuning records chosen by a fairness signal, within the same
record budget, deterministic given the seed.

1. ``max_toxicity``: records the toxicity scorer (``scorer``, default jigsaw-bilstm) rates at or above the
   threshold are dropped (their text: ``text``, or ``prompt`` + ``completion``).
2. ``balance``: the records are balanced across identity groups — of an axis of the word lists ``cda`` uses
   (``gender``, ``race``, ``religion``: a record names one group when its text holds terms of that group only)
   or of a field of the records (``field:group``, e.g. the classification datasets' protected group), or of the
   cells of several fields (``field:group,label``: every (group, label) pair gets the same share, so each group
   has the same label rate — the uniform sampling of Kamiran & Calders (2012), which undoes a label bias
   against one group that balancing the groups alone keeps). Each
   group gets the same number of records; a group with fewer is repeated (seeded draws with replacement, when
   ``oversample``) or left smaller. Records naming no group are kept (``ungrouped: keep``) or dropped.
3. ``budget``: at most this many records (default: as many as the plain training set), a seeded sample when
   more remain.
4. ``prefer: counterfactual_gap``: wherever records are left out (a group's share, the budget), the records
   kept are those whose group-swapped counterfactual (``axes``) the *base* model treats most differently —
   the largest |mean token NLL(text) − mean token NLL(counterfactual)| — instead of a seeded sample (ties,
   and records naming no term, in seeded order): training where the base model is most unfair.

Needs: text records (and, for ``balance``, records naming at least two groups); refuses otherwise.
"""

from __future__ import annotations

import random
from typing import Literal, Optional


from pydantic import Field, field_validator

from lorafair.data.wordlists import AXES, axes_mapping, record_text, swap_record, text_group
from lorafair.errors import UserError
from lorafair.strategies.base import Axes, Strategy, StrategyConfig, StrategyContext, axes_field, register_strategy


class SelectConfig(StrategyConfig):
    budget: Optional[int] = Field(default=None, gt=0, description="At most this many training records (default: the "
                                  "number of plain training records, the same record budget).")
    max_toxicity: Optional[float] = Field(default=None, gt=0, le=1, description="Drop records the scorer rates at or "
                                          "above this toxicity (null: no toxicity filter).")
    scorer: str = Field(default="jigsaw-bilstm", description="The toxicity scorer NAME[:ARG] (see `lorafair scorers`).")
    balance: Optional[str] = Field(default=None, description=f"Balance across groups: an axis ({', '.join(AXES)}) of "
                                   "the cda word lists, field:NAME for a field of the records, or field:NAME,NAME for "
                                   "the cells of several fields, e.g. field:group,label (null: no balancing).")
    ungrouped: Literal["keep", "drop"] = Field(default="keep", description="Records naming no group (or several) when "
                                               "balancing: kept, or dropped.")
    oversample: bool = Field(default=True, description="A group with fewer records than its share is repeated "
                             "(seeded draws with replacement) up to it; false: it stays smaller.")
    prefer: Optional[Literal["counterfactual_gap"]] = Field(
        default=None, description="'counterfactual_gap': keep the records whose counterfactual the base model "
        "treats most differently (null: a seeded sample).")
    axes: Axes = axes_field("Identity axes swapped for prefer: counterfactual_gap")

    @field_validator("balance")
    @classmethod
    def _balance(cls, v):
        if v is None or v in AXES:
            return v
        if v.startswith("field:"):
            names = [n.strip() for n in v.removeprefix("field:").split(",")]
            if all(names) and len(set(names)) == len(names):
                return v
        raise ValueError(f"expected one of {', '.join(AXES)}, field:NAME or field:NAME,NAME (distinct names)")


@register_strategy("select", help="targeted data selection: drop toxic records, balance identity groups (same budget)")
class Select(Strategy):
    Config = SelectConfig
    needs = "text or prompt/completion records; for balance, records naming at least two groups (axis terms or a field)"

    def group_of(self, rec: dict) -> str:
        b = self.config.balance
        if b.startswith("field:"):
            names = [n.strip() for n in b.removeprefix("field:").split(",")]
            values = [rec.get(n) for n in names]
            if any(v is None for v in values):
                return ""
            if len(names) == 1:
                return str(values[0])
            return ", ".join(f"{n}={v}" for n, v in zip(names, values))  # a cell: "group=Female, label=1"
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
        pick = lambda members, k: rng.sample(members, k)  # noqa: E731
        if cfg.prefer == "counterfactual_gap":
            gaps = self.counterfactual_gaps(rows, idx, ctx)
            tie = list(range(len(rows)))
            rng.shuffle(tie)
            priority = {i: (-gaps.get(i, 0.0), tie[i]) for i in idx}
            pick = lambda members, k: sorted(members, key=priority.__getitem__)[:k]  # noqa: E731
            summary["counterfactual_pairs"] = len(gaps)
        if cfg.balance is not None:
            idx = self._balanced(rows, idx, budget, rng, summary, pick)
        elif len(idx) > budget:
            idx = sorted(pick(idx, budget))
        self.summary = summary | {"records": len(idx)}
        return [rows[i] for i in idx]

    def counterfactual_gaps(self, rows: list[dict], idx: list[int], ctx: StrategyContext) -> dict[int, float]:
        """Record index -> |mean token NLL of the record − of its counterfactual| under the base model, for the
        records of ``idx`` naming a term of ``axes`` (computed in one batched pass of :class:`lorafair.lm.LM`)."""
        from lorafair.lm import LM, encode_record

        if ctx.base_model is None:
            raise RuntimeError("prefer: counterfactual_gap needs the base model in the strategy context")
        model, tok = ctx.base_model()
        mapping = axes_mapping(self.config.axes)
        which, enc = [], []
        for i in idx:
            cf, n = swap_record(rows[i], mapping)
            if n:
                which.append(i)
                enc += [encode_record(rows[i], tok, ctx.max_length), encode_record(cf, tok, ctx.max_length)]
        if not which:
            raise UserError(f"{self.field}.axes", self.config.axes, "axes of which some training record names a "
                            "term (prefer: counterfactual_gap compares each record with its group-swapped copy)")
        nll, cnt = LM(model, tok, device=ctx.device).sequence_nll(enc, desc="counterfactual gaps")  # no_grad, eval mode
        mean = [a / max(1, b) for a, b in zip(nll, cnt)]
        return {i: abs(mean[2 * k] - mean[2 * k + 1]) for k, i in enumerate(which)}

    def _balanced(self, rows, idx, budget, rng, summary, pick) -> list[int]:
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
            keep_u = sorted(pick(keep_u, budget // 2))
        share = (budget - len(keep_u)) // len(by)
        chosen = list(keep_u)
        counts = {}
        for g in sorted(by):
            members = by[g]
            if len(members) >= share:
                take = pick(members, share)
            elif cfg.oversample:
                take = members + [rng.choice(members) for _ in range(share - len(members))]
            else:
                take = list(members)
            counts[g] = {"available": len(members), "chosen": len(take)}
            chosen += take
        summary.update({"balance": cfg.balance, "share": share, "groups": counts, "ungrouped_kept": len(keep_u),
                        "ungrouped_available": len(ungrouped)})
        return sorted(chosen)
