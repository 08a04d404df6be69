"""The variant ladder: which variants a config asks for, each with its learning rate(s)."""

from __future__ import annotations

from dataclasses import replace

from lorafair.adapt.external import ExternalVariant, resolve_external
from lorafair.adapt.variants import Variant
from lorafair.config.schema import RunConfig
from lorafair.errors import UserError
from lorafair.methods import is_peft_method, peft_methods
from lorafair.run.layout import parse_variant, variant_name


def plan_variants(cfg: RunConfig) -> list[Variant]:
    """base, full, then each PEFT method's ranks in ascending order (methods in registration order); then, for
    each strategy of ``cfg.strategies`` (recipe order), every trained variant again with that strategy
    (``full+select``, ``lora-r8+select`` …: the same method, rank and learning rates); then the external
    variants in recipe order (an external ``role: full`` checkpoint takes the place of the trained full; external
    variants are never trained, so never crossed with a strategy)."""
    v = cfg.variants
    grid = v.lr_grid or {}
    out: list[Variant] = []
    if v.base:
        out.append(Variant("base", "base"))
    if v.full.enabled:
        out.append(Variant("full", "full", lrs=tuple(grid.get("full", [v.full.lr]))))
    external = plan_external(cfg)
    out += [e for e in external if e.name == "full"]
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
    return out + [e for e in external if e.name != "full"]


def plan_external(cfg: RunConfig) -> list[ExternalVariant]:
    """The recipe's external variants, their files read and hashed (:mod:`lorafair.adapt.external`). A name of the
    form ``<method>-r<rank>`` puts a variant on the rank ladder (the report reads method and rank from the name),
    so it must be the adapter's own method and rank."""
    out = []
    for i, entry in enumerate(cfg.variants.external):
        e = resolve_external(entry, i, allow_pickle=cfg.model.allow_pickle)
        method, rank = parse_variant(e.name)
        if rank is not None and (method, rank) != (e.method, e.rank):
            own = variant_name(e.method, e.rank) if is_peft_method(e.method) else "a name without -r<rank>"
            raise UserError(f"variants.external[{i}].name", e.name, f"{own} or a name not of the form <method>-r<rank> "
                            f"(such a name puts the variant on the rank ladder: it must be its own method and rank, "
                            f"{e.method}{'' if e.rank is None else f' r={e.rank}'})")
        out.append(e)
    return out
