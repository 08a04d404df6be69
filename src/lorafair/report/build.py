"""Assemble the report of one run as blocks (see :mod:`.doc`): header, recommendation, one
section per study, examples, notes. Generic over studies: everything is driven by the
(study, metric, group) rows of metrics.csv; the shift, decisions and toxicity studies get extra
figures when their artifact files exist.
"""

from __future__ import annotations

import math
import re
from typing import Any, Optional

import numpy as np

from lorafair.report import plots
from lorafair.report.artifacts import energy_curves, per_layer_quantities
from lorafair.report.doc import (Block, Callout, Details, Example, Figure, FigureRow, Heading, KeyValues, Para, Pre,
                                 Table, fmt, fmt_est)
from lorafair.report.load import Estimate, RunData
from lorafair.report.recommend import capture_table, recommend, study_is_flat
from lorafair.report.study_meta import StudyMeta, study_meta
from lorafair.report.style import CYCLE, OKABE_ITO, SERIES_COLORS, method_color

CONTENT_WARNING = ("Content warning: these are unfiltered model generations for prompts chosen to elicit "
                   "toxic or stereotyped text. They may be offensive.")
N_EXAMPLES = 5


def _slug(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-") or "x"


class ReportBuilder:
    """Builds the blocks of one run's report; figures get unique names for plots/."""

    def __init__(self, run: RunData, target: float = 0.9):
        self.run = run
        self.target = target
        self.metas: dict[str, StudyMeta] = {s: study_meta(s, run.metrics(s), run.roles.get(s)) for s in run.studies()}
        self.recs = recommend(run, self.metas, target) if run.ranked_methods() else {}
        self._names: set[str] = set()
        self.toc: list[tuple[str, str]] = []

    # -- helpers ------------------------------------------------------------------------------
    def _fig(self, name: str, png: bytes, caption: str) -> Figure:
        base = _slug(name)
        n, i = base, 2
        while n in self._names:
            n, i = f"{base}-{i}", i + 1
        self._names.add(n)
        return Figure(n, png, caption)

    def _main_method(self) -> Optional[str]:
        ms = self.run.ranked_methods()
        return ms[0] if ms else None

    def _series(self, study: str, metric: str, group: str = "") -> list[plots.Series]:
        out = []
        for i, method in enumerate(self.run.ranked_methods()):
            pts = [(r, e) for r in self.run.ranks(method)
                   if (e := self.run.estimate(study, metric, f"{method}-r{r}", group)) is not None]
            if pts:
                out.append(plots.Series(method, method_color(method, i), pts, plots_marker(i)))
        return out

    def _refs(self, study: str, metric: str, group: str = "") -> list[plots.Reference]:
        refs = []
        for name, style in (("base", ":"), ("full", "--")):
            e = self.run.estimate(study, metric, name, group)
            if e is not None:
                refs.append(plots.Reference(name, method_color(name), e, style))
        return refs

    # -- header -------------------------------------------------------------------------------
    def header(self) -> list[Block]:
        run, info, cfg = self.run, self.run.run_info, self.run.config
        items: list[tuple[str, str]] = []

        def add(label: str, *values: Any) -> None:
            for v in values:
                if v not in (None, "", [], {}):
                    items.append((label, _compact(v)))
                    return

        add("model", info.get("model"), cfg.get("model"))
        add("data", info.get("data"), cfg.get("data"), cfg.get("shift_data"), cfg.get("train_data"))
        add("recipe", info.get("recipe"), cfg.get("recipe"), cfg.get("name"))
        add("training", cfg.get("train"), cfg.get("training"), cfg.get("adapt"))
        seeds = run.seeds()
        add("seeds", ", ".join(str(s) for s in seeds) + (" (metrics are pooled over seeds)" if len(seeds) > 1 else ""))
        add("variants", ", ".join(run.variants()))
        add("studies", ", ".join(run.studies()))
        add("hardware", info.get("hardware"), info.get("device"))
        add("library versions", info.get("versions"), info.get("library_versions"), info.get("libraries"))
        wall = info.get("wall_time_s", info.get("wall_time"))
        add("wall time", _duration(wall) if isinstance(wall, (int, float)) else wall)
        add("created", info.get("finished"), info.get("created"), info.get("started"))
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

    # -- recommendation -----------------------------------------------------------------------
    def recommendation(self) -> list[Block]:
        self.toc.append(("recommendation", "Rank recommendation"))
        blocks: list[Block] = [Heading(2, "Rank recommendation", "recommendation")]
        failed = self.run.failed()
        if failed:
            blocks.append(Callout("Variants whose training failed", [
                "These variants have no results (their studies were skipped); the recommendation is made from the "
                "others: " + "; ".join(f"{v} (seed {s}): {note or 'failed'}" for v, s, note in failed) + "."],
                "not_reached"))
        if not self.recs:
            blocks.append(Callout("No ranked variants", [
                "This run has no LoRA (or other ranked) variants, so no rank can be recommended; "
                "the sections below compare base and full only."], "info"))
            return blocks
        for rec in self.recs.get("overall", []):
            title = (f"{rec.method}: r={rec.rank} (all studies)" if rec.rank is not None
                     else f"{rec.method}: {_status_word(rec.status)} (all studies)")
            blocks.append(Callout(title, [rec.text], rec.status))
        rows = []
        for study in self.run.studies():
            for rec in self.recs.get(study, []):
                rows.append([study, rec.method, f"r={rec.rank}" if rec.rank is not None else _status_word(rec.status),
                             rec.text])
        if rows:
            blocks.append(Table(["study", "method", "recommended rank", "why"], rows, wrap_last=True,
                                caption=f"Per study. A rank reaches a target metric when its paired capture interval "
                                        f"lies within [{self.target:g}, {2 - self.target:g}]; the recommendation is the "
                                        "smallest rank that reaches every defined target metric."))
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

    # -- one study ----------------------------------------------------------------------------
    def study_section(self, study: str) -> list[Block]:
        meta, run = self.metas[study], self.run
        anchor = f"study-{_slug(study)}"
        self.toc.append((anchor, study))
        blocks: list[Block] = [Heading(2, f"Study: {study}", anchor)]
        if meta.doc:
            blocks.append(Para(meta.doc))
        if not meta.from_registry:
            blocks.append(Para(f"The study module lorafair.studies.{study} could not be imported here, so every "
                               "metric is shown and better directions are unknown.", "note"))
        method0 = self._main_method()
        if method0 and study_is_flat(capture_table(run, meta, method0)):
            blocks.append(Callout("Base and full fine-tuning do not differ here", [
                "On no target metric of this study does full fine-tuning differ significantly from the base model "
                "(paired intervals), so there is no shift to capture: its numbers say nothing about which rank is "
                "enough."], "undefined"))
        for rec in self.recs.get(study, []):
            blocks.append(Callout(f"{rec.method}: " + (f"r={rec.rank}" if rec.rank is not None
                                                       else _status_word(rec.status)), [rec.text], rec.status))
        blocks += self._metric_table(study, meta)

        kl_metrics = [m for m in meta.headline if re.match(r"^(kl|js)_", m)] if study == "shift" else []
        figs: list[Figure] = []
        if kl_metrics and self._main_method():
            figs.append(self._kl_figure(study, kl_metrics))
        for metric in meta.headline:
            if metric in kl_metrics:
                continue
            direction = meta.direction(metric)
            png = plots.metric_vs_rank(self._series(study, metric), self._refs(study, metric), metric=metric,
                                       title=f"{study}: {metric.replace('_', ' ')}", direction=direction)
            figs.append(self._fig(f"{study}-{metric}", png, _vs_rank_caption(metric)))
        if figs:
            blocks.append(Heading(3, "Headline metrics against rank"))
            blocks.append(FigureRow(figs))

        method = self._main_method()
        if method:
            caps = capture_table(run, meta, method)
            curves = [(c.metric, [(r, cr.value, cr.ci_low, cr.ci_high) for r, cr in sorted(c.by_rank.items())
                                  if cr.defined])
                      for c in caps if c.defined and c.by_rank]
            undefined = [c for c in caps if not c.defined]
            if curves:
                png = plots.capture_vs_rank(curves, target=self.target, title=f"{study}: capture ratio ({method})")
                blocks.append(Heading(3, "Capture ratio against rank"))
                blocks.append(self._fig(f"{study}-capture", png,
                                        f"Paired capture ratio of each {method} rank for the target metrics of {study}, "
                                        f"with 95% intervals; 0 = base, 1 = full, dotted = the band "
                                        f"[{self.target:g}, {2 - self.target:g}] a rank must lie within."))
            if undefined:
                blocks.append(Para("Capture ratio undefined for: " + "; ".join(
                    f"{c.metric} ({c.undefined_reason})" for c in undefined) + ".", "note"))
        blocks += self._groups(study, meta)
        if study == "shift":
            blocks += self._shift_extras()
        if study == "decisions":
            blocks += self._decisions_extras()
        info = run.study_info(study)
        if info:
            blocks.append(Details(f"how the {study} numbers were obtained (results/{study}.json info)",
                                  [KeyValues([(k, _compact(v)) for k, v in info.items()])]))
        blocks.append(self._all_rows(study))
        return blocks

    def _metric_table(self, study: str, meta: StudyMeta) -> list[Block]:
        run = self.run
        metrics = list(meta.headline)
        headers = ["variant"] + [m + {"lower": " ↓", "higher": " ↑"}.get(meta.direction(m) or "", "")
                                 for m in metrics] + ["n"]
        rows = []
        for v in run.variants():
            ests = [run.estimate(study, m, v) for m in metrics]
            notes = [run.note(study, m, v) for m in metrics]
            if all(e is None for e in ests) and not any(notes):
                continue
            ns = sorted({e.n for e in ests if e is not None and e.n is not None})
            rows.append([v] + [fmt_est(e.value, e.ci_low, e.ci_high) if e else (nt or "–") for e, nt in zip(ests, notes)]
                        + ["/".join(str(n) for n in ns) or "–"])
        if not rows:
            return [Para("No overall (ungrouped) values of the headline metrics in metrics.csv.", "note")]
        roles = [meta.role(m) if meta.roles else "" for m in metrics]
        if any(roles):
            rows.append(["role"] + roles + [""])
        mdes = [self._detectable(study, m) for m in metrics]
        if any(x is not None for x in mdes):
            rows.append(["detectable Δ"] + [("±" + fmt(x)) if x is not None else "–" for x in mdes] + [""])
        seeds = run.seeds()
        cap = ("Headline metrics, overall: value [95% interval]; ↓ lower is better, ↑ higher is better"
               + (f"; mean over {len(seeds)} seeds, interval pooled over seeds (Student t)" if len(seeds) > 1 else "")
               + (". Role: target (what the fine-tune should change), guard (must not get worse), diagnostic."
                  if any(roles) else "")
               + (" Detectable Δ: the smallest change from base this run could detect (80% power, 5% level), from "
                  "the paired intervals of m(v) − m(base), median over variants; a smaller true change would "
                  "likely read as \"no difference\"." if any(x is not None for x in mdes) else ""))
        return [Table(headers, rows, caption=cap)]

    def _detectable(self, study: str, metric: str) -> Optional[float]:
        """Minimal detectable difference from base: (z_0.975 + z_0.8) · SE of the paired difference."""
        ses = []
        for v in self.run.variants():
            if v == "base":
                continue
            e = self.run.estimate(study, f"delta_{metric}", v)
            if e is not None and e.has_ci:
                ses.append(e.se)
        if not ses:
            return None
        return float(np.median(ses)) * (1.959963984540054 + 0.8416212335729143)

    def _kl_figure(self, study: str, kl_metrics: list[str]) -> Figure:
        method = self._main_method()
        series, refs = [], []
        for i, m in enumerate(kl_metrics):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            pts = [(r, e) for r in self.run.ranks(method)
                   if (e := self.run.estimate(study, m, f"{method}-r{r}")) is not None]
            if pts:
                series.append(plots.Series(m.replace("_", " "), color, pts, plots_marker(i)))
            for name, ls in (("base", ":"), ("full", "--")):
                e = self.run.estimate(study, m, name)
                if e is not None:
                    refs.append(plots.Reference(f"{name} · {m.replace('_', ' ')}", color, e, ls))
        png = plots.metric_vs_rank(series, refs, metric="KL divergence", unit="nats",
                                   title=f"{study}: KL divergence of next-token posteriors ({method})")
        return self._fig(f"{study}-kl", png, f"KL metrics of the shift study against {method} rank; horizontal "
                                             "lines: the same metric for base (dotted) and full (dashed), bands "
                                             "their 95% intervals.")

    def _groups(self, study: str, meta: StudyMeta) -> list[Block]:
        run, method = self.run, self._main_method()
        blocks: list[Block] = []
        for metric in meta.headline:
            groups = run.groups(study, metric)
            if len(groups) < 2:
                continue
            chosen = ["base"]
            if method:
                ranks = run.ranks(method)
                picks = sorted({ranks[0], ranks[len(ranks) // 2], ranks[-1]}) if ranks else []
                chosen += [f"{method}-r{r}" for r in picks]
            chosen.append("full")
            bars = []
            for i, v in enumerate(chosen):
                by_group = {g: e for g in groups if (e := run.estimate(study, metric, v, g)) is not None}
                if by_group:
                    color = method_color(v) if v in ("base", "full") else CYCLE[[0, 5, 2, 3][(i - 1) % 4]]
                    bars.append((v, color, by_group))
            figs = []
            if bars:
                png = plots.group_bars(groups, bars, metric=metric, title=f"{study}: {metric.replace('_', ' ')} by group",
                                       direction=meta.direction(metric))
                figs.append(self._fig(f"{study}-{metric}-groups", png,
                                      f"{metric} per group for base, full and low / middle / high {method or ''} ranks "
                                      "(error bars: 95% intervals)."))
            gap_series, gap_refs = [], []
            for i, m in enumerate(run.ranked_methods()):
                pts = [(r, g) for r in run.ranks(m) if (g := self._gap(study, metric, f"{m}-r{r}", groups)) is not None]
                if pts:
                    gap_series.append(plots.Series(m, method_color(m, i), pts, plots_marker(i)))
            for name, ls in (("base", ":"), ("full", "--")):
                g = self._gap(study, metric, name, groups)
                if g is not None:
                    gap_refs.append(plots.Reference(name, method_color(name), g, ls))
            if gap_series or gap_refs:
                png = plots.metric_vs_rank(gap_series, gap_refs, metric=f"{metric} gap (max − min over groups)",
                                           title=f"{study}: group gap in {metric.replace('_', ' ')}")
                figs.append(self._fig(f"{study}-{metric}-group-gap", png,
                                      f"Largest minus smallest group value of {metric} at each rank (a point value: "
                                      "no interval, it is computed here from the per-group values)."))
            if figs:
                if not blocks:
                    blocks.append(Heading(3, "Groups"))
                blocks.append(FigureRow(figs))
        return blocks

    def _gap(self, study: str, metric: str, variant: str, groups: list[str]) -> Optional[Estimate]:
        vals = [e.value for g in groups if (e := self.run.estimate(study, metric, variant, g)) is not None]
        if len(vals) < 2:
            return None
        return Estimate(max(vals) - min(vals))

    def _all_rows(self, study: str) -> Details:
        run = self.run
        rows = []
        for metric in run.metrics(study):
            for v in run.variants():
                for g in [""] + run.groups(study, metric):
                    e = run.estimate(study, metric, v, g)
                    if e is None:
                        continue
                    rows.append([v, metric, g or "(overall)", fmt(e.value),
                                 f"[{fmt(e.ci_low)}, {fmt(e.ci_high)}]" if e.has_ci else "–",
                                 str(e.n) if e.n is not None else "–", str(e.seeds)])
        return Details(f"all {study} metrics ({len(rows)} rows)",
                       [Table(["variant", "metric", "group", "value", "95% interval", "n", "seeds"], rows)])

    # -- shift extras -------------------------------------------------------------------------
    def _shift_extras(self) -> list[Block]:
        run = self.run
        blocks: list[Block] = []
        per_variant: dict[str, tuple[list[str], dict[str, list[float]]]] = {}
        for v in run.variants():
            a = run.artifact(v)
            if a is not None and a.shift_layers is not None:
                labels, qs = per_layer_quantities(a.shift_layers)
                if qs:
                    per_variant[v] = (labels, qs)
        if per_variant:
            quantities = list(dict.fromkeys(q for _, qs in per_variant.values() for q in qs))[:4]
            figs = []
            for q in quantities:
                rows = [v for v in run.variants() if v in per_variant and q in per_variant[v][1]]
                n = max(len(per_variant[v][1][q]) for v in rows)
                labels = next((per_variant[v][0] for v in rows if len(per_variant[v][0]) == n), [str(i) for i in range(n)])
                mat = np.full((len(rows), n), np.nan)
                for i, v in enumerate(rows):
                    vals = per_variant[v][1][q]
                    mat[i, :len(vals)] = vals
                png = plots.heatmap(mat, rows, labels, title=f"logit lens: {q.replace('_', ' ')}",
                                    cbar_label=q.replace("_", " "))
                figs.append(self._fig(f"logit-lens-{q}", png,
                                      f"Logit lens, {q} per layer (columns) and variant (rows), from each variant's "
                                      "shift_layers.json."))
            blocks += [Heading(3, "Logit lens (layer × variant)"), FigureRow(figs)]
        elif any(a.shift_layers is not None for a in run.artifacts.values()):
            blocks.append(Para("shift_layers.json present but holds no per-layer numbers the report can draw.", "note"))
        if run.spectrum is not None:
            curves = energy_curves(run.spectrum)
            if curves:
                ranks = run.ranks(self._main_method()) if self._main_method() else []
                png = plots.energy_curve(curves, ranks_tried=ranks, title="energy of the full update captured by rank r")
                blocks += [Heading(3, "Spectrum of the full update ΔW = W_full − W_base"),
                           self._fig("spectrum-energy", png,
                                     "Fraction of ‖ΔW‖²_F kept by the best rank-r approximation (Σ_{i≤r} σ_i² / Σ σ_i²), "
                                     "per module type and averaged over modules; a rank that keeps little energy "
                                     "cannot express the full update.")]
            else:
                blocks.append(Para("spectrum.json present but holds no energy curve the report can draw.", "note"))
        return blocks

    # -- decisions extras ---------------------------------------------------------------------
    def _decisions_extras(self) -> list[Block]:
        run = self.run
        method = self._main_method()
        chosen = ["base"]
        if method:
            ranks = [r for r in run.ranks(method) if (a := run.artifact(f"{method}-r{r}")) and a.trajectory]
            if len(ranks) > 4:
                idx = np.linspace(0, len(ranks) - 1, 4).round().astype(int)
                ranks = [ranks[i] for i in sorted(set(idx))]
            chosen += [f"{method}-r{r}" for r in ranks]
        chosen.append("full")
        palette = [OKABE_ITO[k] for k in ("sky_blue", "blue", "bluish_green", "reddish_purple")]
        trajs = []
        for i, v in enumerate(chosen):
            a = run.artifact(v)
            if a is None or not a.trajectory:
                continue
            color = method_color(v) if v in ("base", "full") else palette[(i - 1) % len(palette)]
            trajs.append((v, color, a.trajectory))
        if not trajs:
            return []
        png = plots.trajectories(trajs, title="decisions: per-round trajectories")
        return [Heading(3, "Trajectories over rounds"),
                self._fig("decisions-trajectories", png,
                          "Left: approval-rate gap between groups per round. Right: mean score of each group per "
                          "round (line style = group). Colours: variants (base black, full vermillion).")]

    # -- examples -----------------------------------------------------------------------------
    def examples(self) -> list[Block]:
        run = self.run
        with_samples = [v for v in run.variants() if (a := run.artifact(v)) and a.samples]
        if not with_samples:
            return []
        method = self._main_method()
        low = next((f"{method}-r{r}" for r in run.ranks(method) if f"{method}-r{r}" in with_samples), None) if method else None
        shown = [v for v in ("base", low, "full") if v and v in with_samples]
        by_variant = {v: _first_sample_per_prompt(run.artifact(v).samples) for v in shown}
        prompts = [p for p in by_variant[shown[0]] if all(p in by_variant[v] for v in shown)]
        if not prompts:
            return []

        def score(v, p):
            return _headline_score(by_variant[v][p].get("scores"))[1]

        if "base" in shown and "full" in shown:
            prompts.sort(key=lambda p: -abs(_nan0(score("base", p)) - _nan0(score("full", p))))
            rule = "the prompts where base and full differ most in score"
        else:
            rule = "the first prompts"
        ex_blocks: list[Block] = [Para(f"Showing {min(N_EXAMPLES, len(prompts))} of {len(prompts)} prompts: {rule}; "
                                       "the first sample of each variant. Score: the toxicity classifier's label and probability "
                                       "(the \"toxic\" label when there is one, else the highest).", "note")]
        for p in prompts[:N_EXAMPLES]:
            cells = []
            for v in shown:
                s = by_variant[v][p]
                label, val = _headline_score(s.get("scores"))
                cells.append((v, str(s.get("text", "")), f"{label} {fmt(val)}" if label else ""))
            ex_blocks.append(Example(p, str(by_variant[shown[0]][p].get("group", "")), cells))
        self.toc.append(("examples", "Examples"))
        return [Heading(2, "Examples", "examples"),
                Details(f"show generations of {', '.join(shown)} (content warning)", ex_blocks,
                        warning=CONTENT_WARNING)]

    # -- whole report -------------------------------------------------------------------------
    def build(self) -> list[Block]:
        blocks = self.header()
        blocks += self.recommendation()
        for study in self.run.studies():
            blocks += self.study_section(study)
        blocks += self.examples()
        notes = list(self.run.notes)
        if notes:
            self.toc.append(("notes", "Notes"))
            blocks += [Heading(2, "Notes", "notes")] + [Para(n, "note") for n in notes]
        return blocks


# -- small helpers -----------------------------------------------------------------------------

def plots_marker(i: int) -> str:
    from lorafair.report.style import MARKERS

    return MARKERS[i % len(MARKERS)]


def _status_word(status: str) -> str:
    return {"not_reached": "no rank reaches the target", "undefined": "undefined",
            "no_ranks": "no ranked variants"}.get(status, status)


def _vs_rank_caption(metric: str) -> str:
    return (f"{metric} of each ranked variant against rank (log₂ axis), error bars 95% intervals; base (dotted) "
            "and full (dashed) as horizontal lines with their intervals as bands.")


def _compact(v: Any, limit: int = 400) -> str:
    """A config value as one readable line."""
    if isinstance(v, dict):
        s = ", ".join(f"{k}={_compact(x, 120)}" for k, x in v.items())
    elif isinstance(v, (list, tuple)):
        s = ", ".join(_compact(x, 120) for x in v)
    else:
        s = str(v)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else (f"{m} min {sec:02d} s" if m else f"{seconds:.1f} s")


def _nan0(x: float) -> float:
    return 0.0 if x is None or math.isnan(x) else x


def _first_sample_per_prompt(samples: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s in sorted(samples, key=lambda s: (str(s.get("prompt", "")), _sample_index(s))):
        p = str(s.get("prompt", ""))
        out.setdefault(p, s)
    # keep file order of prompts
    order = list(dict.fromkeys(str(s.get("prompt", "")) for s in samples))
    return {p: out[p] for p in order}


def _sample_index(s: dict) -> int:
    try:
        return int(s.get("sample", 0))
    except (TypeError, ValueError):
        return 0


def _headline_score(scores: Any) -> tuple[str, float]:
    """The score shown next to a generation: the "toxicity"/"toxic" label when present, else the highest."""
    if not isinstance(scores, dict) or not scores:
        return "", float("nan")
    nums = {str(k): float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not nums:
        return "", float("nan")
    for k in ("toxicity", "toxic", "TOXICITY"):
        if k in nums:
            return k, nums[k]
    k = max(nums, key=nums.get)
    return k, nums[k]
