"""The parts of a run's report that belong to no study: the header, the rank recommendation and the notes.

The header reads only keys that lorafair writes: ``run_info.json`` (:func:`lorafair.run.info.run_info`:
name, recipe, model, data, seeds, studies, finished, wall_time_s, hardware, versions, training, eval_precision,
mixed_adapters) and the
resolved ``config.yaml`` (:class:`lorafair.config.schema.RunConfig`: name, model, data, train, …), the
config standing in where run_info.json is absent.
"""

from __future__ import annotations

from typing import Any

from lorafair.report.context import ReportContext
from lorafair.report.doc import Block, Callout, Details, Heading, KeyValues, Para, Pre, Table


def header(ctx: ReportContext) -> list[Block]:
    run, info, cfg = ctx.run, ctx.run.run_info, ctx.run.config
    items: list[tuple[str, str]] = []

    def add(label: str, *values: Any) -> None:
        for v in values:
            if v not in (None, "", [], {}):
                items.append((label, compact(v)))
                return

    add("model", info.get("model"), cfg.get("model"))
    add("data", info.get("data"), cfg.get("data"))
    add("recipe", info.get("recipe"), cfg.get("name"))
    add("training", cfg.get("train"))
    seeds = run.seeds()
    add("seeds", ", ".join(str(s) for s in seeds) + (" (metrics are pooled over seeds)" if len(seeds) > 1 else ""))
    add("variants", ", ".join(run.variants()))
    add("studies", ", ".join(run.studies()))
    strategies = cfg.get("strategies") if isinstance(cfg.get("strategies"), dict) else {}
    add("strategies", "; ".join(f"{k}: {compact(v, 160)}" for k, v in strategies.items()))  # what each instance is
    add("hardware", info.get("hardware"))
    add("training precision", precisions(info.get("training")))
    add("evaluation precision", eval_precisions(info.get("eval_precision")))
    add("mixed-adapter batches", mixed_batches(info.get("mixed_adapters")))
    add("library versions", info.get("versions"))
    wall = info.get("wall_time_s")
    add("wall time", duration(wall) if isinstance(wall, (int, float)) else wall)
    add("created", info.get("finished"))
    if not info:
        items.append(("run_info.json", "absent: model, hardware and timing unknown"))
    blocks: list[Block] = [
        Heading(1, f"lorafair report — {run.name}"),
        Para("Did the low-rank fine-tunes learn the shift that full fine-tuning learned? Every number is the "
             "value with its 95% interval [low, high] and the number of items n behind it.", "lead"),
        KeyValues(items),
    ]
    if run.config_text:
        blocks.append(Details("resolved config (config.yaml)", [Pre(run.config_text)]))
    return blocks


def precisions(training: Any) -> str:
    """'bf16 (full-s0, lora-r1-s0), fp32 (…)': the precision each variant trained in (run_info.json)."""
    if not isinstance(training, dict):
        return ""
    by: dict[str, list[str]] = {}
    for name, rec in training.items():
        if isinstance(rec, dict) and isinstance(rec.get("precision"), str):
            by.setdefault(rec["precision"], []).append(str(name))
    return "; ".join(f"{p}: {', '.join(sorted(v))}" for p, v in sorted(by.items()))


def eval_precisions(per_study: Any) -> str:
    """'stereotypes: score bf16, sample fp32; …' from run_info.json's eval_precision."""
    if not isinstance(per_study, dict):
        return ""
    parts = []
    for study, ops in per_study.items():
        if isinstance(ops, dict):
            parts.append(f"{study}: " + ", ".join(f"{op} {p}" for op, p in ops.items()))
    return "; ".join(parts)


def mixed_batches(per_seed: Any) -> str:
    """'seed 0: base, lora-r1, lora-r4 (stereotypes, toxicity)': the variants this run evaluated together in
    mixed-adapter batches, per seed (run_info.json's mixed_adapters; empty when none)."""
    if not isinstance(per_seed, dict):
        return ""
    parts = []
    for seed, rec in per_seed.items():
        if isinstance(rec, dict) and isinstance(rec.get("variants"), list):
            studies = rec.get("studies") if isinstance(rec.get("studies"), list) else []
            parts.append(f"seed {seed}: {', '.join(map(str, rec['variants']))}"
                         + (f" ({', '.join(map(str, studies))})" if studies else ""))
    return "; ".join(parts)


