"""Paired cross-variant rows: capture ratios and differences from base, from per-item values.

Each study saves, next to ``results/<study>.json``, the per-item values its metrics are computed from
(``results/<study>.items.npz``: for every item set ``<unit>/ids`` and ``<unit>/col/<name>``; plain
arrays, read with ``allow_pickle=False``). Once every variant of a seed is evaluated, for every
metric a study declares with a per-item statistic (:class:`lorafair.studies.base.MetricSpec`):

- ``delta_<m>``: m(v) − m(base), paired bootstrap interval, for target and guard metrics, every variant
  but base;
- ``capture_<m>``: (m(base) − m(v)) / (m(base) − m(full)) (distance to the ideal where the metric has
  one), paired bootstrap interval, for target metrics, every variant but base and full. Undefined
  rows have an empty value and say why in ``note``.

The rows go to ``RUN/extra_metrics/paired-<study>.json`` and from there into metrics.csv, with the same
study name. ``RUN/metric_roles.json`` records every study's declared metrics (role, direction, ideal)
so the report reads them from the run directory.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable, Optional

import numpy as np

from lorafair.atomic import atomic_write_bytes, atomic_write_json
from lorafair.run.layout import STUDY_KEY, RunLayout, items_name
from lorafair.stats.paired import align, capture_from_draws, delta_from_draws, paired_draws
from lorafair.studies.base import ItemSet, MetricSpec, headline_metrics, metric_specs



def items_path(results_dir: Path, study: str) -> Path:
    """The per-item values file of ``study`` in a variant's ``results/`` folder."""
    return Path(results_dir) / items_name(study)


def save_items(results_dir: Path, study: str, items: dict[str, ItemSet]) -> Optional[Path]:
    """Write a study's item sets atomically (nothing when it has none)."""
    if not items:
        return None
    import io

    arrays = {}
    for unit, s in items.items():
        if "/" in unit:
            raise ValueError(f"item set name {unit!r} must not contain '/'")
        arrays[f"{unit}/ids"] = np.array(s.ids, dtype=np.str_)
        for k, v in s.columns.items():
            arrays[f"{unit}/col/{k}"] = np.asarray(v, dtype=np.float64)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    path = items_path(results_dir, study)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_items(path: Path) -> dict[str, tuple[list[str], dict[str, np.ndarray]]]:
    """Item sets of one study and variant: unit -> (ids, columns)."""
    out: dict[str, tuple[list[str], dict[str, np.ndarray]]] = {}
    with np.load(path, allow_pickle=False) as z:
        for key in z.files:
            unit, kind, *rest = key.split("/")
            ids, cols = out.setdefault(unit, ([], {}))
            if kind == "ids":
                ids.extend(str(x) for x in z[key].tolist())
            elif kind == "col" and rest:
                cols["/".join(rest)] = np.asarray(z[key], dtype=np.float64)
    return out


def _row(v, seed, study, metric, value, lo, hi, n, note="") -> dict:
    def clean(x):
        return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)

    return {"variant": v["name"], "method": v["method"], "rank": v.get("rank"), "seed": seed, "study": study,
            "metric": metric, "group": "", "value": clean(value), "ci_low": clean(lo), "ci_high": clean(hi),
            "n": n, "note": note}


def paired_rows(study: str, specs: Iterable[MetricSpec], by_variant: dict[str, tuple[dict, dict]], seed: int, *,
                n_boot: int = 2000, level: float = 0.95) -> list[dict]:
    """Rows for one study and seed. ``by_variant``: variant name -> (variant dict with name/method/rank,
    item sets as from :func:`load_items`). Needs the ``base`` variant; capture also needs ``full``."""
    rows: list[dict] = []
    if "base" not in by_variant:
        return rows
    specs = [s for s in specs if s.stat is not None and s.role in ("target", "guard")]
    for spec in specs:
        base_items = by_variant["base"][1].get(spec.unit)
        if base_items is None:
            continue
        full_items = by_variant.get("full", (None, {}))[1].get(spec.unit)
        for name, (vinfo, items) in by_variant.items():
            if name == "base" or spec.unit not in items:
                continue
            sets = [base_items, items[spec.unit]] + ([full_items] if full_items is not None else [])
            ids, cols = align(sets)
            n = len(ids)
            if n == 0:
                rows.append(_row(vinfo, seed, study, f"delta_{spec.name}", None, None, None, 0, "undefined: no items shared with base"))
                continue
            points, draws = paired_draws(spec.stat, cols, n_boot=n_boot, seed=seed)
            d, lo, hi = delta_from_draws(points[0], points[1], draws[0], draws[1], level=level)
            note = "" if math.isfinite(d) else "undefined: the metric is undefined for " + (
                "base" if not math.isfinite(points[0]) else "this variant")
            rows.append(_row(vinfo, seed, study, f"delta_{spec.name}", d if not note else None, lo, hi, n, note))
            if spec.role != "target" or name == "full" or full_items is None:
                continue
            cap = capture_from_draws(points, draws, ideal=spec.ideal, level=level, n=n)
            rows.append(_row(vinfo, seed, study, f"capture_{spec.name}", cap.value if cap.defined else None,
                             cap.ci_low if cap.defined else None, cap.ci_high if cap.defined else None, n,
                             "" if cap.defined else f"undefined: {cap.reason}"))
    return rows


def write_paired_rows(run_dir: Path | RunLayout, study: str, study_cls, variants: list[dict], seeds: list[int], *,
                      n_boot: int = 2000, config=None) -> Optional[Path]:
    """Compute and write ``extra_metrics/paired-<study>.json`` from the saved item files (``config``: the study's,
    for a study whose metrics depend on it)."""
    specs = list(metric_specs(study_cls, config).values())
    if not any(s.stat is not None for s in specs):
        return None
    layout = RunLayout.of(run_dir)
    rows: list[dict] = []
    for seed in seeds:
        by_variant = {}
        for v in variants:
            p = layout.items_npz(v["name"], seed, study)
            if p.is_file():
                by_variant[v["name"]] = (v, load_items(p))
        rows += paired_rows(study, specs, by_variant, seed, n_boot=n_boot)
    path = layout.paired_metrics(study)
    atomic_write_json(path, {"study": study, "kind": "paired", "n_boot": n_boot, "rows": rows})
    return path


def study_entry(name: str, cls: type, config=None) -> dict:
    """Title (the class's ``title`` or its name), the first line of its docstring, its headline metrics."""
    doc = ((cls.__doc__ or "").strip().splitlines() or [""])[0]
    return {"title": getattr(cls, "title", name), "description": doc, "headline": list(headline_metrics(cls, config))}


def write_roles(run_dir: Path | RunLayout, studies: dict[str, type], configs: Optional[dict] = None) -> Path:
    """``RUN/metric_roles.json``: every study's declared metrics (role, direction, ideal, unit, doc) and, under
    the reserved key ``_study``, the study's own entry (title, one-line description, headline metrics), so
    the report reads what it shows from the run directory, never from the study classes."""
    configs = configs or {}
    data = {name: {STUDY_KEY: study_entry(name, cls, configs.get(name)),
                   **{m: s.meta() for m, s in metric_specs(cls, configs.get(name)).items()}}
            for name, cls in studies.items()}
    path = RunLayout.of(run_dir).metric_roles_json
    atomic_write_json(path, data)
    return path

