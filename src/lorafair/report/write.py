"""Write a run's report files: report.html (self-contained), report.md and plots/*.png."""

from __future__ import annotations

import time
from pathlib import Path

from lorafair import __version__
from lorafair.report.build import ReportBuilder
from lorafair.report.doc import walk_figures
from lorafair.report.load import load_run
from lorafair.report.render_html import render_html
from lorafair.report.render_md import render_md
from lorafair.report.style import report_style
from lorafair.run.atomic import atomic_write_bytes, atomic_write_text


def write_figures(blocks, plots_dir: Path) -> list[Path]:
    """Write every figure of ``blocks`` to ``plots_dir`` and delete PNGs left there by earlier reports."""
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for fig in walk_figures(blocks):
        p = plots_dir / f"{fig.name}.png"
        atomic_write_bytes(p, fig.png)
        written.append(p)
    keep = {p.name for p in written}
    for old in plots_dir.glob("*.png"):
        if old.name not in keep:
            old.unlink()
    return written


def write_report(run_dir: str | Path, target: float = 0.9) -> dict:
    """Write RUN_DIR/report.html, RUN_DIR/report.md and RUN_DIR/plots/; return their paths.

    Returns ``{"html": Path, "md": Path, "plots": [Path, ...], "seconds": float, "recommendation":
    [one line per ranked method]}``. Raises
    :class:`lorafair.errors.UserError` when ``run_dir`` has no metrics.csv.
    """
    t0 = time.perf_counter()
    run = load_run(run_dir)
    with report_style():
        builder = ReportBuilder(run, target=target)
        blocks = builder.build()
    footer = (f"lorafair {__version__} · report written {time.strftime('%Y-%m-%d %H:%M:%S')} · "
              f"target capture ratio {target:g} (band [{target:g}, {2 - target:g}])")
    title = f"lorafair report — {run.name}"
    html = render_html(title, blocks, toc=builder.toc, footer=footer)
    md = render_md(blocks, plots_prefix="plots/", toc=builder.toc, footer=footer)
    run_dir = Path(run_dir)
    plots = write_figures(blocks, run_dir / "plots")
    atomic_write_text(run_dir / "report.html", html)
    atomic_write_text(run_dir / "report.md", md)
    overall = [f"{r.method}: {r.text}" for r in builder.recs.get("overall", [])]
    return {"html": run_dir / "report.html", "md": run_dir / "report.md", "plots": plots,
            "seconds": time.perf_counter() - t0, "recommendation": overall}
