"""The study contract.

A study is registered with :data:`STUDIES` under its name (the key users write under
``studies:`` in a recipe). It is a class with

- ``Config``: a pydantic model (``extra="forbid"``) of its recipe fields, with defaults;
- ``evaluate(ctx: EvalContext) -> StudyResult``: measure one variant.

Every headline metric is declared as a :class:`MetricSpec` in the class attribute ``metric_specs``:
its *role* (``target``: what the fine-tune is meant to change; ``guard``: must not get worse;
``diagnostic``: reported only), its better direction, an ideal value where the ideal is a value
rather than an end (StereoSet SS 50, a bias score 0), and, for paired comparisons between variants,
the item set it is computed on (``unit``) and a vectorised statistic of that set's per-item columns.
``evaluate`` returns those per-item columns in ``StudyResult.items``; the runner saves them next to
the results and computes paired capture ratios and differences from them once every variant of a
seed is evaluated (:mod:`lorafair.run.paired`).

Optionally ``needs_references = ("base", "full")`` when it compares against other variants
(then ``ctx.reference(name)`` gives those models), and ``finalize(run_dir, config, results)``
for cross-variant metrics computed once all variants are evaluated.

Optionally ``bf16_auto = ("sample",)`` / ``("score",)``: the LM-engine operations whose results the study
only uses as decisions or samples, which ``eval.precision: auto`` may run under bf16 autocast where the
hardware has native bf16 (:mod:`lorafair.lm.precision`; state the measured agreement with fp32 in the
study's docs). Default: none, every operation in fp32.

Optionally ``co_evaluate = True``: every LM-engine call the study makes on ``ctx.model`` takes arguments that do not
depend on the variant (fixed requests, prompts, texts; the run's seed), so the runner may answer it for the base
model and every LoRA variant at once in mixed-adapter batches (:mod:`lorafair.lm.group`, ``eval.mixed_adapters``).
A call on ``ctx.model`` with its adapter disabled (``ctx.base_view``) or on a reference model is not shared. Default
false: each variant's calls run alone.

Optionally ``revision = N``: raised when the study's numbers change for the same config and model (a new random
draw, a corrected formula), so that resuming a run made before re-evaluates the study instead of mixing results
of both versions across variants. Default 0 (not part of the fingerprint).

``evaluate`` must be a pure function of (config, seed, model): re-running it gives the
same numbers. It may write artifacts (e.g. ``samples.jsonl``) into ``ctx.out_dir`` with the
helpers of :mod:`lorafair.atomic`; it reads another variant's artifact through
``ctx.reference_file(variant, name)`` and writes a run-level one at ``ctx.run_file(name)``, never by
joining paths of the run directory itself (the runner's :class:`lorafair.run.layout.RunLayout` knows them).

The runner makes one instance of each study per run and calls ``evaluate`` for every variant and seed,
so a study may keep what every variant shares (e.g. the shift study's ΔW_full spectrum) on ``self``.

A metric's better direction is declared once, in its :class:`MetricSpec` (the runner writes it to
``metric_roles.json``, which the report reads).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional, Protocol

import numpy as np

from pydantic import BaseModel, ConfigDict

from lorafair.registry import Registry


class StudyConfig(BaseModel):
    """Base class of every study's config: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


@dataclass
class MetricRow:
    """One number of a study for one variant. ``group`` is "" for the overall value."""

    metric: str
    value: float
    ci_low: Optional[float] = None
    ci_high: Optional[float] = None
    n: Optional[int] = None
    group: str = ""
    note: str = ""  # why the value is missing, e.g. "undefined: constant decisions" (value is then NaN)


ROLES = ("target", "guard", "diagnostic")
DIRECTIONS = ("lower", "higher", "none")

