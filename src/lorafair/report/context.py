"""What every part of one run's report shares: the run, the target, each study's metadata (read from the
run directory, :mod:`.study_meta`), the recommendations, the table of contents and unique figure names."""

from __future__ import annotations

import re
from typing import Optional

from lorafair.report import plots
from lorafair.report.doc import Figure
from lorafair.report.load import RunData
from lorafair.report.recommend import recommend, recommend_strategies
from lorafair.report.study_meta import StudyMeta, study_meta
from lorafair.report.style import MARKERS, method_color


def slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"


def marker(i: int) -> str:
    return MARKERS[i % len(MARKERS)]


def run_metas(run: RunData) -> dict[str, StudyMeta]:
    """The metadata of every study of ``run``, in run order."""
    return {s: study_meta(s, run.metrics(s), run.roles.get(s), run.study_decl.get(s)) for s in run.studies()}


class ReportContext:
    """Shared state of one report while its blocks are built."""

    def __init__(self, run: RunData, target: float = 0.9):
        self.run = run
        self.target = target
        self.metas: dict[str, StudyMeta] = run_metas(run)
        self.recs = recommend(run, self.metas, target) if run.ranked_methods() else {}
        # per strategy (lora-r8+cfreg …), by the same rules; the plain recommendation above never reads them
        self.strategy_recs = recommend_strategies(run, self.metas, target) if run.ranked_methods() else {}
        self.toc: list[tuple[str, str]] = []
        self._names: set[str] = set()

    def fig(self, name: str, png: bytes, caption: str) -> Figure:
        """A figure with a name unique in the report (its file name in plots/)."""
        base = slug(name)
        n, i = base, 2
        while n in self._names:
            n, i = f"{base}-{i}", i + 1
        self._names.add(n)
        return Figure(n, png, caption)

    def main_method(self) -> Optional[str]:
        """The ranked method figures against rank are drawn for (lora when the run has it)."""
        ms = self.run.ranked_methods()
        return ms[0] if ms else None

    def series(self, study: str, metric: str, group: str = "") -> list[plots.Series]:
        """One series per ranked method: the metric at each of its ranks."""
        out = []
        for i, method in enumerate(self.run.ranked_methods()):
            pts = [(r, e) for r in self.run.ranks(method)
                   if (e := self.run.estimate(study, metric, f"{method}-r{r}", group)) is not None]
            if pts:
                out.append(plots.Series(method, method_color(method, i), pts, marker(i)))
        return out

    def refs(self, study: str, metric: str, group: str = "") -> list[plots.Reference]:
        """base (dotted) and full (dashed) as horizontal reference lines."""
        refs = []
        for name, style in (("base", ":"), ("full", "--")):
            e = self.run.estimate(study, metric, name, group)
            if e is not None:
                refs.append(plots.Reference(name, method_color(name), e, style))
        return refs
