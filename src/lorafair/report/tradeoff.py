"""The fairness–utility trade-off of one study: every variant (plain ladder, strategy variants, base, full) as a
point with a fairness **target** metric on x and a **utility** (guard) metric on y, and the Pareto front of those
points (:func:`lorafair.stats.pareto.pareto_front`).

Everything comes from the run directory (metrics.csv values and metric_roles.json roles, directions, ideals):

- **x, the fairness targets**: the study's target metrics (role ``target``) in headline order, those with a known
  better side. A metric with an ideal value and no better direction (StereoSet's SS, ideal 50) is shown as its
  distance to the ideal, |m − ideal| (lower is better), as the capture ratio treats it; a metric with a direction
  is shown as it is.
- **y, the utility**: the study's own first guard metric with a direction (toxicity: perplexity; classification:
  accuracy; stereotypes: StereoSet LMS; decisions: profit); else the first guard of another study of the run,
  studies without targets first (forgetting: loss on general text), then in run order; else the ``heldout``
  study's loss (how well the variant learned its data). With none, the study has no trade-off view.
- **the front**: on the point values (not the intervals), over every variant that has both values: a variant is
  on it when no other variant is at least as good on both axes and better on one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from lorafair.report.load import Estimate, RunData, parse_variant
from lorafair.report.study_meta import StudyMeta
from lorafair.run.layout import split_strategy
from lorafair.stats.pareto import pareto_front

MAX_TARGETS = 4  # trade-off figures per study (the first target metrics in headline order)
HELDOUT = ("heldout", "loss")  # the last resort for the utility axis: how well a variant learned its own data


@dataclass(frozen=True)
class Axis:
    """One axis of the trade-off: a metric of a study, its better side and, where shown as a distance, the ideal."""

    study: str
    metric: str
    better: str  # "lower" | "higher" (of the value shown)
    ideal: Optional[float] = None  # not None: the axis shows |m − ideal|
    role: str = ""

    @property
    def label(self) -> str:
        return f"|{self.metric} − {self.ideal:g}|" if self.ideal is not None else self.metric

    def describe(self) -> str:
        """``perplexity (toxicity study, guard; lower is better)``."""
        where = f"{self.study} study" + (", " + self.role if self.role else "")
        dist = f", distance to its ideal {self.ideal:g}" if self.ideal is not None else ""
        return f"{self.label} ({where}{dist}; {self.better} is better)"

    def value(self, run: RunData, variant: str) -> Optional[Estimate]:
        e = run.estimate(self.study, self.metric, variant)
        if e is None or not math.isfinite(e.value):
            return None
        return e if self.ideal is None else distance(e, self.ideal)


def distance(e: Estimate, ideal: float) -> Estimate:
    """|m − ideal| with its interval: the image of [low, high] (from 0 when the interval holds the ideal)."""
    v = abs(e.value - ideal)
    if not e.has_ci:
        return Estimate(v, n=e.n, seeds=e.seeds)
    a, b = abs(e.ci_low - ideal), abs(e.ci_high - ideal)
    lo = 0.0 if e.ci_low <= ideal <= e.ci_high else min(a, b)
    return Estimate(v, lo, max(a, b), e.n, e.seeds)


def axis_for(meta: StudyMeta, metric: str) -> Optional[Axis]:
    """The metric as an axis, or None when its better side is unknown."""
    d, ideal = meta.direction(metric), meta.ideal(metric)
    if d is not None:
        return Axis(meta.name, metric, d, None, meta.role(metric))
    if ideal is not None:
        return Axis(meta.name, metric, "lower", ideal, meta.role(metric))
    return None


def _measured(run: RunData, axis: Axis, least: int = 2) -> bool:
    return sum(axis.value(run, v) is not None for v in run.variants()) >= least


def target_axes(run: RunData, meta: StudyMeta) -> list[Axis]:
    """The study's fairness targets for x: headline targets first, those with a better side and values."""
    out = []
    for m in meta.with_role("target"):
        a = axis_for(meta, m)
        if a is not None and _measured(run, a):
            out.append(a)
    return out


def utility_axis(run: RunData, metas: dict[str, StudyMeta], study: str) -> Optional[Axis]:
    """The utility for y (see the module docstring for the order it is chosen in); None when the run has none."""
    others = [m for s, m in metas.items() if s != study]
    # a study that only guards (forgetting) measures utility in general: before another study's own guard
    order = [metas[study]] + sorted(others, key=lambda m: bool(m.with_role("target")))
    for meta in order:
        for m in meta.with_role("guard"):
            a = axis_for(meta, m)
            if a is not None and a.ideal is None and _measured(run, a):
                return a
    s, m = HELDOUT
    if s != study and s in metas:
        a = axis_for(metas[s], m)
        if a is not None and a.ideal is None and _measured(run, a):
            return a
    return None


@dataclass
class Point:
    variant: str
    family: str  # the ranked method, "full", "base", or the variant's own name
    rank: Optional[int]
    strategy: str
    x: Optional[Estimate]
    y: Optional[Estimate]
    on_front: bool = False

    @property
    def complete(self) -> bool:
        return self.x is not None and self.y is not None


@dataclass
class TradeOff:
    """The points of one (target, utility) pair; ``points`` holds every variant with either value."""

    x: Axis
    y: Axis
    points: list[Point] = field(default_factory=list)

    @property
    def front(self) -> list[Point]:
        """The points on the Pareto front, sorted by x."""
        return sorted((p for p in self.points if p.on_front), key=lambda p: (p.x.value, p.y.value))


def tradeoff(run: RunData, x: Axis, y: Axis) -> TradeOff:
    """Every variant's (x, y) and which of them are on the Pareto front."""
    points = []
    for v in run.variants():
        px, py = x.value(run, v), y.value(run, v)
        if px is None and py is None:
            continue
        plain, strategy = split_strategy(v)
        method, rank = parse_variant(v)
        points.append(Point(v, method if rank is not None else plain, rank, strategy, px, py))
    complete = [p for p in points if p.complete]
    for i in pareto_front([(p.x.value, p.y.value) for p in complete], x.better, y.better):
        complete[i].on_front = True
    return TradeOff(x, y, points)


def better_corner(x: Axis, y: Axis) -> str:
    """Where the best points lie: "lower left", "upper right", …"""
    return f"{'lower' if y.better == 'lower' else 'upper'} {'left' if x.better == 'lower' else 'right'}"
