"""Tolerant readers for the shift study's artifacts, whose exact layout belongs to that study.

- ``shift_layers.json`` (per variant): per-layer logit-lens quantities. Accepted shapes: a list
  of per-layer dicts (``[{"layer": 0, "kl_to_final": …, "toxic_mass": …}, …]``), a dict of
  per-layer lists (``{"layer": [...], "kl_to_final": [...]}``), either of those under a key such
  as ``"layers"`` or nested one level deeper (``{"eval": {"kl_to_final": [...]}}`` becomes
  ``eval/kl_to_final``).
- ``spectrum.json`` (run): energy captured by rank r of the full update ΔW. Any dict with an
  ``energy`` entry (a ``{rank: fraction}`` dict or a list, with ``ranks`` beside it) is a
  curve; a ``singular_values`` list is turned into one (Σ_{i≤r} σ_i² / Σ σ_i²).

Anything else yields nothing, and the report says the file had no drawable content.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

_LAYER_KEYS = ("layer", "layers", "index", "layer_index")


def _num(x: Any) -> Optional[float]:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x)


def _numeric_list(v: Any) -> Optional[list[float]]:
    if isinstance(v, list) and v and all(_num(x) is not None or x is None for x in v):
        return [float("nan") if x is None else float(x) for x in v]
    return None


def per_layer_quantities(obj: Any, _depth: int = 0) -> tuple[list[str], dict[str, list[float]]]:
    """(layer labels, {quantity: value per layer}) from a shift_layers.json object; ({}, []) if none."""
    if _depth > 2 or obj is None:
        return [], {}
    if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
        keys = [k for k in obj[0] if k not in _LAYER_KEYS and _num(obj[0][k]) is not None]
        qs = {k: [(_num(d.get(k)) if _num(d.get(k)) is not None else float("nan")) for d in obj] for k in keys}
        labels = [str(d.get("layer", d.get("index", i))) for i, d in enumerate(obj)]
        return (labels, qs) if qs else ([], {})
    if isinstance(obj, dict):
        for k in ("layers", "per_layer", "logit_lens", "lens"):
            if k in obj and isinstance(obj[k], list) and obj[k] and isinstance(obj[k][0], dict):
                return per_layer_quantities(obj[k], _depth + 1)
        labels: list[str] = []
        qs: dict[str, list[float]] = {}
        for k, v in obj.items():
            lst = _numeric_list(v)
            if lst is not None:
                if k in _LAYER_KEYS:
                    labels = [str(int(x)) if float(x).is_integer() else str(x) for x in lst]
                else:
                    qs[k] = lst
            elif isinstance(v, (dict, list)):
                sub_labels, sub = per_layer_quantities(v, _depth + 1)
                for sk, sv in sub.items():
                    qs[f"{k}/{sk}"] = sv
                if sub_labels and not labels:
                    labels = sub_labels
        if not qs:
            return [], {}
        n = max(len(v) for v in qs.values())
        if len(labels) != n:
            labels = [str(i) for i in range(n)]
        return labels, qs
    return [], {}


def _curve_from(d: dict) -> Optional[tuple[list[float], list[float]]]:
    e = d.get("energy", d.get("energy_captured"))
    if isinstance(e, dict):
        pts = []
        for k, v in e.items():
            try:
                r = float(k)
            except (TypeError, ValueError):
                continue
            if _num(v) is not None and not math.isnan(float(v)):
                pts.append((r, float(v)))
        pts.sort()
        return ([p[0] for p in pts], [p[1] for p in pts]) if pts else None
    lst = _numeric_list(e)
    if lst is not None:
        ranks = _numeric_list(d.get("ranks") or d.get("rank"))
        xs = ranks if ranks is not None and len(ranks) == len(lst) else [float(i + 1) for i in range(len(lst))]
        return xs, lst
    sv = _numeric_list(d.get("singular_values"))
    if sv is not None:
        s2 = np.sort(np.asarray(sv) ** 2)[::-1]
        tot = s2.sum()
        if tot > 0:
            cum = np.cumsum(s2) / tot
            return [float(i + 1) for i in range(len(cum))], [float(x) for x in cum]
    return None


def energy_curves(obj: Any) -> list[tuple[str, list[float], list[float]]]:
    """(label, ranks, energy fractions) curves from spectrum.json, most aggregated first.

    Preference: per-module-type summaries (``by_type``) when present, plus a "mean over
    modules" curve computed from the per-module curves (or given as ``mean``/``overall``);
    otherwise every curve found.
    """
    found: list[tuple[str, list[float], list[float]]] = []

    def walk(node: Any, path: str, depth: int) -> None:
        if depth > 5:
            return
        if isinstance(node, dict):
            c = _curve_from(node)
            if c is not None:
                label = str(node.get("name") or node.get("module") or path or "ΔW")
                found.append((label if node.get("name") else (path or "ΔW"), c[0], c[1]))
                return
            for k, v in node.items():
                walk(v, f"{path}/{k}" if path else str(k), depth + 1)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{path}[{i}]", depth + 1)

    walk(obj, "", 0)
    if not found:
        return []
    by_type = [(lbl.split("/")[-1], xs, ys) for lbl, xs, ys in found if "by_type/" in lbl]
    explicit_mean = [(lbl, xs, ys) for lbl, xs, ys in found if lbl.split("/")[-1] in ("mean", "overall", "all")]
    modules = [c for c in found if "by_type/" not in c[0] and "by_layer/" not in c[0] and c not in explicit_mean]
    mean = None
    if explicit_mean:
        mean = ("mean over modules", explicit_mean[0][1], explicit_mean[0][2])
    elif len(modules) > 1 and all(m[1] == modules[0][1] for m in modules):
        arr = np.asarray([m[2] for m in modules], dtype=float)
        mean = ("mean over modules", modules[0][1], [float(x) for x in np.nanmean(arr, axis=0)])
    if by_type:
        return ([mean] if mean else []) + by_type
    if len(modules) == 1 and not mean:
        return modules
    return ([mean] if mean else []) + modules
