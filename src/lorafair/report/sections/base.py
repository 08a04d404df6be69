"""The generic section of one study, and the base class of every study's own section.

Everything here is driven by the (study, metric, group) rows of metrics.csv and by the study's metadata
from the run directory (:class:`lorafair.report.study_meta.StudyMeta`: title, description, headline
metrics, each metric's role, direction and ideal). A study with report content of its own (figures from
its artifacts) subclasses :class:`Section` in a module of :mod:`lorafair.report.sections`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from lorafair.report import plots
from lorafair.report.context import ReportContext, marker, slug
from lorafair.report.doc import Block, Callout, Details, Figure, FigureRow, Heading, KeyValues, Para, Table, fmt, fmt_est
from lorafair.report.front import compact, rank_word, status_word
from lorafair.report.load import Estimate
from lorafair.report.recommend import capture_table, study_is_flat
from lorafair.report.style import CYCLE, method_color, strategy_color
from lorafair.report.tradeoff import MAX_TARGETS, Axis, TradeOff, better_corner, target_axes, tradeoff, utility_axis
from lorafair.run.layout import STRATEGY_SEP

# (z_0.975 + z_0.8): a difference of this many standard errors is detected with 80% power at the 5% level
DETECTABLE_Z = 1.959963984540054 + 0.8416212335729143


class Section:
    """The generic section of a study: heading and description, callouts (no shift to capture, the
    study's recommendation), the table of its headline metrics, each headline metric against rank, the
    capture ratio against rank (and, in a run with strategies, each strategy's against plain fine-tuning), the
    fairness–utility trade-off, per-group figures, :meth:`extras`, how the numbers were obtained and every row of
    the study (collapsed)."""

    #: whether the section shows the fairness–utility trade-off (:mod:`lorafair.report.tradeoff`); a study whose
    #: targets are no fairness measure (shift: the distance to full fine-tuning's distribution) turns it off
    tradeoff_view: bool = True

    def __init__(self, ctx: ReportContext, study: str):
        self.ctx = ctx
        self.run = ctx.run
        self.study = study
        self.meta = ctx.metas[study]

    # -- hooks --------------------------------------------------------------------------------
    def blocks(self) -> list[Block]:
        """The whole section, in report order."""
        blocks = self.intro()
        blocks += self.metric_table()
        figs = self.headline_figures()
        if figs:
            blocks.append(Heading(3, "Headline metrics against rank"))
            blocks.append(FigureRow(figs))
        blocks += self.capture()
        blocks += self.strategy_capture()
        blocks += self.tradeoff()
        blocks += self.groups()
        blocks += self.extras()
        blocks += self.info()
        blocks.append(self.all_rows())
        return blocks

    def headline_figures(self) -> list[Figure]:
        """One figure per headline metric against rank."""
        return [self.metric_figure(m) for m in self.meta.headline]

    def extras(self) -> list[Block]:
        """Study-specific blocks after the groups (none in the generic section)."""
        return []

    def appendix(self) -> list[Block]:
        """Blocks after every study's section (none in the generic section)."""
        return []

    # -- parts --------------------------------------------------------------------------------
    def intro(self) -> list[Block]:
        meta, study = self.meta, self.study
        anchor = f"study-{slug(study)}"
        self.ctx.toc.append((anchor, meta.heading))
        blocks: list[Block] = [Heading(2, f"Study: {meta.heading}", anchor)]
        if meta.description:
            blocks.append(Para(meta.description))
        if not meta.declared:
            blocks.append(Para(f"The run directory declares no metrics of {study} (none in metric_roles.json: a "
                               "study without metric specs, a run made by an older lorafair, or rows added to "
                               "metrics.csv by hand), so every metric is shown and roles and better directions are "
                               "unknown.", "note"))
        elif not meta.headline_declared:
            blocks.append(Para(f"metric_roles.json names no headline metrics of {study} (a run made by an older "
                               "lorafair), so every metric it declares is shown.", "note"))
        method = self.ctx.main_method()
        if method and study_is_flat(capture_table(self.run, meta, method)):
            blocks.append(Callout("Base and full fine-tuning do not differ here", [
                "On no target metric of this study does full fine-tuning differ significantly from the base model "
                "(paired intervals), so there is no shift to capture: its numbers say nothing about which rank is "
                "enough."], "undefined"))
        for rec in self.ctx.recs.get(study, []):
            blocks.append(Callout(f"{rec.method}: " + (f"r={rec.rank}" if rec.rank is not None
                                                       else status_word(rec.status)), [rec.text], rec.status))
        return blocks

    def metric_table(self) -> list[Block]:
        run, meta, study = self.run, self.meta, self.study
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
        mdes = [self.detectable(m) for m in metrics]
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

    def detectable(self, metric: str) -> Optional[float]:
        """Minimal detectable difference from base: (z_0.975 + z_0.8) · SE of the paired difference."""
        ses = []
        for v in self.run.variants():
            if v == "base":
                continue
            e = self.run.estimate(self.study, f"delta_{metric}", v)
            if e is not None and e.has_ci:
                ses.append(e.se)
        if not ses:
            return None
        return float(np.median(ses)) * DETECTABLE_Z

    def metric_figure(self, metric: str) -> Figure:
        """``metric`` of every ranked variant against rank, base and full as horizontal lines."""
        study = self.study
        png = plots.metric_vs_rank(self.ctx.series(study, metric), self.ctx.refs(study, metric), metric=metric,
                                   title=f"{study}: {metric.replace('_', ' ')}", direction=self.meta.direction(metric))
        return self.ctx.fig(f"{study}-{metric}", png, vs_rank_caption(metric))

    def capture(self) -> list[Block]:
        method = self.ctx.main_method()
        if not method:
            return []
        study, target = self.study, self.ctx.target
        blocks: list[Block] = []
        caps = capture_table(self.run, self.meta, method)
        curves = [(c.metric, [(r, cr.value, cr.ci_low, cr.ci_high) for r, cr in sorted(c.by_rank.items())
                              if cr.defined])
                  for c in caps if c.defined and c.by_rank]
        undefined = [c for c in caps if not c.defined]
        if curves:
            png = plots.capture_vs_rank(curves, target=target, title=f"{study}: capture ratio ({method})")
            blocks.append(Heading(3, "Capture ratio against rank"))
            blocks.append(self.ctx.fig(f"{study}-capture", png,
                                       f"Paired capture ratio of each {method} rank for the target metrics of {study}, "
                                       f"with 95% intervals; 0 = base, 1 = full, dotted = the band "
                                       f"[{target:g}, {2 - target:g}] a rank must lie within."))
        if undefined:
            blocks.append(Para("Capture ratio undefined for: " + "; ".join(
                f"{c.metric} ({c.undefined_reason})" for c in undefined) + ".", "note"))
        return blocks

    def strategy_capture(self) -> list[Block]:
        """In a run with strategies: per target metric, the paired capture ratio of the main method's plain ladder
        and of each strategy's ladder against rank on one figure, a table of them, and each strategy's smallest
        rank within the band (:func:`lorafair.report.recommend.recommend_strategies`)."""
        run, meta, study, target = self.run, self.meta, self.study, self.ctx.target
        method, strategies = self.ctx.main_method(), run.strategies()
        if not method or not strategies:
            return []
        ladders = [("", method_color(method), capture_table(run, meta, method))]
        ladders += [(s, strategy_color(i), capture_table(run, meta, method, strategy=s))
                    for i, s in enumerate(strategies)]
        ranks = sorted({r for _, _, caps in ladders for c in caps for r in c.by_rank})
        figs, rows = [], []
        for metric in meta.with_role("target"):
            curves, colors = [], []
            for strategy, color, caps in ladders:
                c = next((c for c in caps if c.metric == metric), None)
                if c is None:
                    continue
                label = f"{method}{STRATEGY_SEP}{strategy}" if strategy else method
                pts = [(r, x.value, x.ci_low, x.ci_high) for r, x in sorted(c.by_rank.items()) if x.defined]
                if pts:
                    curves.append((label, pts))
                    colors.append(color)
                cells = []
                for r in ranks:
                    x = c.by_rank.get(r)
                    cells.append("–" if x is None else (fmt_est(x.value, x.ci_low, x.ci_high) if x.defined else "undefined"))
                reached = [r for r in sorted(c.by_rank) if c.reaches(r, target)]
                rows.append([metric, label] + cells + [f"r={reached[0]}" if reached else "none"])
            if curves:
                png = plots.capture_vs_rank(curves, target=target, colors=colors,
                                            title=f"{study}: capture of {metric.replace('_', ' ')} by strategy")
                figs.append(self.ctx.fig(f"{study}-{metric}-capture-strategies", png,
                                         f"Paired capture ratio of {metric} against rank: plain {method} fine-tuning "
                                         f"and each strategy ({', '.join(strategies)}) crossed with the same ranks; "
                                         "0 = base, 1 = plain full fine-tuning, dotted = the band "
                                         f"[{target:g}, {2 - target:g}]. A strategy's curve left of plain's reaches "
                                         "the band at a smaller rank."))
        if not rows:
            return []
        blocks: list[Block] = [Heading(3, "Capture ratio by strategy")]
        if figs:
            blocks.append(FigureRow(figs))
        blocks.append(Table(["metric", "ladder"] + [f"r={r}" for r in ranks] + ["first rank within the band"], rows,
                            caption=f"Paired capture ratio [95% interval] of each rank of plain {method} and of each "
                                    f"strategy crossed with it, against the same base and the same plain full "
                                    f"fine-tuning; last column: the smallest rank whose interval lies within "
                                    f"[{target:g}, {2 - target:g}] for that metric alone."))
        recs = self.ctx.strategy_recs.get(study, [])
        plain = {r.method: r for r in self.ctx.recs.get(study, [])}
        if recs:
            # one row per ranked method crossed with each strategy (dora+cfreg too): each next to its own method's plain rank
            blocks.append(Table(["ladder", "recommended rank", "plain", "why"],
                                [[r.label, rank_word(r), rank_word(plain[r.method]) if r.method in plain else "–",
                                  r.text] for r in recs], wrap_last=True,
                                caption="Per strategy, the smallest rank that reaches every defined target metric of "
                                        "this study (the rules of the plain recommendation, which is unchanged)."))
        return blocks

    def tradeoff(self) -> list[Block]:
        """The fairness–utility trade-off (:mod:`lorafair.report.tradeoff`): per target metric (at most
        :data:`~lorafair.report.tradeoff.MAX_TARGETS`), every variant with the target on x and the utility on y,
        the Pareto front drawn; and a table of the points with the fronts each is on."""
        if not self.tradeoff_view:
            return []
        run, study = self.run, self.study
        targets = target_axes(run, self.meta)
        if not targets:
            return []
        y = utility_axis(run, self.ctx.metas, study)
        if y is None:
            if not run.strategies():
                return []
            return [Heading(3, "Fairness–utility trade-off"),
                    Para(f"No trade-off figure: the run measures no utility to set against the targets of {study} "
                         "(no guard metric with a better direction in any study, and no heldout loss). Add a guard, "
                         "e.g. the forgetting study, to see what each strategy costs.", "note")]
        shown, left = targets[:MAX_TARGETS], targets[MAX_TARGETS:]
        views = [tradeoff(run, x, y) for x in shown]
        views = [t for t in views if sum(p.complete for p in t.points) >= 2]
        if not views:
            return []
        figs = [self.tradeoff_figure(t) for t in views]
        where = ("this study's guard" if y.study == study else
                 f"the {y.study} study's {'guard' if y.role == 'guard' else y.role or 'metric'} (this study has no usable "
                 "guard of its own: none, or none with a better direction)")
        blocks: list[Block] = [
            Heading(3, "Fairness–utility trade-off"),
            Para(f"What each variant's fairness costs: every variant with the target metric on x and "
                 f"{y.describe()} on y, {where}. The Pareto front joins the variants that no other variant matches or "
                 "beats on both axes (on the point values); a variant off the front is beaten on both by one on it."
                 + (f" Not drawn (at most {MAX_TARGETS} targets): {', '.join(a.metric for a in left)}." if left else ""),
                 "note"),
            FigureRow(figs),
            self.tradeoff_table(views),
        ]
        return blocks

    def tradeoff_figure(self, t: TradeOff) -> Figure:
        run, study = self.run, self.study
        methods, strategies = run.ranked_methods(), run.strategies()
        groups: dict[tuple[str, str], list] = {}
        for p in t.points:
            if p.complete:
                groups.setdefault((p.family, p.strategy), []).append(p)

        def order(key):
            fam, s = key
            rank_of = 0 if fam == "base" else 1 if fam in methods else 3 if fam == "full" else 4
            return (rank_of, bool(s), methods.index(fam) if fam in methods else 0,
                    strategies.index(s) if s in strategies else -1, fam)

        series = []
        for fam, s in sorted(groups, key=order):
            pts = sorted(groups[(fam, s)], key=lambda p: p.rank or 0)
            if fam in methods:
                mk = marker(methods.index(fam))
            else:
                mk = {"base": "X", "full": "D"}.get(fam, "P")
            color = strategy_color(strategies.index(s)) if s in strategies else method_color(fam, len(methods))
            series.append(plots.ScatterSeries(
                f"{fam}{STRATEGY_SEP}{s}" if s else fam, color,
                [plots.ScatterPoint(p.x, p.y, f"r{p.rank}" if p.rank is not None else "",
                                    24 + 10 * float(np.log2(max(p.rank, 1))) if p.rank is not None else 70)
                 for p in pts], mk, connect=fam in methods))
        front = [(p.x.value, p.y.value) for p in t.front]
        corner = better_corner(t.x, t.y)
        png = plots.tradeoff(series, front, xlabel=f"{t.x.label} ({t.x.better} is better)",
                             ylabel=f"{t.y.label}" + (f" [{t.y.study}]" if t.y.study != study else "")
                             + f" ({t.y.better} is better)",
                             title=f"{study}: {t.x.metric.replace('_', ' ')} vs "
                                   + (f"{t.y.study} " if t.y.study != study else "") + t.y.metric.replace('_', ' '),
                             corner=corner)
        return self.ctx.fig(f"{study}-{t.x.metric}-tradeoff", png,
                            f"x: {t.x.describe()}; y: {t.y.describe()}. One point per variant with both values: colour "
                            "= method or strategy (each strategy its own colour, plain fine-tuning its method's), "
                            "marker = method (base ✕, full ◆), label and size = rank; bars = 95% intervals. Dashed "
                            f"line through ringed points: the Pareto front (point values); better lies {corner}.")

    def tradeoff_table(self, views: list[TradeOff]) -> Table:
        y = views[0].y
        variants = list(dict.fromkeys(p.variant for t in views for p in t.points))
        by = [{p.variant: p for p in t.points} for t in views]
        rows = []
        for v in variants:
            first = next(b[v] for b in by if v in b)
            yv = first.y
            cells = []
            for b in by:
                p = b.get(v)
                cells.append(fmt_est(p.x.value, p.x.ci_low, p.x.ci_high) if p is not None and p.x is not None else "–")
            fronts = [t.x.label for t, b in zip(views, by) if v in b and b[v].on_front]
            rows.append([v, first.strategy or ("–" if first.family == "base" else "plain"),
                         str(first.rank) if first.rank is not None else "–",
                         fmt_est(yv.value, yv.ci_low, yv.ci_high) if yv is not None else "–"]
                        + cells + [", ".join(fronts) or "–"])
        ylab = f"{y.label} ({y.study}) {'↓' if y.better == 'lower' else '↑'}"
        return Table(["variant", "strategy", "rank", ylab]
                     + [f"{t.x.label} {'↓' if t.x.better == 'lower' else '↑'}" for t in views] + ["on the front of"],
                     rows, caption="The points of the trade-off figures: value [95% interval]; ↓ lower is better, ↑ "
                                   "higher is better; last column: the targets on whose Pareto front the variant lies "
                                   "(a variant without one of the two values is on no front).")

    def groups(self) -> list[Block]:
        run, study, meta, method = self.run, self.study, self.meta, self.ctx.main_method()
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
                figs.append(self.ctx.fig(f"{study}-{metric}-groups", png,
                                         f"{metric} per group for base, full and low / middle / high {method or ''} ranks "
                                         "(error bars: 95% intervals)."))
            gap_series, gap_refs = [], []
            for i, m in enumerate(run.ranked_methods()):
                pts = [(r, g) for r in run.ranks(m) if (g := self.gap(metric, f"{m}-r{r}", groups)) is not None]
                if pts:
                    gap_series.append(plots.Series(m, method_color(m, i), pts, marker(i)))
            for name, ls in (("base", ":"), ("full", "--")):
                g = self.gap(metric, name, groups)
                if g is not None:
                    gap_refs.append(plots.Reference(name, method_color(name), g, ls))
            if gap_series or gap_refs:
                png = plots.metric_vs_rank(gap_series, gap_refs, metric=f"{metric} gap (max − min over groups)",
                                           title=f"{study}: group gap in {metric.replace('_', ' ')}")
                figs.append(self.ctx.fig(f"{study}-{metric}-group-gap", png,
                                         f"Largest minus smallest group value of {metric} at each rank (a point value: "
                                         "no interval, it is computed here from the per-group values)."))
            if figs:
                if not blocks:
                    blocks.append(Heading(3, "Groups"))
                blocks.append(FigureRow(figs))
        return blocks

    def gap(self, metric: str, variant: str, groups: list[str]) -> Optional[Estimate]:
        vals = [e.value for g in groups if (e := self.run.estimate(self.study, metric, variant, g)) is not None]
        if len(vals) < 2:
            return None
        return Estimate(max(vals) - min(vals))

    def info(self) -> list[Block]:
        """The ``info`` of results/<study>.json: how the numbers were obtained."""
        info = self.run.study_info(self.study)
        if not info:
            return []
        return [Details(f"how the {self.study} numbers were obtained (results/{self.study}.json info)",
                        [KeyValues([(k, compact(v)) for k, v in info.items()])])]

    def all_rows(self) -> Details:
        run, study = self.run, self.study
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


def vs_rank_caption(metric: str) -> str:
    return (f"{metric} of each ranked variant against rank (log₂ axis), error bars 95% intervals; base (dotted) "
            "and full (dashed) as horizontal lines with their intervals as bands.")
