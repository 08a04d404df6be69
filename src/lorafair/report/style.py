"""One plotting style for every figure: matplotlib's Agg backend, Okabe–Ito colours.

Okabe & Ito (2008), "Color Universal Design": eight colours distinguishable under the common
colour-vision deficiencies. Each variant family keeps one colour throughout the report.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg", force=True)  # no display, deterministic raster output

import matplotlib.pyplot as plt  # noqa: E402

OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}

# Variant families: base is the reference (black), full fine-tuning the target (vermillion).
METHOD_COLORS = {
    "base": OKABE_ITO["black"],
    "full": OKABE_ITO["vermillion"],
    "lora": OKABE_ITO["blue"],
    "dora": OKABE_ITO["bluish_green"],
    "rslora": OKABE_ITO["orange"],
    "pissa": OKABE_ITO["reddish_purple"],
}
# Cycle for runs (compare) and groups; yellow last (weak on white).
CYCLE = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple",
                                "sky_blue", "black", "yellow")]
# Series that are neither base nor full (metrics on one axes): the cycle without black and vermillion.
SERIES_COLORS = [OKABE_ITO[k] for k in ("blue", "bluish_green", "orange", "reddish_purple", "sky_blue", "yellow")]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*"]
HEATMAP_CMAP = "cividis"  # perceptually uniform and colour-vision-deficiency safe

RC = {
    "figure.dpi": 100,
    "savefig.dpi": 110,
    "figure.figsize": (6.4, 3.6),
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "legend.fontsize": 8.5,
    "legend.frameon": False,
    "lines.linewidth": 1.8,
    "lines.markersize": 5,
    "axes.prop_cycle": matplotlib.cycler(color=CYCLE),
}


def method_color(method: str, i: int = 0) -> str:
    return METHOD_COLORS.get(method, CYCLE[(i + 5) % len(CYCLE)])


def fig_to_png(fig) -> bytes:
    """Render and close a figure; no metadata (reproducible bytes, no software URL inside)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # layout="constrained": no second "tight" pass
    plt.close(fig)
    return buf.getvalue()


def report_style():
    """Context manager under which every figure of the report is made and saved."""
    return plt.rc_context(RC)


def new_figure(*, ncols: int = 1, figsize=None):
    """A figure with ``ncols`` axes side by side (call under :func:`report_style`)."""
    return plt.subplots(1, ncols, figsize=figsize or (6.4 if ncols == 1 else 5.0 * ncols, 3.6),
                        layout="constrained")
