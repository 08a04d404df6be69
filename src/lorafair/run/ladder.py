"""The variant ladder: which variants a config asks for, each with its learning rate(s)."""

from __future__ import annotations

from dataclasses import replace

from lorafair.adapt.variants import Variant
from lorafair.config.schema import RunConfig
from lorafair.methods import peft_methods
from lorafair.run.layout import variant_name


def plan_variants(cfg: RunConfig) -> list[Variant]:
    """base, full, then each PEFT method's ranks in ascending order (methods in registration order); then, for
    each strategy of ``cfg.strategies`` (recipe order), every trained variant again with that strategy
    (``full+select``, ``lora-r8+select`` …: the same method, rank and learning rates)."""
    v = cfg.variants
    grid = v.lr_grid or {}
    out: list[Variant] = []
    if v.base:
        out.append(Variant("base", "base"))
    if v.full.enabled:
        out.append(Variant("full", "full", lrs=tuple(grid.get("full", [v.full.lr]))))
    for method in peft_methods():
        m = getattr(v, method, None)
        if m is None:  # registered after the config schema was built: not in this config
            continue
        tm = m.target_modules if isinstance(m.target_modules, str) else tuple(m.target_modules)
        for r in sorted(m.ranks):
            out.append(Variant(variant_name(method, r), method, r, tuple(grid.get(method, [m.lr])), m.alpha_for(r),
                               m.dropout, tm))
    plain = [x for x in out if x.trains]
    for strategy in cfg.strategies or {}:
        out += [replace(x, name=variant_name(x.method, x.rank, strategy), strategy=strategy) for x in plain]
    return out
