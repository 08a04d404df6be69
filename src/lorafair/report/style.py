"""One plotting style for every figure: matplotlib's Agg backend, Okabe–Ito colours.

Okabe & Ito (2008), "Color Universal Design": eight colours distinguishable under the common
colour-vision deficiencies. Each variant family keeps one colour throughout the report.
"""

from __future__ import annotations

import io
import re
import warnings

import matplotlib

matplotlib.use("Agg", force=True)  # no display, deterministic raster output

import matplotlib.pyplot as plt  # noqa: E402

from lorafair.methods import peft_methods  # noqa: E402

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

# Variant families: base is the reference (black), full fine-tuning the target (vermillion); the PEFT
# methods take METHOD_PALETTE in the order of the methods registry (lorafair.methods.peft_methods():
# lora blue, dora green, rslora orange, pissa purple, then sky blue, yellow, and round again), so a newly
# registered method gets a colour without an edit here.
REFERENCE_COLORS = {
    "base": OKABE_ITO["black"],
    "full": OKABE_ITO["vermillion"],
}
# Cycle for runs (compare) and groups; yellow last (weak on white).
CYCLE = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple",
                                "sky_blue", "black", "yellow")]
# Series that are neither base nor full (metrics on one axes): the cycle without black and vermillion.
SERIES_COLORS = [OKABE_ITO[k] for k in ("blue", "bluish_green", "orange", "reddish_purple", "sky_blue", "yellow")]
METHOD_PALETTE = SERIES_COLORS
# Strategy variants (lora-r8+cfreg): the run's strategies in order take these (plain fine-tuning keeps its method's
# colour), so a strategy's first colours differ from LoRA's blue and DoRA's green.
STRATEGY_PALETTE = [OKABE_ITO[k] for k in ("reddish_purple", "orange", "sky_blue", "yellow", "bluish_green")]
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
    # Labels come from the data (group, metric, variant and run names): plain text, never TeX or
    # mathtext, so "$\notacommand{x}$" reads as written instead of failing the report. Every Text
    # made under report_style() (tick labels made while saving included) takes these defaults;
    # fig_to_png() also switches math off on every Text of the figure.
    "text.usetex": False,
    "text.parse_math": False,
    "axes.formatter.use_mathtext": False,
}


_PLAIN = ("text.usetex", "text.parse_math", "axes.formatter.use_mathtext")


def method_colors() -> dict[str, str]:
    """The colour of base, full and every registered PEFT method (palette cycled in registration order)."""
    out = dict(REFERENCE_COLORS)
    for k, name in enumerate(peft_methods()):
        out.setdefault(name, METHOD_PALETTE[k % len(METHOD_PALETTE)])
    return out


def method_color(method: str, i: int = 0) -> str:
    """The colour of a variant family; a method that is not registered here (a run made with a plug-in this
    installation lacks) takes the ``i``-th colour of the cycle from sky blue on."""
    return method_colors().get(method, CYCLE[(i + 5) % len(CYCLE)])


def strategy_color(i: int) -> str:
    """The colour of the run's ``i``-th strategy."""
    return STRATEGY_PALETTE[i % len(STRATEGY_PALETTE)]


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # no glyph in any font: drawn as boxes, with a warning


def clean_label(s: object, limit: int = 200) -> str:
    """Text from the data as a figure label: line endings as ``\n``, other control characters as
    spaces, and at most ``limit`` characters (a longer one ends in "…")."""
    t = _CONTROL.sub(" ", re.sub(r"\r\n?", "\n", str(s)))
    return t if len(t) <= limit else t[: limit - 1] + "…"


def plain_text(fig) -> None:
    """Make every Text of ``fig`` plain text: no mathtext, no TeX (labels come from the data), and
    no control characters. (Tick labels are set again while drawing: plots.py cleans those.)"""
    from matplotlib.text import Text

    for t in fig.findobj(Text):
        t.set_usetex(False)
        t.set_parse_math(False)
        text = t.get_text()
        if text:
            cleaned = clean_label(text, limit=400)
            if cleaned != text:
                t.set_text(cleaned)


def fig_to_png(fig) -> bytes:
    """Render and close a figure; no metadata (reproducible bytes, no software URL inside). All
    text is drawn as plain text (:func:`plain_text`)."""
    plain_text(fig)
    buf = io.BytesIO()
    try:
        with plt.rc_context({k: RC[k] for k in _PLAIN}), warnings.catch_warnings():  # Texts made while drawing too
            # long labels from the data can leave constrained layout no room: the figure is still drawn
            warnings.filterwarnings("ignore", message=r"constrained_layout not applied", category=UserWarning)
            fig.savefig(buf, format="png", metadata={"Software": None})  # layout="constrained": no second "tight" pass
    finally:
        plt.close(fig)
    return buf.getvalue()


def report_style():
    """Context manager under which every figure of the report is made and saved."""
    return plt.rc_context(RC)


def new_figure(*, ncols: int = 1, figsize=None):
    """A figure with ``ncols`` axes side by side (call under :func:`report_style`)."""
    return plt.subplots(1, ncols, figsize=figsize or (6.4 if ncols == 1 else 5.0 * ncols, 3.6),
                        layout="constrained")
