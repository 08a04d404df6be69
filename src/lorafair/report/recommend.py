"""Rank recommendation from the paired capture ratios of metrics.csv.

Every study measures all variants on the same items with common random numbers, and the runner
writes, per variant, ``capture_<m>`` (the shift-capture ratio (m(base) − m(v)) / (m(base) − m(full)),
distance to the ideal where the metric has one, with a *paired* bootstrap interval over the items)
for every **target** metric, and ``delta_<m>`` (m(v) − m(base), paired) for targets and **guards**
(:mod:`lorafair.run.paired`). This module only reads them.

For a ranked method (lora, dora, …) and a rank, each target metric is in one of these states:

- **reached**: the capture interval lies within [target, 2 − target] — the rank learned what full
  fine-tuning learned, within the tolerance;
- **overshoots**: the interval starts at or above the target but reaches beyond 2 − target — it moved
  further than full fine-tuning did (not "learned the same");
- **short**: the interval starts below the target and does not reach beyond 2 − target;
- **uncertain**: the interval spans the whole tolerance band (too few items to say);
- **undefined**: no ratio (base and full do not differ significantly, or a model's metric is
  undefined, e.g. constant decisions); such metrics are left out and named.

A study's recommendation is the smallest rank that *reaches* every defined target metric of the
study; the overall one the smallest rank that does so for every study at once. Guards are checked
at that rank: a guard is *broken* when the paired interval of m(v) − m(base) lies entirely on its
worse side, and the text says so (with full fine-tuning's change for comparison). Seeds are pooled
with :func:`lorafair.report.load.pool_seeds`.

Strategy variants (``lora-r8+cfreg``, :mod:`lorafair.strategies`) are never part of the plain recommendation
(:func:`recommend` reads only the plain ``<method>-r<rank>`` variants). :func:`recommend_strategies` applies the
same rules to each strategy's own ladder (``<method>-r<rank>+<strategy>``): its capture rows are paired against the
same base and the same *plain* full fine-tuning, so "reached" means the strategy at that rank moved as far as plain
full fine-tuning did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from lorafair.report.load import Estimate, RunData
from lorafair.report.study_meta import StudyMeta
from lorafair.run.layout import STRATEGY_SEP, variant_name
from lorafair.stats.capture import CaptureResult

STATES = ("reached", "overshoots", "short", "uncertain", "undefined")


@dataclass
class MetricCapture:
    study: str
    metric: str
    method: str
    by_rank: dict[int, CaptureResult]  # rank -> pooled paired capture ratio (undefined ones included)
    undefined_reason: str = ""  # non-empty when no rank has a defined ratio
    ideal: Optional[float] = None

    @property
    def defined(self) -> bool:
        return not self.undefined_reason

    def bounds(self, rank: int) -> tuple[float, float]:
        c = self.by_rank.get(rank)
        if c is None or not c.defined:
            return float("nan"), float("nan")
        lo, hi = c.ci_low, c.ci_high
        if math.isnan(lo) or math.isnan(hi):
            return c.value, c.value
        return lo, hi

    def state(self, rank: int, target: float) -> str:
        lo, hi = self.bounds(rank)
        if math.isnan(lo):
            return "undefined"
        upper = 2 - target
        if lo >= target and hi <= upper:
            return "reached"
        if lo >= target:
            return "overshoots"
        if hi <= upper:
            return "short"
        return "uncertain"

    def reaches(self, rank: int, target: float) -> bool:
        return self.state(rank, target) == "reached"

    @property
    def point_only(self) -> bool:
        return any(c.defined and math.isnan(c.ci_low) for c in self.by_rank.values())


@dataclass
class GuardCheck:
    study: str
    metric: str
    direction: Optional[str]
    delta: Optional[Estimate]  # m(v) − m(base), paired
    full_delta: Optional[Estimate]

    @property
    def broken(self) -> bool:
        d = self.delta
        if d is None or not d.has_ci:
            return False
        return (self.direction == "lower" and d.ci_low > 0) or (self.direction == "higher" and d.ci_high < 0)


@dataclass
class Recommendation:
    scope: str  # a study name, or "overall"
    method: str
    target: float
    rank: Optional[int]  # None: no rank reaches, or undefined
    status: str  # "reached" | "not_reached" | "undefined" | "no_ranks"
    text: str
    metrics: list[MetricCapture] = field(default_factory=list)
    guards_broken: list[GuardCheck] = field(default_factory=list)
    strategy: str = ""  # "" for plain fine-tuning

    @property
    def label(self) -> str:
        """``lora`` or ``lora+cfreg``."""
        return f"{self.method}{STRATEGY_SEP}{self.strategy}" if self.strategy else self.method


def _capture_result(e: Optional[Estimate], note: str) -> CaptureResult:
    nan = float("nan")
    if e is None:
        reason = note.removeprefix("undefined: ") if note else "no capture row"
        return CaptureResult(nan, nan, nan, False, reason, None, "paired-bootstrap")
    return CaptureResult(e.value, e.ci_low, e.ci_high, True, "", e.n, "paired-bootstrap")


def capture_table(run: RunData, meta: StudyMeta, method: str, metrics: Optional[list[str]] = None,
                  strategy: str = "") -> list[MetricCapture]:
    """Pooled paired capture ratios of every rank of ``method`` for the study's target metrics
    (or ``metrics``), read from the ``capture_<m>`` rows; with ``strategy``, of the variants
    ``<method>-r<rank>+<strategy>`` instead of the plain ones."""
    out = []
    names = metrics if metrics is not None else meta.with_role("target")
    present = set(run.metrics(meta.name))
    for metric in names:
        cm = f"capture_{metric}"
        if cm not in present:
            continue
        by_rank: dict[int, CaptureResult] = {}
        for r in run.ranks(method):
            v = variant_name(method, r, strategy)
            e = run.estimate(meta.name, cm, v)
            note = run.note(meta.name, cm, v)
            if e is None and not note:
                continue
            by_rank[r] = _capture_result(e, note)
        if not by_rank:
            continue
        reason = ""
        if not any(c.defined for c in by_rank.values()):
            reason = next((c.reason for c in by_rank.values() if c.reason), "undefined")
        out.append(MetricCapture(meta.name, metric, method, by_rank, reason, meta.ideal(metric)))
    return out


def guard_checks(run: RunData, meta: StudyMeta, variant: str) -> list[GuardCheck]:
    out = []
    for metric in meta.with_role("guard"):
        d = run.estimate(meta.name, f"delta_{metric}", variant)
        if d is None:
            continue
        out.append(GuardCheck(meta.name, metric, meta.direction(metric), d, run.estimate(meta.name, f"delta_{metric}", "full")))
    return out


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _ci(c: CaptureResult) -> str:
    if math.isnan(c.ci_low):
        return _fmt(c.value)
    return f"{_fmt(c.value)} [{_fmt(c.ci_low)}, {_fmt(c.ci_high)}]"


def _signed(e: Optional[Estimate]) -> str:
    if e is None:
        return "n/a"
    s = f"{e.value:+.3g}"
    if e.has_ci:
        s += f" [{e.ci_low:+.3g}, {e.ci_high:+.3g}]"
    return s


def _decide(scope: str, method: str, target: float, caps: list[MetricCapture],
            guards_at, metas: dict[str, StudyMeta], strategy: str = "") -> Recommendation:
    rec = _decide_plain(scope, f"{method}{STRATEGY_SEP}{strategy}" if strategy else method, target, caps, guards_at,
                        metas)
    rec.method, rec.strategy = method, strategy
    return rec


def _decide_plain(scope: str, method: str, target: float, caps: list[MetricCapture],
                  guards_at, metas: dict[str, StudyMeta]) -> Recommendation:
    defined = [c for c in caps if c.defined]
    undefined = [c for c in caps if not c.defined]
    name = (lambda c: f"{c.study}/{c.metric}") if scope == "overall" else (lambda c: c.metric)
    band = f"[{target:g}, {2 - target:g}]"
    excluded = ""
    if undefined:
        excluded = " Left out (capture ratio undefined): " + "; ".join(
            f"{name(c)}: {c.undefined_reason}" for c in undefined) + "."
    if not caps:
        has_targets = any(m.with_role("target") for m in metas.values())
        why = ("none of its target metrics has paired capture rows in metrics.csv (a run made by an older "
               "lorafair, or the study saved no per-item values)") if has_targets else "it declares no target metric"
        return Recommendation(scope, method, target, None, "no_ranks", f"No recommendation: {why}.", caps)
    if not defined:
        return Recommendation(scope, method, target, None, "undefined",
                              "Undefined: no target metric has a defined capture ratio, so there is no shift of full "
                              f"fine-tuning to compare with.{excluded}", caps)
    ranks = sorted(set().union(*(c.by_rank.keys() for c in defined)))
    point_only = any(c.point_only for c in defined)
    crit = "capture value" if point_only else "paired capture interval"
    for r in ranks:
        if all(c.reaches(r, target) for c in defined):
            detail = ", ".join(f"{name(c)} {_ci(c.by_rank[r])}" for c in defined)
            later = {r2: [f"{name(c)} {c.state(r2, target)}" for c in defined if not c.reaches(r2, target)]
                     for r2 in ranks if r2 > r}
            later = {k: v for k, v in later.items() if v}
            caveat = (" Larger ranks are not all within the band: " + "; ".join(
                f"r={k}: {', '.join(v)}" for k, v in later.items()) + ".") if later else ""
            guards = guards_at(r)
            broken = [g for g in guards if g.broken]
            gtext = ""
            if broken:
                gtext = " But it breaks guard(s): " + "; ".join(
                    f"{g.study + '/' if scope == 'overall' else ''}{g.metric} changes by {_signed(g.delta)} from base "
                    f"({'lower' if g.direction == 'lower' else 'higher'} is better; full: {_signed(g.full_delta)})"
                    for g in broken) + "."
            elif guards:
                gtext = " Guards hold: " + ", ".join(
                    f"{g.study + '/' if scope == 'overall' else ''}{g.metric} {_signed(g.delta)}" for g in guards) + "."
            nodata = " (point values only: the run has no intervals)" if point_only else ""
            return Recommendation(
                scope, method, target, r, "reached",
                f"Smallest {method} rank whose {crit} lies within {band} on every "
                f"{'defined ' if undefined else ''}target metric: r={r}{nodata} — {detail}.{gtext}{caveat}{excluded}",
                caps, broken)
    parts = []
    for c in defined:
        states = {rr: c.state(rr, target) for rr in c.by_rank}
        reached = [rr for rr, s in states.items() if s == "reached"]
        if reached:
            parts.append(f"{name(c)} reached at r={', '.join(map(str, sorted(reached)))}")
            continue
        over = [rr for rr, s in states.items() if s == "overshoots"]
        best = min((rr for rr in c.by_rank if c.by_rank[rr].defined),
                   key=lambda rr: abs(1 - c.by_rank[rr].value), default=None)
        s = f"{name(c)} never within the band"
        if best is not None:
            s += f" (closest r={best}: {_ci(c.by_rank[best])}, {states[best]})"
        if over:
            s += f"; overshoots at r={', '.join(map(str, sorted(over)))}"
        parts.append(s)
    broken: dict[str, list[int]] = {}
    full_delta: dict[str, Optional[Estimate]] = {}
    for r in ranks:
        for g in guards_at(r):
            key = f"{g.study + '/' if scope == 'overall' else ''}{g.metric}"
            full_delta[key] = g.full_delta
            if g.broken:
                broken.setdefault(key, []).append(r)
    gtext = (" Guards broken: " + "; ".join(f"{k} at r={', '.join(map(str, rs))} (full: {_signed(full_delta[k])})"
                                            for k, rs in broken.items()) + ".") if broken else ""
    return Recommendation(
        scope, method, target, None, "not_reached",
        f"No {method} rank tried (r={ranks[0]}–{ranks[-1]}) has its {crit} within {band} on every "
        f"{'defined ' if undefined else ''}target metric at once: " + "; ".join(parts) + f".{gtext}{excluded}", caps)


def recommend(run: RunData, metas: dict[str, StudyMeta], target: float = 0.9) -> dict[str, list[Recommendation]]:
    """Recommendations keyed by study name plus ``"overall"``; one entry per ranked method."""
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    out: dict[str, list[Recommendation]] = {}
    overall: list[Recommendation] = []
    for method in run.ranked_methods():
        all_caps: list[MetricCapture] = []
        for study, meta in metas.items():
            caps = capture_table(run, meta, method)
            all_caps.extend(caps)
            out.setdefault(study, []).append(_decide(
                study, method, target, caps, lambda r, m=meta: guard_checks(run, m, f"{method}-r{r}"), {study: meta}))
        overall.append(_decide("overall", method, target, all_caps,
                               lambda r: [g for m in metas.values() for g in guard_checks(run, m, f"{method}-r{r}")],
                               metas))
    out["overall"] = overall
    return out


def recommend_strategies(run: RunData, metas: dict[str, StudyMeta], target: float = 0.9
                         ) -> dict[str, list[Recommendation]]:
    """Per strategy and ranked method, the smallest rank of ``<method>-r<rank>+<strategy>`` that reaches every
    defined target metric (the rules of :func:`recommend`, which this leaves untouched); keyed like it. A method
    the strategy was not crossed with (no variant) is left out."""
    if not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    out: dict[str, list[Recommendation]] = {}
    overall: list[Recommendation] = []
    names = set(run.variants())
    for strategy in run.strategies():
        for method in run.ranked_methods():
            if not any(variant_name(method, r, strategy) in names for r in run.ranks(method)):
                continue
            all_caps: list[MetricCapture] = []
            for study, meta in metas.items():
                caps = capture_table(run, meta, method, strategy=strategy)
                all_caps.extend(caps)
                out.setdefault(study, []).append(_decide(
                    study, method, target, caps,
                    lambda r, m=meta: guard_checks(run, m, variant_name(method, r, strategy)), {study: meta}, strategy))
            overall.append(_decide("overall", method, target, all_caps,
                                   lambda r: [g for m in metas.values()
                                              for g in guard_checks(run, m, variant_name(method, r, strategy))],
                                   metas, strategy))
    if overall:
        out["overall"] = overall
    return out


def study_is_flat(caps: list[MetricCapture]) -> bool:
    """True when the study has target metrics with capture rows and none is defined: base and full do
    not differ (or the metrics are undefined) on all of them."""
    return bool(caps) and not any(c.defined for c in caps)
