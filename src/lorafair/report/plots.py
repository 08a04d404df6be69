"""The report's figures. Each function draws one figure and returns its PNG bytes.

Callers wrap calls in :func:`lorafair.report.style.report_style`. Inputs are plain data
(:class:`Series`, :class:`Reference`, lists of numbers), so the same functions serve a single
run (one series per PEFT method) and ``lorafair compare`` (one series per run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from lorafair.report.load import Estimate
from lorafair.report.style import (CYCLE, HEATMAP_CMAP, MARKERS, OKABE_ITO, SERIES_COLORS, clean_label, fig_to_png,
                                   new_figure)


@dataclass
class Series:
    """A line against rank: (rank, estimate) points, drawn with error bars where intervals exist."""

    label: str
    color: str
    points: list[tuple[int, Estimate]] = field(default_factory=list)
    marker: str = "o"


@dataclass
class Reference:
    """A horizontal level (base or full): the value as a line, its interval as a band."""

    label: str
    color: str
    est: Estimate
    linestyle: str = "--"


def _nice(metric: str) -> str:
    return metric.replace("_", " ")


def _legend(label: object) -> str:
    """A legend label from the data, shown as written: matplotlib leaves out labels that start
    with "_", so those get a leading space. (All text is plain: see style.fig_to_png.)"""
    s = clean_label(label, limit=80)
    return " " + s if s.startswith("_") else s


def _ticks(labels) -> list[str]:
    """Tick labels from the data (group, variant, layer names), cleaned (see style.clean_label)."""
    return [clean_label(x, limit=60) for x in labels]


def _direction_note(direction: Optional[str]) -> str:
    return {"lower": " (lower is better)", "higher": " (higher is better)"}.get(direction or "", "")


def _log2_axis(ax, ranks: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ranks))
    ax.set_xticklabels([str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("rank r (log₂ scale)")


def _finite(values) -> np.ndarray:
    """Values as floats, ±inf (which no axis can show) as NaN (a gap)."""
    a = np.array(values, dtype=float)
    a[~np.isfinite(a)] = np.nan
    return a


def _errorbar(ax, xs, ests: list[Estimate], **kw):
    ys = _finite([e.value for e in ests])
    lo = _finite([e.ci_low for e in ests])
    hi = _finite([e.ci_high for e in ests])
    yerr = np.vstack([np.where(np.isnan(lo), 0, ys - lo), np.where(np.isnan(hi), 0, hi - ys)])
    yerr = np.clip(yerr, 0, None)
    return ax.errorbar(xs, ys, yerr=yerr, capsize=3, elinewidth=1, **kw)


def _draw_reference(ax, ref: Reference) -> None:
    e = ref.est
    if not math.isfinite(e.value):  # e.g. an infinite KL: no level to draw
        return
    ax.axhline(e.value, color=ref.color, linestyle=ref.linestyle, linewidth=1.4, label=_legend(ref.label), zorder=1)
    if e.has_ci and math.isfinite(e.ci_low) and math.isfinite(e.ci_high):
        ax.axhspan(e.ci_low, e.ci_high, color=ref.color, alpha=0.12, linewidth=0, zorder=0)


def metric_vs_rank(series: list[Series], refs: list[Reference], *, metric: str, title: str,
                   direction: Optional[str] = None, unit: str = "") -> bytes:
    """A metric against rank (log₂ x-axis), reference levels as horizontal bands (value ± 95% CI).

    With no ranked series (a run of only base and full), the references are drawn as two
    points with error bars instead, so the figure still shows their difference.
    """
    fig, ax = new_figure()
    ranks = sorted({r for s in series for r, _ in s.points})
    ylabel = _nice(metric) + (f" [{unit}]" if unit else "")
    if ranks:
        for ref in refs:
            _draw_reference(ax, ref)
        for i, s in enumerate(series):
            pts = sorted(s.points, key=lambda p: p[0])
            _errorbar(ax, [r for r, _ in pts], [e for _, e in pts], color=s.color, marker=s.marker or MARKERS[i % 8],
                      label=_legend(s.label), zorder=3)
        _log2_axis(ax, ranks)
        if len(ranks) == 1:
            ax.set_xlim(ranks[0] / 2, ranks[0] * 2)
    else:
        for i, ref in enumerate(refs):
            _errorbar(ax, [i], [ref.est], color=ref.color, marker="o", linestyle="none", label=_legend(ref.label))
        ax.set_xticks(range(len(refs)))
        ax.set_xticklabels(_ticks(r.label for r in refs))
        ax.set_xlim(-0.6, len(refs) - 0.4)
        ax.set_xlabel("variant (no ranked variants in this run)")
    ax.set_ylabel(ylabel)
    ax.set_title(title + _direction_note(direction), loc="left")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best")
    return fig_to_png(fig)


def capture_vs_rank(curves: list[tuple[str, list[tuple[int, float, float, float]]]], *, target: float,
                    title: str, colors: Optional[list[str]] = None) -> bytes:
    """Capture ratio (value, low, high per rank) of several metrics against rank, with the target line.

    The y-axis is clipped to [−0.5, 1.5] when points are far outside so that the region that
    matters (0 = base, 1 = full) stays readable; clipped intervals are marked with arrows.
    """
    fig, ax = new_figure()
    ranks = sorted({r for _, pts in curves for r, *_ in pts})
    ax.axhline(1.0, color=OKABE_ITO["vermillion"], linewidth=1.2, linestyle="--", label="full (1)")
    ax.axhline(0.0, color=OKABE_ITO["black"], linewidth=1.2, linestyle="--", label="base (0)")
    ax.axhline(target, color="#777777", linewidth=1.0, linestyle=":", label=f"band [{target:g}, {2 - target:g}]")
    if target < 1:
        ax.axhline(2 - target, color="#777777", linewidth=1.0, linestyle=":")
    lo_lim, hi_lim = -0.5, 1.5
    k = len(curves)
    for i, (label, pts) in enumerate(curves):
        pts = sorted(pts)
        dodge = 2 ** (0.06 * (i - (k - 1) / 2))  # small horizontal offset so overlapping intervals stay visible
        xs = [p[0] * dodge for p in pts]
        ests = [Estimate(v, lo, hi) for _, v, lo, hi in pts]
        _errorbar(ax, xs, ests, color=(colors or SERIES_COLORS)[i % len(colors or SERIES_COLORS)], marker=MARKERS[i % 8],
                  label=_legend(_nice(label)), zorder=3)
    vals = [x for _, pts in curves for p in pts for x in p[1:] if math.isfinite(x)]
    if vals and (min(vals) < lo_lim or max(vals) > hi_lim):
        ax.set_ylim(max(min(vals), lo_lim) - 0.05, min(max(vals), hi_lim) + 0.05)
        ax.text(0.99, 0.01, "y-axis clipped to [−0.5, 1.5]", transform=ax.transAxes, ha="right", va="bottom",
                fontsize=7.5, color="#555555")
    if ranks:
        _log2_axis(ax, ranks)
    ax.set_ylabel("capture ratio (base→full)")
    ax.set_title(title, loc="left")
    ax.legend(loc="best")
    return fig_to_png(fig)


@dataclass
class ScatterPoint:
    """One variant on a trade-off plot: x and y with their intervals, a short text beside it (its rank)."""

    x: Estimate
    y: Estimate
    text: str = ""
    size: float = 36.0


@dataclass
class ScatterSeries:
    """Points of one colour and marker (a method with or without a strategy); ``connect``: a thin line through
    them in order (a rank ladder)."""

    label: str
    color: str
    points: list[ScatterPoint] = field(default_factory=list)
    marker: str = "o"
    connect: bool = False


def tradeoff(series: list[ScatterSeries], front: list[tuple[float, float]], *, xlabel: str, ylabel: str,
             title: str, corner: str = "") -> bytes:
    """A fairness–utility scatter: every series with 95% intervals on both axes, the Pareto front (``front``: its
    points in x order) as a dashed line through ringed points. ``corner`` ("lower left" …) is where better lies."""
    fig, ax = new_figure(figsize=(6.4, 4.4))
    for s in series:
        pts = [p for p in s.points if math.isfinite(p.x.value) and math.isfinite(p.y.value)]
        if not pts:
            continue
        if s.connect and len(pts) > 1:
            ax.plot([p.x.value for p in pts], [p.y.value for p in pts], color=s.color, linewidth=0.8, alpha=0.5,
                    zorder=2)
        for p in pts:
            xe = [[max(p.x.value - p.x.ci_low, 0)], [max(p.x.ci_high - p.x.value, 0)]] if p.x.has_ci else None
            ye = [[max(p.y.value - p.y.ci_low, 0)], [max(p.y.ci_high - p.y.value, 0)]] if p.y.has_ci else None
            if xe is not None or ye is not None:
                ax.errorbar([p.x.value], [p.y.value], xerr=_finite(xe) if xe else None, yerr=_finite(ye) if ye else None,
                            fmt="none", ecolor=s.color, elinewidth=0.7, alpha=0.45, zorder=2)
        ax.scatter([p.x.value for p in pts], [p.y.value for p in pts], s=[p.size for p in pts], color=s.color,
                   marker=s.marker, edgecolors="white", linewidths=0.6, label=_legend(s.label), zorder=4)
        for p in pts:
            if p.text:
                ax.annotate(clean_label(p.text, limit=20), (p.x.value, p.y.value), xytext=(4, 3),
                            textcoords="offset points", fontsize=7, color="#333333", zorder=5)
    front = [(x, y) for x, y in front if math.isfinite(x) and math.isfinite(y)]
    if front:
        ax.plot([x for x, _ in front], [y for _, y in front], color="#444444", linestyle="--", linewidth=1.0,
                zorder=3, label="Pareto front")
        ax.scatter([x for x, _ in front], [y for _, y in front], s=150, facecolors="none", edgecolors="#444444",
                   linewidths=1.0, zorder=3)
    ax.set_xlabel(clean_label(xlabel, limit=120))
    ax.set_ylabel(clean_label(ylabel, limit=120))
    ax.set_title(title, loc="left")
    if corner:
        ax.text(0.99, 0.99, f"better: {corner}", transform=ax.transAxes, ha="right", va="top", fontsize=7.5,
                color="#555555")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig_to_png(fig)


def group_bars(groups: list[str], bars: list[tuple[str, str, dict[str, Estimate]]], *, metric: str, title: str,
               direction: Optional[str] = None) -> bytes:
    """Grouped bars: one cluster per group, one bar per variant (label, colour, {group: estimate})."""
    fig, ax = new_figure(figsize=(6.4 if len(groups) * len(bars) <= 30 else 9.6, 3.9))
    nb = max(1, len(bars))
    width = 0.8 / nb
    x = np.arange(len(groups))
    for i, (label, color, by_group) in enumerate(bars):
        ests = [by_group.get(g, Estimate(float("nan"))) for g in groups]
        ys = _finite([e.value for e in ests])
        lo = _finite([e.ci_low for e in ests])
        hi = _finite([e.ci_high for e in ests])
        err = np.clip(np.vstack([np.nan_to_num(ys - lo), np.nan_to_num(hi - ys)]), 0, None)
        ax.bar(x + (i - (nb - 1) / 2) * width, np.nan_to_num(ys), width, yerr=err, capsize=2, color=color,
               label=_legend(label), edgecolor="white", linewidth=0.5, error_kw={"elinewidth": 0.8})
    ax.set_xticks(x)
    ax.set_xticklabels(_ticks(groups), rotation=30 if max((len(g) for g in groups), default=0) > 8 else 0, ha="right"
                       if max((len(g) for g in groups), default=0) > 8 else "center")
    ax.set_xlabel("group")
    ax.set_ylabel(_nice(metric))
    ax.set_title(title + _direction_note(direction), loc="left")
    ax.grid(axis="x", visible=False)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22 if max((len(g) for g in groups), default=0) <= 8 else -0.4),
              ncol=min(5, nb))
    return fig_to_png(fig)


def heatmap(matrix: np.ndarray, rows: list[str], cols: list[str], *, title: str, cbar_label: str,
            xlabel: str = "layer") -> bytes:
    """A rows × columns heatmap (cividis) with a colour bar; NaN cells are left blank."""
    h = max(2.4, 0.32 * len(rows) + 1.4)
    fig, ax = new_figure(figsize=(max(5.0, 0.42 * len(cols) + 2.8), h))
    m = np.ma.masked_invalid(np.asarray(matrix, dtype=float))
    im = ax.imshow(m, aspect="auto", cmap=HEATMAP_CMAP, interpolation="nearest")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(_ticks(rows))
    step = max(1, len(cols) // 16)
    ax.set_xticks(range(0, len(cols), step))
    ax.set_xticklabels(_ticks(cols[::step]))
    ax.set_xlabel(xlabel)
    ax.grid(False)
    ax.set_title(title, loc="left")
    cb = fig.colorbar(im, ax=ax, shrink=0.9)
    cb.set_label(cbar_label)
    return fig_to_png(fig)


def energy_curve(curves: list[tuple[str, list[float], list[float]]], *, ranks_tried: Sequence[int],
                 title: str) -> bytes:
    """Energy captured by the best rank-r approximation of the full update, against r.

    ``curves`` holds (label, ranks, fractions in [0, 1]); the ranks of the run's ladder are
    marked as vertical lines.
    """
    fig, ax = new_figure()
    many = len(curves) > 6
    for i, (label, xs, ys) in enumerate(curves):
        if many and label != "mean over modules":
            ax.plot(xs, ys, color="#999999", linewidth=0.7, alpha=0.5)
        else:
            ax.plot(xs, ys, color=CYCLE[i % len(CYCLE)] if not many else OKABE_ITO["blue"],
                    linewidth=2.2 if label == "mean over modules" else 1.6, label=_legend(label))
    for r in ranks_tried:
        ax.axvline(r, color="#bbbbbb", linewidth=0.8, linestyle=":")
    xs_all = sorted({x for _, xs, _ in curves for x in xs if x > 0})
    if xs_all and xs_all[-1] / xs_all[0] > 8:
        ticks = [2 ** k for k in range(int(np.floor(np.log2(xs_all[0]))), int(np.ceil(np.log2(xs_all[-1]))) + 1)]
        _log2_axis(ax, ticks)
        ax.set_xlabel("rank r (log₂ scale; dotted: ranks in this run)")
    else:
        ax.set_xlabel("rank r (dotted: ranks in this run)")
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("energy captured (fraction of ‖ΔW‖²_F)")
    ax.set_title(title, loc="left")
    if not many or any(lbl == "mean over modules" for lbl, _, _ in curves):
        ax.legend(loc="lower right")
    return fig_to_png(fig)


def trajectories(trajs: list[tuple[str, str, dict]], *, title: str) -> bytes:
    """Decisions: approval gap per round (left) and each group's mean score per round (right).

    ``trajs`` holds (variant label, colour, decisions_trajectory dict). Groups are told apart
    by line style, variants by colour.
    """
    fig, (a1, a2) = new_figure(ncols=2, figsize=(11, 3.8))
    styles = ["-", "--", ":", "-."]
    groups: list[str] = []
    for _, _, t in trajs:
        for g in (t.get("mean_score") or {}):
            if g not in groups:
                groups.append(g)
    for label, color, t in trajs:
        gap = t.get("approval_gap") or []
        rounds = t.get("round") or list(range(len(gap)))
        if gap:
            a1.plot(rounds[:len(gap)], gap, color=color, marker=".", label=_legend(label))
        for g, series in (t.get("mean_score") or {}).items():
            r2 = (t.get("round") or list(range(len(series))))[:len(series)]
            a2.plot(r2, series[:len(r2)], color=color, linestyle=styles[groups.index(g) % 4])
    a1.axhline(0, color="#777777", linewidth=0.8)
    a1.set_xlabel("round")
    a1.set_ylabel("approval-rate gap (between groups)")
    a1.set_title("approval gap", loc="left")
    h1, l1 = a1.get_legend_handles_labels()
    if h1:
        fig.legend(h1, l1, loc="outside lower center", ncol=min(8, len(h1)), title="variant (colour)",
                   title_fontsize=8)
    a2.set_xlabel("round")
    a2.set_ylabel("group mean score")
    a2.set_title("mean score per group", loc="left")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="#444444", linestyle=styles[i % 4], label=clean_label(f"group {g}", limit=80)) for i, g in enumerate(groups)]
    if handles:
        a2.legend(handles=handles, loc="best", title="line style", title_fontsize=8)
    fig.suptitle(title, x=0.01, ha="left", fontweight="bold", fontsize=11)
    return fig_to_png(fig)
