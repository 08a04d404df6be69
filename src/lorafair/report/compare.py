"""``lorafair compare``: several runs (two models, two data sets …) on the same plots.

For every headline metric that any run measured, one figure with one line per run (its main
ranked method against rank) and each run's base (dotted) and full (dashed) levels in the run's
colour; the capture ratio of each run on one figure per metric; and a table of the rank
recommendations side by side. Writes OUT/compare.html, OUT/compare.md and OUT/plots/.
"""

from __future__ import annotations

import time
from pathlib import Path

from lorafair import __version__
from lorafair.errors import UserError
from lorafair.report import plots
from lorafair.report.context import run_metas, slug
from lorafair.report.doc import Block, Figure, FigureRow, Heading, KeyValues, Para, Table
from lorafair.report.front import compact, status_word
from lorafair.report.load import RunData, load_run
from lorafair.report.recommend import capture_table, recommend, recommend_strategies
from lorafair.report.render_html import render_html
from lorafair.report.render_md import render_md
from lorafair.report.style import MARKERS, SERIES_COLORS, report_style
from lorafair.report.write import write_outputs


def _labels(runs: list[RunData]) -> list[str]:
    """Run names, disambiguated with their parent folder when two runs share a name."""
    names = [r.name for r in runs]
    out = []
    for r in runs:
        if names.count(r.name) > 1:
            out.append(f"{r.run_dir.resolve().parent.name}/{r.name}")
        else:
            out.append(r.name)
    if len(set(out)) < len(out):
        out = [f"{lbl} ({i + 1})" for i, lbl in enumerate(out)]
    return out


