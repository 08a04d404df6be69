"""The study contract.

A study is registered with :data:`STUDIES` under its name (the key users write under
``studies:`` in a recipe). It is a class with

- ``Config``: a pydantic model (``extra="forbid"``) of its recipe fields, with defaults;
- ``evaluate(ctx: EvalContext) -> StudyResult``: measure one variant.

Optionally ``needs_references = ("base", "full")`` when it compares against other variants
(then ``ctx.reference(name)`` gives those models), and ``finalize(run_dir, config, results)``
for cross-variant metrics computed once all variants are evaluated.

``evaluate`` must be a pure function of (config, seed, model): re-running it gives the
same numbers. It may write artifacts (e.g. ``samples.jsonl``) into ``ctx.out_dir`` with the
helpers of :mod:`lorafair.run.atomic`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

from pydantic import BaseModel, ConfigDict

from lorafair.registry import Registry


class StudyConfig(BaseModel):
    """Base class of every study's config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class MetricRow:
    """One number of a study for one variant. ``group`` is "" for the overall value."""

    metric: str
    value: float
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    n: Optional[int] = None
    group: str = ""


@dataclass
class StudyResult:
    metrics: list[MetricRow] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # how numbers were obtained: k, n, scorer identity…


@dataclass
class VariantInfo:
    name: str  # e.g. "lora-r8"
    method: str  # base | full | lora | dora | rslora | pissa
    rank: Optional[int]  # None for base/full


@dataclass
class EvalContext:
    model: Any  # a transformers PreTrainedModel (possibly a peft.PeftModel), eval mode, on ``device``
    tokenizer: Any
    device: Any  # torch.device
    variant: VariantInfo
    seed: int
    out_dir: Path  # this variant's folder in the run directory
    config: Any  # the whole validated RunConfig
    study_config: Any  # this study's Config instance
    log: logging.Logger
    progress: bool = True  # show progress bars
    # Returns the model of another variant ("base", "full") in eval mode on ``device``; cached by the runner.
    reference: Optional[Callable[[str], Any]] = None
    # Context manager under which ``model`` behaves as the base model (adapters disabled), when it is a PEFT model.
    base_view: Optional[Callable[[], ContextManager[Any]]] = None
    # The run's held-out shift data (records with ``text`` or ``prompt``/``completion``), never trained on.
    heldout_data: Optional[list] = None


STUDIES: Registry[type] = Registry("study", "studies")


def register_study(name: str):
    """Class decorator: ``@register_study("toxicity")``."""
    return STUDIES.register(name)
