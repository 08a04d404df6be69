"""``cda``: counterfactual data augmentation as a strategy, on any training corpus: each record that names an
identity term is paired with its group-swapped copy (the swap lists and code of the ``cda`` dataset:
:func:`lorafair.data.wordlists.augment`); records naming no term are kept as they are. The same number of
optimiser steps as plain fine-tuning (the records are more, the steps are not).

Needs: text or prompt/completion records of which at least one names a term of the chosen axes; refuses otherwise.
"""

from __future__ import annotations

from pydantic import Field

from lorafair.data.wordlists import augment, axes_mapping
from lorafair.errors import UserError
from lorafair.strategies.base import Axes, Strategy, StrategyConfig, StrategyContext, axes_field, register_strategy


class CdaConfig(StrategyConfig):
    axes: Axes = axes_field("Identity axes to swap")
    keep_original: bool = Field(default=True, description="Keep each original next to its counterfactual "
                                "(two-sided CDA); false: the counterfactual replaces it.")


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
