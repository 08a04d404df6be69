"""What the report knows about a study: its headline metrics and which of them are better low.

Read from the study's class in the :data:`lorafair.studies.base.STUDIES` registry (class
attributes ``headline`` and ``lower_is_better``), importing ``lorafair.studies.<name>`` so
that it registers. Any failure (module missing, import error, attributes absent) falls back to
"every overall metric of the study is a headline, direction unknown": a study whose module
has not landed, or a run made by another version, still gets a report.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class StudyMeta:
    name: str
    headline: tuple[str, ...]  # metric names plotted against rank, in the study's order
    lower_is_better: frozenset[str]
    from_registry: bool  # False: the fallback (all metrics, direction unknown)
    doc: str = ""

    def direction(self, metric: str) -> Optional[str]:
        """"lower", "higher" or None (unknown) for a metric's better direction."""
        if metric in self.lower_is_better:
            return "lower"
        if self.from_registry:
            return "higher"
        return None


def study_meta(name: str, metrics_in_run: list[str]) -> StudyMeta:
    """Headline metrics of ``name`` restricted to those present in the run, with a fallback."""
    cls = None
    try:
        from lorafair.studies.base import STUDIES

        if name not in STUDIES:
            importlib.import_module(f"lorafair.studies.{name}")
        cls = STUDIES.get(name) if name in STUDIES else None
    except Exception:  # a missing or broken study module must never break the report
        cls = None
    if cls is not None:
        headline = tuple(m for m in (getattr(cls, "headline", ()) or ()) if m in metrics_in_run)
        lower = frozenset(getattr(cls, "lower_is_better", frozenset()) or ())
        doc = ((getattr(cls, "__doc__", None) or "").strip().splitlines() or [""])[0]
        if headline:
            return StudyMeta(name, headline, lower, True, doc)
        return StudyMeta(name, tuple(metrics_in_run), lower, True, doc)
    return StudyMeta(name, tuple(metrics_in_run), frozenset(), False)
