"""Rank recommendation: the smallest rank whose shift-capture ratio's interval reaches a target.

For a study and a ranked method (lora, dora, …), a rank *reaches* the target on a metric when
the lower end of the 95% interval of its capture ratio is ≥ the target (the point value when
the run has no intervals; the text then says so). The study's recommendation is the smallest
rank that reaches the target on *every* headline metric whose capture ratio is defined; the
overall one is the smallest rank that does so for every study at once. Metrics whose ratio is
undefined (base and full do not differ) are left out and named. When no defined metric is
left, the recommendation is undefined; when no rank tried reaches the target, that is said
plainly, with the best lower bound seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from lorafair.report.capture import CaptureResult, capture_from_estimates
from lorafair.report.load import RunData
from lorafair.report.study_meta import StudyMeta


@dataclass
class MetricCapture:
    study: str
    metric: str
    method: str
    by_rank: dict[int, CaptureResult]  # rank -> capture result
    undefined_reason: str = ""  # non-empty when the ratio is undefined for this metric (all ranks)

    @property
    def defined(self) -> bool:
        return not self.undefined_reason

    def bound(self, rank: int) -> float:
        """The number compared with the target: the interval's lower end, or the value without one."""
        c = self.by_rank.get(rank)
        if c is None or not c.defined:
            return float("nan")
        return c.value if math.isnan(c.ci_low) else c.ci_low

    def reaches(self, rank: int, target: float) -> bool:
        b = self.bound(rank)
        return not math.isnan(b) and b >= target

    @property
    def point_only(self) -> bool:
        return any(c.defined and math.isnan(c.ci_low) for c in self.by_rank.values())


@dataclass
class Recommendation:
    scope: str  # a study name, or "overall"
    method: str
    target: float
    rank: Optional[int]  # None: no rank reaches, or undefined
    status: str  # "reached" | "not_reached" | "undefined" | "no_ranks"
    text: str
    metrics: list[MetricCapture] = field(default_factory=list)


def capture_table(run: RunData, meta: StudyMeta, method: str, metrics: Optional[list[str]] = None) -> list[MetricCapture]:
    """Capture ratios of every rank of ``method`` for the study's headline (overall) metrics."""
    out = []
    for metric in metrics if metrics is not None else list(meta.headline):
        base = run.estimate(meta.name, metric, "base")
        full = run.estimate(meta.name, metric, "full")
        if base is None or full is None:
            continue
        by_rank: dict[int, CaptureResult] = {}
        for r in run.ranks(method):
            v = run.estimate(meta.name, metric, f"{method}-r{r}")
            if v is not None:
                by_rank[r] = capture_from_estimates(base, v, full, seed=r)
        reason = ""
        probe = capture_from_estimates(base, base, full)
        if not probe.defined:
            reason = probe.reason
        out.append(MetricCapture(meta.name, metric, method, by_rank, reason))
    return out


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.2f}"


def _decide(scope: str, method: str, target: float, caps: list[MetricCapture]) -> Recommendation:
    label = method if scope == "overall" else f"{method}"
    defined = [c for c in caps if c.defined and c.by_rank]
    undefined = [c for c in caps if not c.defined]
    excluded = ""
    if undefined:
        excluded = " Left out (capture ratio undefined): " + "; ".join(
            f"{c.study}/{c.metric}: {c.undefined_reason}" if scope == "overall" else f"{c.metric}: {c.undefined_reason}"
            for c in undefined) + "."
    if not caps:
        return Recommendation(scope, method, target, None, "no_ranks",
                              f"No {label} rank has a headline metric measured together with base and full.", caps)
    if not defined:
        return Recommendation(scope, method, target, None, "undefined",
                              f"Undefined: base and full do not differ on any headline metric, so there is no shift "
                              f"to capture.{excluded}", caps)
    ranks = sorted(set().union(*(c.by_rank.keys() for c in defined)))
    name = (lambda c: f"{c.study}/{c.metric}") if scope == "overall" else (lambda c: c.metric)
    point_only = any(c.point_only for c in defined)
    bound_word = "value" if point_only else "95% interval lower bound"
    for r in ranks:
        if all(c.reaches(r, target) for c in defined):
            detail = ", ".join(
                f"{name(c)} {_fmt(c.by_rank[r].value)} [{_fmt(c.by_rank[r].ci_low)}, {_fmt(c.by_rank[r].ci_high)}]"
                for c in defined)
            later = [r2 for r2 in ranks if r2 > r and not all(c.reaches(r2, target) for c in defined)]
            caveat = (f" Larger rank(s) {', '.join(f'r={x}' for x in later)} fall below the target again, "
                      f"so this is not a threshold beyond which every rank is safe.") if later else ""
            nodata = "" if not point_only else " (point values only: the run has no intervals)"
            return Recommendation(
                scope, method, target, r, "reached",
                f"Smallest {label} rank whose capture-ratio {bound_word} reaches {target:g} on every "
                f"{'defined ' if undefined else ''}headline metric: r={r}{nodata} — {detail}.{caveat}{excluded}",
                caps)
    short = []
    for c in defined:
        best = max(c.by_rank, key=lambda rr: (-math.inf if math.isnan(c.bound(rr)) else c.bound(rr)))
        if not any(c.reaches(rr, target) for rr in c.by_rank):
            short.append(f"{name(c)} (best {bound_word} {_fmt(c.bound(best))} at r={best})")
    why = ("; never reached by " + "; ".join(short)) if short else \
        "; each metric reaches it at some rank, but never all at the same rank"
    return Recommendation(
        scope, method, target, None, "not_reached",
        f"No {label} rank tried (r={ranks[0]}–{ranks[-1]}) reaches a capture-ratio {bound_word} of {target:g} "
        f"on every {'defined ' if undefined else ''}headline metric{why}.{excluded}", caps)


def recommend(run: RunData, metas: dict[str, StudyMeta], target: float = 0.9) -> dict[str, list[Recommendation]]:
    """Recommendations keyed by study name plus ``"overall"``; one entry per ranked method."""
    out: dict[str, list[Recommendation]] = {}
    overall: list[Recommendation] = []
    for method in run.ranked_methods():
        all_caps: list[MetricCapture] = []
        for study, meta in metas.items():
            caps = capture_table(run, meta, method)
            all_caps.extend(caps)
            out.setdefault(study, []).append(_decide(study, method, target, caps))
        overall.append(_decide("overall", method, target, all_caps))
    out["overall"] = overall
    return out
