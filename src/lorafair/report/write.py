"""Write a run's report files: report.html (self-contained), report.md and plots/*.png.

``plots/`` may hold files of the user's: only PNGs that lorafair itself wrote there are ever
deleted. Each write records the figures it wrote in ``plots/.lorafair-plots.json``; the next
write deletes the ones of that list it no longer writes, and nothing else.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from lorafair import __version__
from lorafair.errors import UserError
from lorafair.report.build import ReportBuilder
from lorafair.report.doc import walk_figures
from lorafair.report.load import load_run
from lorafair.report.render_html import render_html
from lorafair.report.render_md import render_md
from lorafair.report.style import report_style
from lorafair.atomic import atomic_write_bytes, atomic_write_text

MANIFEST = ".lorafair-plots.json"
_OWN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.png$")  # a figure file name lorafair writes


def _previous_figures(plots_dir: Path) -> set[str]:
    """Names of the PNGs an earlier report/compare wrote to ``plots_dir`` (its manifest)."""
    try:
        obj = json.loads((plots_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return set()
    names = obj.get("figures") if isinstance(obj, dict) else None
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and _OWN_NAME.match(n)}


def write_figures(blocks, plots_dir: Path) -> list[Path]:
    """Write every figure of ``blocks`` to ``plots_dir`` and delete the PNGs that an earlier
    report or comparison wrote there and this one does not (never a file lorafair did not write)."""
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    before = _previous_figures(plots_dir)
    written = []
    for fig in walk_figures(blocks):
        p = plots_dir / f"{fig.name}.png"
        atomic_write_bytes(p, fig.png)
        written.append(p)
    keep = {p.name for p in written}
    atomic_write_text(plots_dir / MANIFEST, json.dumps(
        {"written_by": f"lorafair {__version__}", "figures": sorted(keep)}, indent=1) + "\n")
    for name in sorted(before - keep):
        old = plots_dir / name
        if old.is_symlink() or old.is_file():
            try:
                old.unlink()
            except FileNotFoundError:
                pass
    return written


def write_outputs(out_dir: Path, field: str, files: dict[str, str], blocks) -> list[Path]:
    """Write ``plots/`` and the text files (name -> content) into ``out_dir``; a folder that cannot
    be written is a UserError naming ``field``."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        plots = write_figures(blocks, out_dir / "plots")
        for name, text in files.items():
            atomic_write_text(out_dir / name, text)
    except OSError as e:
        where = f" ({e.filename}: {e.strerror})" if getattr(e, "filename", None) and e.strerror else \
            f" ({e.strerror or type(e).__name__})"
        raise UserError(field, str(out_dir), f"a folder where report files can be written{where}") from None
    return plots


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
    plots = write_outputs(run_dir, "run_dir", {"report.html": html, "report.md": md}, blocks)
    overall = [f"{r.method}: {r.text}" for r in builder.recs.get("overall", [])]
    return {"html": run_dir / "report.html", "md": run_dir / "report.md", "plots": plots,
            "seconds": time.perf_counter() - t0, "recommendation": overall}
