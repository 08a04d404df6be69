"""The ``heldout`` study: token-level loss and perplexity of each variant on the held-out split of the
shift data (never trained on). How well each variant fits the data it was asked to learn."""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from lorafair.lm import LM, encode_records
from lorafair.stats.bootstrap import ratio_ci
from lorafair.stats.paired import ratio_of_sums
from lorafair.studies.base import EvalContext, ItemSet, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study


@register_study("heldout")
class HeldoutStudy:
    """Held-out loss and perplexity on the shift data's held-out split."""

    headline = ("loss",)
    metric_specs = (
        MetricSpec("loss", "target", "lower", unit="sequences", stat=ratio_of_sums("nll", "tokens"),
                   doc="token-weighted mean NLL on held-out shift data: how well the variant learned the data"),
        MetricSpec("perplexity", "diagnostic", "lower", doc="exp(loss)"),
    )

    class Config(StudyConfig):
        max_length: int = Field(default=128, gt=1, description="Tokens per sequence.")
        batch_size: int = Field(default=16, gt=0, description="Sequences per forward pass.")
        n_boot: int = Field(default=1000, gt=0, description="Bootstrap resamples (over sequences) for intervals.")

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        c = ctx.study_config
        enc = encode_records(ctx.heldout_data or [], ctx.tokenizer, c.max_length)
        lm = LM(ctx.model, ctx.tokenizer, batch_size=c.batch_size, device=ctx.device, progress=ctx.progress,
                pad_id=ctx.tokenizer.pad_token_id)
        nll, cnt = lm.sequence_nll(enc, desc=f"{ctx.variant.name} held-out")
        nll, cnt = np.asarray(nll), np.asarray(cnt, dtype=np.float64)
        loss, lo, hi = ratio_ci(nll, cnt, n_boot=c.n_boot, seed=ctx.seed)  # token-weighted mean NLL
        rows = [_row("loss", loss, lo, hi, len(enc), lambda x: x), _row("perplexity", loss, lo, hi, len(enc), _exp)]
        items = {"sequences": ItemSet([str(i) for i in range(len(enc))], {"nll": nll, "tokens": cnt})}
        return StudyResult(rows, {"sequences": len(enc), "tokens": int(cnt.sum()), "interval": "95% bootstrap over sequences"},
                           items=items)


def _exp(x: float) -> float:
    """exp(x), ``inf`` where it overflows a float (a loss above ~709)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _row(metric: str, loss, lo, hi, n: int, f) -> MetricRow:
    """A metric computed as ``f`` of the loss and its bounds; a value that is not finite (a diverged model's
    loss, or perplexity = exp(loss) beyond a float) is written as missing with a note — never as NaN or
    Infinity, which JSON cannot hold."""
    value = f(float(loss)) if _finite(loss) else math.nan
    if not _finite(value):
        why = f"loss {float(loss):.6g}" if _finite(loss) else "the loss is not finite"
        return MetricRow(metric, None, None, None, n=n, note=f"undefined: {metric} is not finite ({why})")
    lo = f(float(lo)) if _finite(lo) else None
    hi = f(float(hi)) if _finite(hi) else None
    return MetricRow(metric, value, lo if _finite(lo) else None, hi if _finite(hi) else None, n=n)
