"""Fairness-promoting adaptation strategies (``strategies:`` in a recipe), crossed with the rank ladder.

See :mod:`lorafair.strategies.base` for the contract and docs/strategies.md for what each strategy needs
from the data. The registry finds every module of this package on its first lookup.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from lorafair.errors import UserError
from lorafair.strategies.base import (NAME_RE, STRATEGIES, Objective, Strategy, StrategyConfig, StrategyContext,
                                      register_strategy)

__all__ = ["STRATEGIES", "Objective", "Strategy", "StrategyConfig", "StrategyContext", "register_strategy",
           "validate_strategies", "build_strategy", "variant_key", "lam_suffix"]

def validate_strategies(raw: dict[str, Any] | None, reserved: tuple[str, ...] = ()) -> dict[str, Any]:
    """Instance name -> validated strategy Config instance (recipe order); UserError naming ``strategies.<key>…``.

    An entry is keyed by a registered strategy (``cfreg: {lam: 1}``) or by a free instance name with ``use:``
    naming its plug-in (``cfreg_lo: {use: cfreg, lam: 0.1}``), so one run may hold several configurations of a
    strategy. Instance names follow the strategy names' rule (lower-case letters, digits, ``_``) and may not be
    one of ``reserved`` (the methods' names and ``plain``: ``lora-r8+full`` would not read as a strategy). A list ``lam`` (the
    objective strategies' λ) gives one instance per value, ``<key>_lam<λ>`` (:func:`lam_suffix`)."""
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}  # instance name -> the recipe key that made it
    if raw is None:
        return out
    if not isinstance(raw, dict):
        raise UserError("strategies", raw, "a mapping of strategy name -> its fields (see docs/strategies.md)")
    for key, fields in raw.items():
        prefix = f"strategies.{key}"
        if isinstance(fields, StrategyConfig):  # already validated
            plugin = _plugin(str(key), fields.use or None, prefix, reserved)
            entries = [(str(key), fields)]
        else:
            if fields is not None and not isinstance(fields, dict):
                raise UserError(prefix, fields, "a mapping of the strategy's fields (or {})")
            fields = dict(fields or {})
            plugin = _plugin(str(key), fields.pop("use", None), prefix, reserved)
            cls = STRATEGIES.get(plugin)
            lams = fields.get("lam")
            if isinstance(lams, (list, tuple)) and "lam" in cls.Config.model_fields:
                if not lams:
                    raise UserError(f"{prefix}.lam", lams, "a number λ ≥ 0 or a non-empty list of them")
                entries = [(None, _config(cls, fields | {"lam": x}, prefix)) for x in lams]
                entries = [(f"{key}_{lam_suffix(c.lam)}", c) for _, c in entries]
            else:
                entries = [(str(key), _config(cls, fields, prefix))]
        for name, cfg in entries:
            if name in out:
                if origin[name] == key:
                    raise UserError(f"{prefix}.lam", raw[key].get("lam"), f"distinct values (λ = {cfg.lam:g} is given twice)")
                raise UserError(prefix, None, message=f"{prefix}: the instance name {name!r} is given twice (also by "
                                f"strategies.{origin[name]}; a list lam names its instances <key>_lam<λ>)")
            if name != plugin:
                cfg._use = plugin
            out[name], origin[name] = cfg, key
    return out


def lam_suffix(lam: float) -> str:
    """The instance-name suffix of one λ of a list ``lam``: ``lam`` + the number with ``.`` -> ``p`` and ``-`` ->
    ``m`` (0.1 -> ``lam0p1``, 1 -> ``lam1``, 10 -> ``lam10``, 0 -> ``lam0``, 1e-05 -> ``lam1em05``); the shortest
    repr that reads back to the same float, so two different λ never share a name."""
    s = repr(float(lam))
    return "lam" + s.removesuffix(".0").replace(".", "p").replace("-", "m").replace("+", "")


def _plugin(key: str, use, prefix: str, reserved: tuple[str, ...]) -> str:
    """The registered strategy an entry of ``strategies:`` instantiates (its key, or its ``use:``)."""
    names = STRATEGIES.names()
    if not NAME_RE.fullmatch(key):
        raise UserError("strategies", key, "a strategy or instance name of lower-case letters, digits and '_' "
                        "(it is the suffix of the variant names, lora-r8+<name>)")
    if key in reserved:
        raise UserError("strategies", key, f"a name other than {', '.join(reserved)} (the names of the methods and of "
                        f"plain fine-tuning: lora-r8+{key} would not read as a strategy)")
    if use is None:
        if key not in names:
            raise UserError("strategies", key, f"one of {', '.join(names)}, or an instance name with use: <strategy> "
                            f"({key}: {{use: cfreg, lam: 0.1}})")
        return key
    if not isinstance(use, str) or use not in names:
        raise UserError(f"{prefix}.use", use, f"one of {', '.join(names)}")
    if key in names and use != key:
        raise UserError(f"{prefix}.use", use, f"{key!r} or no use: ({key} is a strategy's name: give the instance "
                        "another name)")
    return use


def _config(cls, fields: dict, prefix: str) -> StrategyConfig:
    try:
        return cls.Config.model_validate(fields)
    except ValidationError as e:
        raise UserError.from_validation(e, prefix=prefix) from None


def build_strategy(name: str, config: StrategyConfig | dict | None = None) -> Strategy:
    """An instance of strategy ``name`` (a registered strategy or a named instance whose config says ``use``) with
    its (validated) config."""
    if not isinstance(config, StrategyConfig):
        config = validate_strategies({name: config or {}})[name]
    return STRATEGIES.get(config.use or name)(config, name)


def variant_key(variant, strategies: dict[str, Any] | None = None) -> dict:
    """What a variant's training and evaluation fingerprints hold of it: its fields, without ``strategy`` for
    plain fine-tuning (so run directories made before strategies existed keep their fingerprints), and with the
    strategy's config for a strategy variant (changing λ retrains it; a named instance's config holds its ``use``)."""
    d = asdict(variant)
    name = d.pop("strategy", "")
    if name:
        cfg = (strategies or {}).get(name)
        d["strategy"] = {"name": name, "config": cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else cfg}
    return d
