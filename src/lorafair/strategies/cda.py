"""``cda``: counterfactual data augmentation as a strategy, on any training corpus: each record that names an
identity term is paired with its group-swapped copy (the swap lists and code of the ``cda`` dataset:
:func:`lorafair.data.wordlists.augment`); records naming no term are kept as they are. The same number of
optimiser steps as plain fine-tuning (the records are more, the steps are not).

Needs: text or prompt/completion records of which at least one names a term of the chosen axes; refuses otherwise.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from lorafair.data.wordlists import AXES, augment, axes_mapping
from lorafair.errors import UserError
from lorafair.strategies.base import Strategy, StrategyConfig, StrategyContext, register_strategy


class CdaConfig(StrategyConfig):
    axes: list[str] = Field(default_factory=lambda: ["gender"], min_length=1,
                            description=f"Identity axes to swap: {', '.join(AXES)}.")
    keep_original: bool = Field(default=True, description="Keep each original next to its counterfactual "
                                "(two-sided CDA); false: the counterfactual replaces it.")

    @field_validator("axes")
    @classmethod
    def _axes(cls, v):
        bad = [a for a in v if a not in AXES]
        if bad:
            raise ValueError(f"unknown axis {bad[0]!r}; expected some of {', '.join(AXES)}")
        return list(dict.fromkeys(v))


@register_strategy("cda", help="counterfactual data augmentation: every record paired with its group-swapped copy")
class Cda(Strategy):
    Config = CdaConfig
    needs = "text or prompt/completion records, some naming an identity term of the chosen axes"

    def select(self, rows: list[dict], ctx: StrategyContext) -> list[dict]:
        out = augment(rows, axes_mapping(self.config.axes), self.config.keep_original, keep_unchanged=True)
        swapped = sum(1 for r in out if r.get("counterfactual"))
        if not swapped:
            raise UserError(f"{self.field}.axes", self.config.axes, f"axes of which some training record names a term "
                            f"(no record does); {self.needs}")
        self.summary = {"counterfactuals": swapped}
        return out
