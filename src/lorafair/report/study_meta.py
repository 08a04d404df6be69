"""What the report knows about a study: its title, description, headline metrics and every metric's
role, better direction, ideal value, item set and doc line — all read from the run directory.

The runner writes ``RUN/metric_roles.json`` (:func:`lorafair.run.paired.write_roles`): per study, one
entry per declared metric ``{"role", "direction", "ideal", "unit", "paired", "doc"}`` and, under the
reserved key :data:`lorafair.run.layout.STUDY_KEY` (``"_study"``), the study itself: ``{"title": str, "description": str,
"headline": [metric, ...]}``. The report never imports a study module and keeps no table of its own.

A run directory may lack parts of that (a run made before lorafair wrote them, or rows added to
metrics.csv by hand). The defaults, also in ``docs/report.md``, are explicit and the report says when
it used one:

- no ``_study`` entry, or no ``headline`` in it: the headline metrics are the study's declared metrics
  that metrics.csv has rows of, in declared order;
- when that leaves no metric (no declared metric, or none of the headline measured): every metric of
  the study in metrics.csv except the derived ``capture_*`` / ``delta_*`` rows;
- no ``description``: no description line; no ``title``: the study name;
- a metric without an entry: role ``diagnostic``, better direction and ideal unknown (so it is never a
  capture target and no recommendation is made from a guess).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

DERIVED_PREFIXES = ("capture_", "delta_")  # rows the runner derives from others (lorafair.run.paired)


@dataclass(frozen=True)
class StudyMeta:
    name: str
    headline: tuple[str, ...]  # metric names shown in the table and plotted against rank, in order
    roles: dict = field(default_factory=dict)  # metric -> {"role", "direction", "ideal", "unit", "doc", ...}
    title: str = ""  # "" = the study name
    description: str = ""  # one line under the section heading ("" = none)
    headline_declared: bool = True  # False: the run directory names no headline; the default was used

    @property
    def declared(self) -> bool:
        """Whether the run directory declares any metric of this study (metric_roles.json)."""
        return bool(self.roles)

    @property
    def heading(self) -> str:
        return self.title or self.name

    def direction(self, metric: str) -> Optional[str]:
        """"lower", "higher" or None (unknown, or only the ideal matters) for a metric's better direction."""
        d = (self.roles.get(metric) or {}).get("direction")
        return d if d in ("lower", "higher") else None

    def role(self, metric: str) -> str:
        r = self.roles.get(metric)
        return str(r.get("role", "diagnostic")) if r is not None else "diagnostic"

    def ideal(self, metric: str) -> Optional[float]:
        v = (self.roles.get(metric) or {}).get("ideal")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def unit(self, metric: str) -> str:
        """The item set the metric is computed on (prompts, pairs, …), "" when not declared."""
        return str((self.roles.get(metric) or {}).get("unit") or "")

    def metric_doc(self, metric: str) -> str:
        return str((self.roles.get(metric) or {}).get("doc") or "")

    def with_role(self, role: str) -> list[str]:
        """Metrics of this role, headline order first, then the others the study declares."""
        names = list(self.headline) + [m for m in self.roles if m not in self.headline]
        return [m for m in names if self.role(m) == role]


def is_derived(metric: str) -> bool:
    """Rows the runner derives from others (paired capture ratios and differences from base)."""
    return metric.startswith(DERIVED_PREFIXES)


def study_meta(name: str, metrics_in_run: list[str], roles: Optional[dict] = None,
               study: Optional[dict] = None) -> StudyMeta:
    """The metadata of study ``name`` from the run directory.

    ``metrics_in_run``: the study's metric names in metrics.csv, in file order; ``roles``: its metric
    entries of metric_roles.json (metric -> dict); ``study``: its ``_study`` entry (already checked by
    :func:`lorafair.report.load.load_run`: ``title`` / ``description`` strings, ``headline`` a list of
    strings, each optional). Missing parts take the defaults of the module docstring.
    """
    roles = {m: r for m, r in (roles or {}).items() if isinstance(r, dict)}
    study = study or {}
    present = set(metrics_in_run)
    declared_headline = study.get("headline")
    if declared_headline is not None:
        headline = tuple(m for m in declared_headline if m in present)
    else:  # the run names no headline: the declared metrics it measured
        headline = tuple(m for m in roles if m in present)
    if not headline:  # none of those measured, or none declared: every metric of the study
        headline = tuple(m for m in metrics_in_run if not is_derived(m))
    return StudyMeta(name, headline, roles, title=str(study.get("title") or ""),
                     description=str(study.get("description") or ""),
                     headline_declared=declared_headline is not None)
