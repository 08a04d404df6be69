"""What the report knows about a study: its headline metrics, their roles, directions and ideals.

Roles (``target``, ``guard``, ``diagnostic``), directions and ideal values come, in order of
preference, from the run directory's ``metric_roles.json`` (written by the runner from the
studies' declared :class:`~lorafair.studies.base.MetricSpec`), from the study's class in the
:data:`lorafair.studies.base.STUDIES` registry, or — for a study whose module is missing or a run
made by another version — a fallback: every overall metric is a headline, direction and role
unknown (no capture target, so no recommendation is made from guesses).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Optional


@dataclass(frozen=True)
class StudyMeta:
    name: str
    headline: tuple[str, ...]  # metric names plotted against rank, in the study's order
    lower_is_better: frozenset[str]
    from_registry: bool  # False: the fallback (all metrics, direction unknown)
    doc: str = ""
    roles: dict = field(default_factory=dict)  # metric -> {"role", "direction", "ideal", ...}

    def direction(self, metric: str) -> Optional[str]:
        """"lower", "higher" or None (unknown / only the ideal matters) for a metric's better direction."""
        r = self.roles.get(metric)
        if r is not None:
            d = r.get("direction")
            return d if d in ("lower", "higher") else None
        if metric in self.lower_is_better:
            return "lower"
        if self.from_registry:
            return "higher"
        return None

    def role(self, metric: str) -> str:
        r = self.roles.get(metric)
        return str(r.get("role", "diagnostic")) if r is not None else "diagnostic"

    def ideal(self, metric: str) -> Optional[float]:
        r = self.roles.get(metric) or {}
        v = r.get("ideal")
        return float(v) if isinstance(v, (int, float)) else None

    def with_role(self, role: str) -> list[str]:
        """Metrics of this role, headline order first, then the others the study declares."""
        names = list(self.headline) + [m for m in self.roles if m not in self.headline]
        return [m for m in names if self.role(m) == role]


def study_meta(name: str, metrics_in_run: list[str], roles: Optional[dict] = None) -> StudyMeta:
    """Headline metrics of ``name`` restricted to those present in the run, with a fallback.

    ``roles``: the run directory's ``metric_roles.json`` entry for this study, when it has one.
    """
    cls = None
    try:
        from lorafair.studies.base import STUDIES

        if name not in STUDIES:
            importlib.import_module(f"lorafair.studies.{name}")
        cls = STUDIES.get(name) if name in STUDIES else None
    except Exception:  # a missing or broken study module must never break the report
        cls = None
    if not roles and cls is not None:
        try:
            from lorafair.studies.base import metric_specs

            roles = {m: s.meta() for m, s in metric_specs(cls).items()}
        except Exception:  # noqa: BLE001
            roles = {}
    roles = {m: r for m, r in (roles or {}).items() if isinstance(r, dict)}
    if cls is not None:
        headline = tuple(m for m in (getattr(cls, "headline", ()) or ()) if m in metrics_in_run)
        lower = frozenset(getattr(cls, "lower_is_better", frozenset()) or ())
        doc = ((getattr(cls, "__doc__", None) or "").strip().splitlines() or [""])[0]
        return StudyMeta(name, headline or tuple(m for m in metrics_in_run if not _derived(m)), lower, True, doc, roles)
    return StudyMeta(name, tuple(m for m in metrics_in_run if not _derived(m)), frozenset(), False, "", roles)


def _derived(metric: str) -> bool:
    """Rows the runner derives from others (paired capture ratios and differences from base)."""
    return metric.startswith(("capture_", "delta_"))
