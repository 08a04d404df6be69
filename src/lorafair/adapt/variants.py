"""The variant ladder: which variants a config asks for, each with its learning rate(s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from lorafair.config.schema import PEFT_METHODS, RunConfig


@dataclass(frozen=True)
class Variant:
    name: str  # base, full, lora-r8, dora-r4 …
    method: str  # base | full | lora | dora | rslora | pissa
    rank: Optional[int] = None
    lrs: tuple[float, ...] = ()
    alpha: Optional[float] = None
    dropout: float = 0.0
    target_modules: Union[tuple[str, ...], str] = "all-linear"

    @property
    def trains(self) -> bool:
        return self.method != "base"

    def folder(self, seed: int) -> str:
        return f"{self.name}-s{seed}"


def plan_variants(cfg: RunConfig) -> list[Variant]:
    """base, full, then each PEFT method's ranks in ascending order."""
    v = cfg.variants
    grid = v.lr_grid or {}
    out: list[Variant] = []
    if v.base:
        out.append(Variant("base", "base"))
    if v.full.enabled:
        out.append(Variant("full", "full", lrs=tuple(grid.get("full", [v.full.lr]))))
    for method in PEFT_METHODS:
        m = getattr(v, method)
        tm = m.target_modules if isinstance(m.target_modules, str) else tuple(m.target_modules)
        for r in sorted(m.ranks):
            out.append(Variant(f"{method}-r{r}", method, r, tuple(grid.get(method, [m.lr])), m.alpha_for(r), m.dropout, tm))
    return out
