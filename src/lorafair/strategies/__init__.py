"""Fairness-promoting adaptation strategies (``strategies:`` in a recipe), crossed with the rank ladder.

See :mod:`lorafair.strategies.base` for the contract and docs/strategies.md for what each strategy needs
from the data. The registry finds every module of this package on its first lookup.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.strategies.base import (STRATEGIES, Objective, Strategy, StrategyConfig, StrategyContext,
                                      register_strategy)

__all__ = ["STRATEGIES", "Objective", "Strategy", "StrategyConfig", "StrategyContext", "register_strategy",
           "validate_strategies", "build_strategy", "variant_key"]

def validate_strategies(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Name -> validated strategy Config instance (recipe order); UserError naming ``strategies.<name>.<field>``."""
    out: dict[str, Any] = {}
    if raw is None:
        return out
    if not isinstance(raw, dict):
        raise UserError("strategies", raw, "a mapping of strategy name -> its fields (see docs/strategies.md)")
    for name, fields in raw.items():
        cls = STRATEGIES.get(str(name))
        if isinstance(fields, StrategyConfig):  # already validated
            out[name] = fields
            continue
        prefix = f"strategies.{name}"
        if fields is not None and not isinstance(fields, dict):
            raise UserError(prefix, fields, "a mapping of the strategy's fields (or {})")
        try:
            out[name] = cls.Config.model_validate(fields or {})
        except ValidationError as e:
            raise UserError.from_validation(e, prefix=prefix) from None
    return out


def build_strategy(name: str, config: StrategyConfig | dict | None = None) -> Strategy:
    """An instance of strategy ``name`` with its (validated) config."""
    cls = STRATEGIES.get(name)
    if not isinstance(config, StrategyConfig):
        config = validate_strategies({name: config or {}})[name]
    return cls(config, name)


def variant_key(variant, strategies: dict[str, Any] | None = None) -> dict:
    """What a variant's training and evaluation fingerprints hold of it: its fields, without ``strategy`` for
    plain fine-tuning (so run directories made before strategies existed keep their fingerprints), and with the
    strategy's config for a strategy variant (changing λ retrains it)."""
    d = asdict(variant)
    name = d.pop("strategy", "")
    if name:
        cfg = (strategies or {}).get(name)
        d["strategy"] = {"name": name, "config": cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg}
    return d
