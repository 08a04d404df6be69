"""The strategy contract: a fairness-promoting way to adapt a model, crossed with every trained variant.

A strategy is registered with :data:`STRATEGIES` under its name (the key users write under ``strategies:`` in
a recipe). It is a class with

- ``Config``: a pydantic model (:class:`StrategyConfig`, ``extra="forbid"``) of its recipe fields;
- ``needs``: one line saying what it needs from the data (shown by the docs and in its refusals);
- optionally ``select(rows, ctx) -> rows``: the training records it trains on instead of the plain ones
  (targeted data selection, counterfactual augmentation). The runner saves them in the run directory
  (``data/train-s<seed>+<strategy>.jsonl``) and reuses them for every variant of the seed;
- optionally ``objective(ctx) -> Objective``: a term added to the language-modelling loss in
  :func:`lorafair.adapt.train.train_model` (fairness-regularised objectives).

Every strategy is crossed with every trained method and rank of the ladder (:func:`lorafair.run.ladder.plan_variants`):
``lora-r8+cfreg`` is ``lora-r8`` trained with the ``cfreg`` strategy, with the same steps, seed and data order
rules as ``lora-r8`` itself. A strategy refuses data it cannot use with a :class:`lorafair.errors.UserError` naming
``strategies.<name>.<field>`` (one ``error:`` line, exit 2).

This package imports ``data``, ``scorers``, ``lm`` and ``adapt.tokenize``-level helpers only; never ``studies``,
``run`` or ``config`` (tests/test_import_graph.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol

import torch
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, model_serializer
from typing_extensions import Annotated

from lorafair.data.wordlists import AXES
from lorafair.registry import Registry


class StrategyConfig(BaseModel):
    """Base class of every strategy's config: unknown keys are errors, NaN and ±inf refused.

    A named instance (``cfreg_lo: {use: cfreg, lam: 0.1}``) keeps its plug-in's name in ``use`` (not a field of
    the plug-in's config: :func:`lorafair.strategies.validate_strategies` takes it out before validating). It is
    dumped first (``{"use": "cfreg", "lam": 0.1}``), so a saved ``config.yaml`` reads back to the same instance and
    the fingerprints tell two plug-ins apart; an entry keyed by its plug-in's own name dumps as before (no ``use``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    _use: str = PrivateAttr(default="")

    @property
    def use(self) -> str:
        """The plug-in of a named instance; "" when the entry is keyed by the plug-in's own name."""
        return self._use

    @model_serializer(mode="wrap")
    def _dump_use(self, handler):
        d = handler(self)
        return {"use": self._use} | d if self._use and isinstance(d, dict) else d


def _axes(v: list[str]) -> list[str]:
    bad = [a for a in v if a not in AXES]
    if bad:
        raise ValueError(f"unknown axis {bad[0]!r}; expected some of {', '.join(AXES)}")
    return list(dict.fromkeys(v))


# identity axes of the cda word lists (lorafair.data.wordlists), as a strategy config field: ``axes: Axes = axes_field(…)``
Axes = Annotated[list[str], AfterValidator(_axes)]


def axes_field(what: str):
    return Field(default_factory=lambda: ["gender"], min_length=1, description=f"{what}: {', '.join(AXES)}.")


@dataclass
class StrategyContext:
    """What a strategy gets to build its records or its objective for one seed."""

    seed: int
    tokenizer: Any = None
    max_length: int = 128
    device: Any = "cpu"
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("lorafair"))
    field: str = "strategies"  # ``strategies.<name>``: the prefix of its error messages
    base_model: Optional[Callable[[], tuple[Any, Any]]] = None  # () -> (model, tokenizer): the ladder's base


class Objective(Protocol):
    """A term added to the training loss. ``encode`` turns the training records into encoded records that may
    carry extra keys (e.g. a counterfactual's token ids); ``collate`` makes the extra tensors of a batch from
    those records; ``penalty(model, batch)`` is the term (already weighted by λ) added to the LM loss.

    An objective that reads logits at supervised positions only may also define
    ``penalty_from_logits(logits, keep, batch) -> Tensor | None``: the same term from the LM loss's own forward
    pass (``logits``: the rows of the boolean (batch, length) ``keep`` mask, row-major), so a training step runs
    the model once; None falls back to ``penalty``."""

    def encode(self, rows: list[dict], tok, max_length: int) -> list[dict]: ...

    def collate(self, records: list[dict], pad_id: int) -> dict[str, torch.Tensor]: ...

    def penalty(self, model, batch: dict) -> torch.Tensor: ...


class Strategy:
    """Base class: no record selection, no objective (override ``select`` and/or ``objective``)."""

    Config: type[StrategyConfig] = StrategyConfig
    needs: str = ""

    def __init__(self, config: StrategyConfig, name: str = ""):
        self.config = config
        self.name = name

    @property
    def field(self) -> str:
        return f"strategies.{self.name}"

    def selects(self) -> bool:
        return type(self).select is not Strategy.select

    def select(self, rows: list[dict], ctx: StrategyContext) -> list[dict]:
        return rows

    def objective(self, ctx: StrategyContext) -> Optional[Objective]:
        return None


NAME_RE = re.compile(r"[a-z0-9_]+")  # strategy and instance names: the suffix of a variant name (lora-r8+cfreg_lo)

STRATEGIES: Registry[type] = Registry("strategy", "strategies", plugins=("lorafair.strategies",))


def register_strategy(name: str, help: str = "") -> Callable[[type], type]:
    """Decorator: ``@register_strategy("select")`` on a :class:`Strategy` subclass. The name is a variant-name
    suffix (``lora-r8+select``): lower-case letters, digits and ``_`` (:data:`NAME_RE`, the rule of instance names too)."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"strategy name {name!r}: expected lower-case letters, digits and '_'")
    return STRATEGIES.register(name, help)
