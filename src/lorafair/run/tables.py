"""``metrics.csv`` (tidy, one row per number) and ``summary.md``, rebuilt from the per-variant results."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from lorafair.atomic import atomic_write_text
from lorafair.run import layout as L
from lorafair.run.layout import RunLayout

COLUMNS = list(L.COLUMNS)


def collect_rows(run_dir: Path | RunLayout) -> list[dict]:
    """Every metric row of every finished evaluation under ``run_dir``, in ladder order."""
    layout = RunLayout.of(run_dir)
    rows = []
    for res in layout.result_files():
        data = json.loads(res.read_text(encoding="utf-8"))
        v = data["variant"]
        for m in data["metrics"]:
            rows.append({
                "variant": v["name"], "method": v["method"], "rank": v.get("rank"), "seed": data["seed"],
                "study": data["study"], "metric": m["metric"], "group": m.get("group", ""), "value": m["value"],
                "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high"), "n": m.get("n"), "note": m.get("note", ""),
            })
    for extra in layout.extra_metric_files():
        rows += json.loads(extra.read_text(encoding="utf-8"))["rows"]
    rows += failed_rows(layout)
    order = {"base": 0, "full": 1}
    rows.sort(key=lambda r: (order.get(r["method"], 3 if r["method"] == "policy" else 2), r["method"], r["rank"] or 0,
                             r["variant"], r["seed"], r["study"], r["metric"], r["group"] or ""))
    return rows


def failed_rows(run_dir: Path | RunLayout) -> list[dict]:
    """One row per variant whose training failed (``train.json`` with ``"status": "failed"``): study
    ``train``, metric ``status``, no value, note ``failed: <reason>`` (e.g. ``failed: loss not finite at
    step 3 (lr 1000)``), so metrics.csv and summary.md say why the variant has no results."""
    rows = []
    for marker in RunLayout.of(run_dir).train_markers():
        try:
            t = json.loads(marker.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(t, dict) or t.get("status") != "failed":
            continue
        v = t.get("variant") or {}
        rows.append({
            "variant": v.get("name", _folder_variant(marker.parent.name)), "method": v.get("method", ""),
            "rank": v.get("rank"), "seed": t.get("seed", 0), "study": L.TRAIN_STATUS, "metric": "status", "group": "",
            "value": None, "ci_low": None, "ci_high": None, "n": None, "note": f"failed: {t.get('reason', 'training failed')}",
        })
    return rows


def _folder_variant(folder: str) -> str:
    """The variant of a folder name (``lora-r8-s0`` -> ``lora-r8``), for a marker that does not say."""
    parsed = L.parse_folder(folder)
    return parsed[0] if parsed is not None else folder.rsplit("-s", 1)[0]


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if isinstance(x, float):
        return f"{x:.6g}"
    return str(x)


def write_metrics_csv(run_dir: Path | RunLayout, rows: list[dict]) -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        # the strategy of a variant is the suffix of its name (lora-r8+cfreg): "" for plain fine-tuning
        w.writerow({k: _fmt(r.get(k)) for k in COLUMNS} | {"strategy": r.get("strategy") or L.split_strategy(r["variant"])[1]})
    path = RunLayout.of(run_dir).metrics_csv
    atomic_write_text(path, buf.getvalue())
    return path


def _cell(r: dict) -> str:
    v = r["value"]
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return r.get("note") or "n/a"
    s = f"{v:.4g}"
    lo, hi = r.get("ci_low"), r.get("ci_high")
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.3g}, {hi:.3g}]"
    return s


def summary_markdown(rows: list[dict], headline: dict[str, tuple[str, ...]]) -> str:
    """One table: variants as rows, each study's headline metrics (overall group) as columns.
    Cells are value [95% CI]; seeds are shown as separate rows."""
    cols: list[tuple[str, str]] = []
    for study in dict.fromkeys(r["study"] for r in rows):
        names = headline.get(study) or tuple(dict.fromkeys(r["metric"] for r in rows if r["study"] == study))[:4]
        present = {r["metric"] for r in rows if r["study"] == study and r["group"] == ""}
        cols += [(study, m) for m in names if m in present]
    keys = list(dict.fromkeys((r["variant"], r["seed"]) for r in rows))
    table = {(r["variant"], r["seed"], r["study"], r["metric"]): r for r in rows if r["group"] == ""}
    head = "| variant | seed | " + " | ".join(f"{s}: {m}" for s, m in cols) + " |"
    sep = "|---|---|" + "---|" * len(cols)
    lines = [head, sep]
    for v, s in keys:
        cells = [_cell(table[(v, s, st, m)]) if (v, s, st, m) in table else "" for st, m in cols]
        lines.append(f"| {v} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