def build_compare(runs: list[RunData], target: float = 0.9) -> tuple[list[Block], list[tuple[str, str]]]:
    labels = _labels(runs)
    colors = [SERIES_COLORS[i % len(SERIES_COLORS)] for i in range(len(runs))]  # one colour per run, everywhere
    names: set[str] = set()
    toc: list[tuple[str, str]] = []

    def fig(name: str, png: bytes, caption: str) -> Figure:
        base, n, i = slug(name), slug(name), 2
        while n in names:
            n, i = f"{base}-{i}", i + 1
        names.add(n)
        return Figure(n, png, caption)

    blocks: list[Block] = [Heading(1, f"lorafair comparison of {len(runs)} runs"),
                           Para("One line per run; each run's base (dotted) and full (dashed) levels drawn in its "
                                "colour with their 95% intervals as bands.", "lead")]
    rows = []
    for lbl, run in zip(labels, runs):
        info, cfg = run.run_info, run.config
        rows.append([lbl, compact(info.get("model") or cfg.get("model") or "–", 80),
                     compact(info.get("data") or cfg.get("data") or "–", 80),
                     ", ".join(map(str, run.seeds())), ", ".join(run.ranked_methods()) or "–",
                     ", ".join(run.studies())])
    blocks.append(Table(["run", "model", "data", "seeds", "ranked methods", "studies"], rows))

    studies = list(dict.fromkeys(s for r in runs for s in r.studies()))
    metas_per_run = [run_metas(r) for r in runs]
    recs = [recommend(r, m, target) if r.ranked_methods() else {} for r, m in zip(runs, metas_per_run)]
    srecs = [recommend_strategies(r, m, target) if r.ranked_methods() else {} for r, m in zip(runs, metas_per_run)]
    toc.append(("recommendation", "Recommendations"))
    blocks.append(Heading(2, "Rank recommendations", "recommendation"))
    rec_rows = []
    for scope in ["overall"] + studies:
        row = [scope]
        for rr, sr in zip(recs, srecs):
            items = rr.get(scope, []) + sr.get(scope, [])  # plain first, then each strategy's ladder
            row.append("; ".join(f"{x.label}: r={x.rank}" if x.rank is not None else
                                 f"{x.label}: {status_word(x.status)}" for x in items) or "–")
        rec_rows.append(row)
    blocks.append(Table(["scope"] + labels, rec_rows,
                        caption=f"Smallest rank whose paired capture interval lies within [{target:g}, {2 - target:g}] "
                                "on every defined target metric (see each run's report for the reasons); a strategy's "
                                "ladder (lora+cfreg) by the same rules."))

    for study in studies:
        anchor = f"study-{slug(study)}"
        toc.append((anchor, study))
        blocks.append(Heading(2, f"Study: {study}", anchor))
        headline = list(dict.fromkeys(m for mr in metas_per_run if study in mr for m in mr[study].headline))
        for metric in headline:
            series, refs, curves, curve_colors = [], [], [], []
            direction = next((mr[study].direction(metric) for mr in metas_per_run if study in mr), None)
            for i, (lbl, run, mr) in enumerate(zip(labels, runs, metas_per_run)):
                if study not in mr:
                    continue
                methods = run.ranked_methods()
                if methods:
                    m = methods[0]
                    pts = [(r, e) for r in run.ranks(m) if (e := run.estimate(study, metric, f"{m}-r{r}")) is not None]
                    if pts:
                        series.append(plots.Series(f"{lbl} ({m})", colors[i], pts, MARKERS[i % len(MARKERS)]))
                    caps = capture_table(run, mr[study], m, [metric])
                    for c in caps:
                        if c.defined and c.by_rank:
                            curves.append((f"{lbl}", [(r, x.value, x.ci_low, x.ci_high)
                                                      for r, x in sorted(c.by_rank.items()) if x.defined]))
                            curve_colors.append(colors[i])
                for name, ls in (("base", ":"), ("full", "--")):
                    e = run.estimate(study, metric, name)
                    if e is not None:
                        refs.append(plots.Reference(f"{lbl} {name}", colors[i], e, ls))
            figs = []
            if series or refs:
                figs.append(fig(f"{study}-{metric}", plots.metric_vs_rank(
                    series, refs, metric=metric, title=f"{study}: {metric.replace('_', ' ')}", direction=direction),
                    f"{metric} against rank, one line per run."))
            if curves:
                figs.append(fig(f"{study}-{metric}-capture", plots.capture_vs_rank(
                    curves, target=target, title=f"{study}: capture ratio of {metric.replace('_', ' ')}",
                    colors=curve_colors),
                    f"Capture ratio of {metric} against rank, one line per run (runs where it is undefined are "
                    "left out)."))
            if figs:
                blocks.append(FigureRow(figs))
    blocks.append(Heading(2, "Runs", "runs"))
    blocks.append(KeyValues([(lbl, str(r.run_dir.resolve())) for lbl, r in zip(labels, runs)]))
    toc.append(("runs", "Runs"))
    return blocks, toc


def write_compare(run_dirs: list[str | Path], out_dir: str | Path, target: float = 0.9) -> dict:
    """Write OUT/compare.html, OUT/compare.md and OUT/plots/ for several runs; return their paths."""
    if len(run_dirs) < 2:
        raise UserError("run_dirs", [str(p) for p in run_dirs], "at least two run directories")
    t0 = time.perf_counter()
    runs = [load_run(p) for p in run_dirs]
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError("--out", str(out), "a folder (this is a file)")
    if any(out.resolve() == r.run_dir.resolve() for r in runs):
        raise UserError("--out", str(out), "a folder other than the run directories (their plots/ are the runs' own)")
    with report_style():
        blocks, toc = build_compare(runs, target)
    footer = f"lorafair {__version__} · comparison written {time.strftime('%Y-%m-%d %H:%M:%S')}"
    html = render_html(f"lorafair comparison of {len(runs)} runs", blocks, toc=toc, footer=footer)
    md = render_md(blocks, plots_prefix="plots/", toc=toc, footer=footer)
    plots_written = write_outputs(out, "--out", {"compare.html": html, "compare.md": md}, blocks)
    return {"html": out / "compare.html", "md": out / "compare.md", "plots": plots_written,
            "seconds": time.perf_counter() - t0}