# A statistic of an item set: ``stat(cols)`` where every column is an array of shape (B, n) — B
# resamples (rows) of the n items' values — returning shape (B,). The point value is the statistic
# of the items as they are (B = 1). NaN where the statistic is undefined in that resample.
ItemStat = Callable[[dict[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric means: its role, direction, ideal value and how to recompute it from items."""

    name: str
    role: str = "diagnostic"  # target | guard | diagnostic
    direction: str = "lower"  # lower | higher | none (better direction; "none" when only the ideal matters)
    ideal: Optional[float] = None  # where the best value is a value, not an end: capture uses |m - ideal|
    unit: str = ""  # the item set (key of StudyResult.items) it is computed on; "" = no paired comparison
    stat: Optional[ItemStat] = None  # vectorised statistic of that item set's columns
    doc: str = ""

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role of {self.name} must be one of {ROLES}, got {self.role!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction of {self.name} must be one of {DIRECTIONS}, got {self.direction!r}")
        if (self.stat is None) != (not self.unit):
            raise ValueError(f"metric {self.name}: give both unit and stat, or neither")

    def meta(self) -> dict:
        """The JSON-able part written into the run directory (``metric_roles.json``)."""
        return {"role": self.role, "direction": self.direction, "ideal": self.ideal, "unit": self.unit,
                "paired": self.stat is not None, "doc": self.doc}


@dataclass
class ItemSet:
    """Per-item values of one variant on one set of items (prompts, pairs, examples, sequences…).

    ``ids`` identify items across variants (the same prompt has the same id in every variant), so
    paired statistics resample the same items for base, variant and full. ``columns`` are float
    arrays of length ``len(ids)``; group membership is a 0/1 column named ``g:<group>``.
    """

    ids: list[str]
    columns: dict[str, np.ndarray]

    def __post_init__(self):
        self.ids = [str(i) for i in self.ids]
        self.columns = {k: np.asarray(v, dtype=np.float64).ravel() for k, v in self.columns.items()}
        for k, v in self.columns.items():
            if v.shape[0] != len(self.ids):
                raise ValueError(f"item column {k!r} has {v.shape[0]} values for {len(self.ids)} items")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("item ids must be unique")

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class StudyResult:
    metrics: list[MetricRow] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # how numbers were obtained: k, n, scorer identity…
    items: dict[str, ItemSet] = field(default_factory=dict)  # unit name -> per-item values (for paired stats)


@dataclass
class VariantInfo:
    name: str  # e.g. "lora-r8"
    method: str  # base | full | a PEFT method of lorafair.methods (lora, dora, rslora, pissa …)
    rank: Optional[int]  # None for base/full


class RunFiles(Protocol):
    """What a study may ask of the run directory (:class:`lorafair.run.layout.RunLayout` is one)."""

    root: Path

    def variant_dir(self, variant: str, seed: int) -> Path: ...

    def run_file(self, name: str) -> Path: ...


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
    # The run directory (the runner's lorafair.run.layout.RunLayout). None in a context built by hand: then
    # the run directory is out_dir's parent and another variant's folder is named as out_dir, with that
    # variant's name in place of this one's (lora-r1-s0 -> base-s0).
    layout: Optional[RunFiles] = None

    @property
    def run_dir(self) -> Path:
        """The run directory (also what identifies the run in caches kept across variants)."""
        return Path(self.layout.root) if self.layout is not None else Path(self.out_dir).parent

    def run_file(self, name: str) -> Path:
        """A run-level artifact (one per run, shared by every variant), e.g. ``ctx.run_file("spectrum.json")``."""
        return self.layout.run_file(name) if self.layout is not None else Path(self.out_dir).parent / name

    def reference_file(self, variant: str, name: str) -> Path:
        """An artifact of another variant of this run and seed, e.g. ``ctx.reference_file("base", "samples.jsonl")``
        (it may not exist: the runner evaluates ``base`` first, but a ladder can leave it out)."""
        if self.layout is not None:
            return self.layout.variant_dir(variant, self.seed) / name
        own = Path(self.out_dir)
        suffix = own.name[len(self.variant.name):] if own.name.startswith(self.variant.name) else ""
        return own.parent / f"{variant}{suffix}" / name


STUDIES: Registry[type] = Registry("study", "studies", plugins=("lorafair.studies",))


def metric_specs(cls, config=None) -> dict[str, MetricSpec]:
    """A study class's declared metrics by name (empty when it declares none). A study whose metrics depend on
    its config (``lmeval``: those of its tasks) declares them with ``specs_for(config)``, used when ``config``
    is given."""
    if config is not None and hasattr(cls, "specs_for"):
        return {m.name: m for m in cls.specs_for(config)}
    return {m.name: m for m in (getattr(cls, "metric_specs", ()) or ())}


def headline_metrics(cls, config=None) -> tuple[str, ...]:
    """A study's headline metrics (plotted against rank, shown in summary.md): its ``headline``, or for a study
    whose metrics depend on its config and that names none, its target metrics."""
    own = tuple(getattr(cls, "headline", ()) or ())
    if own or config is None or not hasattr(cls, "specs_for"):
        return own
    return tuple(m.name for m in cls.specs_for(config) if m.role == "target")


def register_study(name: str):
    """Class decorator: ``@register_study("toxicity")``."""
    return STUDIES.register(name)
