"""A variant to train: its method, rank, learning rate(s) and adapter settings (planned by
:func:`lorafair.run.ladder.plan_variants`; its folder is named by :mod:`lorafair.run.layout`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union



@dataclass(frozen=True)
class Variant:
    name: str  # base, full, lora-r8, dora-r4 …
    method: str  # base | full | a PEFT method of lorafair.methods (lora, dora, rslora, pissa …)
    rank: Optional[int] = None
    lrs: tuple[float, ...] = ()
    alpha: Optional[float] = None
    dropout: float = 0.0
    target_modules: Union[tuple[str, ...], str] = "all-linear"
    strategy: str = ""  # a lorafair.strategies name (lora-r8+cfreg), "" for plain fine-tuning

    @property
    def trains(self) -> bool:
        return self.method != "base"