def recommendation(ctx: ReportContext) -> list[Block]:
    ctx.toc.append(("recommendation", "Rank recommendation"))
    blocks: list[Block] = [Heading(2, "Rank recommendation", "recommendation")]
    failed = ctx.run.failed()
    if failed:
        blocks.append(Callout("Variants whose training failed", [
            "These variants have no results (their studies were skipped); the recommendation is made from the "
            "others: " + "; ".join(f"{v} (seed {s}): {note or 'failed'}" for v, s, note in failed) + "."],
            "not_reached"))
    if not ctx.recs:
        blocks.append(Callout("No ranked variants", [
            "This run has no LoRA (or other ranked) variants, so no rank can be recommended; "
            "the sections below compare base and full only."], "info"))
        return blocks
    for rec in ctx.recs.get("overall", []):
        title = (f"{rec.method}: r={rec.rank} (all studies)" if rec.rank is not None
                 else f"{rec.method}: {status_word(rec.status)} (all studies)")
        blocks.append(Callout(title, [rec.text], rec.status))
    rows = []
    for study in ctx.run.studies():
        for rec in ctx.recs.get(study, []):
            rows.append([study, rec.method, f"r={rec.rank}" if rec.rank is not None else status_word(rec.status),
                         rec.text])
    if rows:
        blocks.append(Table(["study", "method", "recommended rank", "why"], rows, wrap_last=True,
                            caption=f"Per study. A rank reaches a target metric when its paired capture interval "
                                    f"lies within [{ctx.target:g}, {2 - ctx.target:g}]; the recommendation is the "
                                    "smallest rank that reaches every defined target metric."))
    blocks += strategy_recommendation(ctx)
    blocks.append(Para(
        "Capture ratio of a variant v for a target metric m: (m(base) − m(v)) / (m(base) − m(full)), with the "
        "distance to the ideal in place of m where the metric has an ideal value (SS 50, a bias score 0); 1 = "
        "moved as far as full fine-tuning, 0 = not at all, above 1 = further than full (overshoot). Every "
        "variant is evaluated on the same items with common random numbers, so the 95% interval is a paired "
        "bootstrap over those items (computed by the runner from the per-item values, capture_<m> rows of "
        "metrics.csv). It is undefined when the paired interval of m(base) − m(full) contains 0. Guard metrics "
        "(fluency, task accuracy) are not capture targets: a guard is broken when the paired interval of "
        "m(v) − m(base) lies on its worse side.", "note"))
    return blocks


def strategy_recommendation(ctx: ReportContext) -> list[Block]:
    """Per strategy (lora-r8+cfreg …), the smallest rank of its own ladder that reaches the targets, next to plain
    fine-tuning's (whose recommendation above never reads strategy variants)."""
    srecs = ctx.strategy_recs
    if not srecs:
        return []
    plain = {r.method: r for r in ctx.recs.get("overall", [])}
    rows = [[rec.label, rank_word(rec), rank_word(plain[rec.method]) if rec.method in plain else "–", rec.text]
            for rec in srecs.get("overall", [])]
    if not rows:
        return []
    return [Heading(3, "Per strategy"),
            Table(["ladder", "recommended rank (all studies)", "plain", "why"], rows, wrap_last=True,
                  caption=f"Each strategy crossed with the rank ladder, by the same rules (each study's section has "
                          f"its own): the smallest rank of "
                          f"<method>-r<rank>+<strategy> whose paired capture interval lies within [{ctx.target:g}, "
                          f"{2 - ctx.target:g}] on every defined target metric. Its capture is measured against the "
                          "same base and the same plain full fine-tuning, so a smaller rank than plain's means the "
                          "strategy needs less rank to move as far as full fine-tuning did.")]


def rank_word(rec) -> str:
    """``r=8``, or why there is no rank."""
    return f"r={rec.rank}" if rec.rank is not None else status_word(rec.status)


def notes(ctx: ReportContext) -> list[Block]:
    """What the loader skipped or could not read, named (never silently left out)."""
    if not ctx.run.notes:
        return []
    ctx.toc.append(("notes", "Notes"))
    return [Heading(2, "Notes", "notes")] + [Para(n, "note") for n in ctx.run.notes]


def status_word(status: str) -> str:
    return {"not_reached": "no rank reaches the target", "undefined": "undefined",
            "no_ranks": "no ranked variants"}.get(status, status)


def compact(v: Any, limit: int = 400) -> str:
    """A config value as one readable line."""
    if isinstance(v, dict):
        s = ", ".join(f"{k}={compact(x, 120)}" for k, x in v.items())
    elif isinstance(v, (list, tuple)):
        s = ", ".join(compact(x, 120) for x in v)
    else:
        s = str(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else (f"{m} min {sec:02d} s" if m else f"{seconds:.1f} s")
