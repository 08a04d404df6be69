"""Token-level loss and perplexity of each variant on text it never trained on, two studies:

- ``heldout``: on the held-out split of the shift data: how well each variant learned the data it was
  asked to learn (a target);
- ``forgetting``: on general text that no variant trained on (default: BOLD's Wikipedia sentences of the
  eval split, whose pages are disjoint from every ``split: train`` use of BOLD): what the fine-tune cost
  elsewhere (a guard). The runner's paired ``delta_loss`` = loss(v) − loss(base) is the forgetting as
  PEFT's method comparison reports it (the change of per-token loss on Wikipedia text).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from lorafair.data.registry import DataSpec
from lorafair.lm import LM, encode_records
from lorafair.stats import paired as ps
from lorafair.stats.bootstrap import ratio_ci
from lorafair.stats.paired import ratio_of_sums
from lorafair.studies.base import EvalContext, ItemSet, MetricRow, MetricSpec, StudyConfig, StudyResult, register_study


@register_study("heldout")
class HeldoutStudy:
    """Held-out loss and perplexity on the shift data's held-out split."""

    co_evaluate = True  # the seed's held-out records

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
        return loss_result(ctx, ctx.heldout_data or [], max_length=c.max_length, batch_size=c.batch_size,
                           n_boot=c.n_boot, unit="sequences", desc="held-out", digest_ids=False)


FORGETTING_DATA = {"source": "bold-wiki", "options": {"split": "eval"}, "limit": 100}


@register_study("forgetting")
class ForgettingStudy:
    """Loss on general text no variant trained on (a guard: what the fine-tune cost elsewhere)."""

    co_evaluate = True  # the same general text for every variant

    headline = ("loss",)
    metric_specs = (
        MetricSpec("loss", "guard", "lower", unit="texts", stat=ratio_of_sums("nll", "tokens"),
                   doc="token-weighted mean NLL on general text no variant trained on (default: held-out BOLD Wikipedia "
                   "sentences); delta_loss = loss(v) − loss(base) is the forgetting (must not get worse)"),
        MetricSpec("perplexity", "diagnostic", "lower", doc="exp(loss) on the general text"),
    )

    class Config(StudyConfig):
        data: DataSpec = Field(
            default_factory=lambda: DataSpec.model_validate(FORGETTING_DATA),
            description="General text that no variant trained on (records with text, or prompt + completion: all "
            "of it is scored). Default: 100 BOLD Wikipedia sentences of the eval split (pages disjoint from "
            "`split: train` BOLD text); keep it disjoint from the run's training data.",
        )
        max_length: int = Field(default=128, gt=1, description="Tokens per text (truncation).")
        batch_size: int = Field(default=16, gt=0, description="Texts per forward pass.")
        n_boot: int = Field(default=1000, gt=0, description="Bootstrap resamples (over texts) for intervals.")

    def evaluate(self, ctx: EvalContext) -> StudyResult:
        from lorafair.data.options import load_spec
        from lorafair.data.registry import DataContext

        c = ctx.study_config
        records = load_spec(c.data, DataContext(seed=ctx.seed, log=ctx.log, progress=False), "studies.forgetting.data")
        texts = [{"text": r.get("text") or (r.get("prompt") or "") + (r.get("completion") or "")} for r in records]
        texts = [t for t in texts if t["text"]]
        res = loss_result(ctx, texts, max_length=c.max_length, batch_size=c.batch_size, n_boot=c.n_boot, unit="texts",
                          desc="forgetting", digest_ids=True)
        res.info["data"] = c.data.model_dump()
        return res


def loss_result(ctx: EvalContext, records: list[dict], *, max_length: int, batch_size: int, n_boot: int, unit: str,
                desc: str, digest_ids: bool) -> StudyResult:
    """``loss`` (token-weighted mean NLL, bootstrap interval over records) and ``perplexity`` of the variant on
    ``records``, with per-record items (``nll``, ``tokens``) in item set ``unit``. Item ids: the index among the
    scored records, with ``digest_ids`` followed by ``|`` and the text's digest (records with nothing to score
    are left out)."""
    kept = [r for r in records if encode_records([r], ctx.tokenizer, max_length)] if digest_ids else records
    enc = encode_records(kept, ctx.tokenizer, max_length)
    lm = LM(ctx.model, ctx.tokenizer, batch_size=batch_size, device=ctx.device, progress=ctx.progress,
            pad_id=ctx.tokenizer.pad_token_id)
    nll, cnt = lm.sequence_nll(enc, desc=f"{ctx.variant.name} {desc}")
    nll, cnt = np.asarray(nll), np.asarray(cnt, dtype=np.float64)
    loss, lo, hi = ratio_ci(nll, cnt, n_boot=n_boot, seed=ctx.seed)  # token-weighted mean NLL
    rows = [_row("loss", loss, lo, hi, len(enc), lambda x: x), _row("perplexity", loss, lo, hi, len(enc), _exp)]
    ids = [f"{i}|{ps.text_digest(r.get('text') or '')}" for i, r in enumerate(kept)] if digest_ids else [
        str(i) for i in range(len(enc))]
    items = {unit: ItemSet(ids, {"nll": nll, "tokens": cnt})}
    return StudyResult(rows, {unit: len(enc), "tokens": int(cnt.sum()), "interval": f"95% bootstrap over {unit}"},
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
