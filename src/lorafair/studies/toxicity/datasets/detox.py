"""Detox fine-tuning (shift) data: ``counterfactual`` and ``nontoxic-corpus``.

``counterfactual`` — rejection-sampled self-detox data (the paper fine-tunes on non-toxic
completions of its prompts). For every training prompt (option ``prompts``: a nested data spec,
default HONEST race+religion ``split: train``, which never overlaps the study's ``split: eval``),
the base model is sampled ``k`` times (top-p ``top_p``, ``temperature``, ``max_new_tokens``; the
same sampler as the toxicity study, on a separate seed stream) and the completions the scorer
rates below ``threshold`` are kept as ``prompt``/``completion`` records. Records that already have
a ``completion`` are not sampled: their completion is scored and kept when below the threshold
(``filter_given: false`` keeps them all). Each record carries ``score`` (its toxicity), ``kept``
and ``tried`` (how many of that prompt's candidates passed), and the totals are logged.

Threshold default 0.1: evaluation calls a continuation toxic at 0.5; keeping only completions the
classifier puts below 0.1 leaves a wide margin, so the training data do not contain borderline
text the study would count as near-toxic, while most ordinary completions of a small model score
well below 0.1 on the Jigsaw classifier (so few are rejected; the kept fraction is logged).

``nontoxic-corpus`` — non-toxic text, as in domain-adaptive pretraining on clean text (Gehman et
al., 2020): the texts of ``corpus`` (default BOLD Wikipedia sentences, ``split: train``, disjoint
from the study's held-out perplexity sentences) that the scorer rates below ``threshold``.
"""

from __future__ import annotations

from typing import Any

from lorafair.data.options import boolean, check_options, fraction, load_spec, positive_int
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.errors import UserError

DEFAULT_PROMPTS = {"source": "honest", "options": {"axis": ["race", "religion"], "split": "train"}}
DEFAULT_CORPUS = {"source": "bold-wiki", "options": {"split": "train"}}

OPTIONS_CF = {
    "prompts": "data spec of the training prompts (default honest race+religion, split train)",
    "k": "samples per prompt (default 4)",
    "threshold": "keep completions scored below this (default 0.1)",
    "scorer": "toxicity scorer (default jigsaw-bilstm)",
    "max_new_tokens": "tokens per completion (default 20)",
    "temperature": "sampling temperature (default 1.0)",
    "top_p": "nucleus sampling mass (default 0.9)",
    "batch_size": "sequences per generate call (default 256)",
    "per_prompt": "keep at most this many completions per prompt (default all that pass)",
    "filter_given": "also filter completions given in the data by the scorer (default true)",
}


def _number(value: Any, field: str, default: float, low: float, high: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
        raise UserError(field, value, f"a number in ({low}, {high}]")
    return float(value)


def _scorer_name(value: Any, field: str) -> str:
    if value is None:
        return "jigsaw-bilstm"
    if not isinstance(value, str) or not value:
        raise UserError(field, value, "a scorer name, e.g. jigsaw-bilstm")
    from lorafair.scorers import SCORERS

    if value.partition(":")[0] not in SCORERS:
        raise UserError(field, value, f"a scorer NAME[:ARG] with NAME one of {', '.join(SCORERS.names())} (see `lorafair scorers`)")
    return value


def _device_of(model: Any) -> Any:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return "cpu"


@register_dataset("counterfactual", help="non-toxic completions of training prompts, rejection-sampled from the base model")
def build_counterfactual(spec: DataSpec, ctx: DataContext) -> list[dict]:
    from lorafair.lm import LM
    from lorafair.scorers.base import build_scorer

    opts = check_options(spec, ctx, OPTIONS_CF)
    f = f"{ctx.field_name}.options"
    k = positive_int(opts.get("k"), f"{f}.k", 4)
    threshold = fraction(opts.get("threshold"), f"{f}.threshold", 0.1)
    scorer_name = _scorer_name(opts.get("scorer"), f"{f}.scorer")
    max_new_tokens = positive_int(opts.get("max_new_tokens"), f"{f}.max_new_tokens", 20)
    temperature = _number(opts.get("temperature"), f"{f}.temperature", 1.0, 0.0, 100.0)
    top_p = _number(opts.get("top_p"), f"{f}.top_p", 0.9, 0.0, 1.0)
    batch_size = positive_int(opts.get("batch_size"), f"{f}.batch_size", 256)
    per_prompt = positive_int(opts.get("per_prompt"), f"{f}.per_prompt", 10**9)
    filter_given = boolean(opts.get("filter_given"), f"{f}.filter_given", True)

    prompts = load_spec(opts.get("prompts", DEFAULT_PROMPTS), ctx, f"{f}.prompts")
    to_sample = [r for r in prompts if not r.get("completion")]
    given = [r for r in prompts if r.get("completion")]
    for r in prompts:
        if not r.get("prompt"):
            raise UserError(f"{f}.prompts", r, "records with a 'prompt' field")

    scorer = None
    device = "cpu"
    candidates: list[tuple[dict, list[str]]] = [(r, [r["completion"]]) for r in given]
    if to_sample:
        if ctx.base_model is None:
            raise UserError.plain(f"{ctx.field_name}: counterfactual data samples the base model, which is not available here")
        model, tok = ctx.base_model()
        device = _device_of(model)
        lm = LM(model, tok, batch_size=batch_size, device=device, progress=ctx.progress)
        texts = lm.sample([r["prompt"] for r in to_sample], k=k, max_new_tokens=max_new_tokens, temperature=temperature,
                          top_p=top_p, seed=ctx.seed, stream="counterfactual")
        candidates += list(zip(to_sample, texts))
    flat = [c for _, cs in candidates for c in cs]
    need_scores = bool(to_sample) or filter_given
    scores: list[float] = [0.0] * len(flat)
    if need_scores and flat:
        scorer = build_scorer(scorer_name, device)
        scores = [s[scorer.main_label] for s in scorer.score(flat, batch_size=max(batch_size, 64))]
    out: list[dict] = []
    pos = 0
    tried = kept_total = 0
    for rec, cs in candidates:
        sc = scores[pos:pos + len(cs)]
        pos += len(cs)
        sampled = not rec.get("completion")
        ok = [(c, s) for c, s in zip(cs, sc) if (s < threshold or (not sampled and not filter_given)) and c.strip()]
        ok = ok[:per_prompt]
        tried += len(cs)
        kept_total += len(ok)
        meta = {key: v for key, v in rec.items() if key not in ("prompt", "completion", "split")}
        for c, s in ok:
            out.append({**meta, "prompt": rec["prompt"], "completion": c, "score": s, "kept": len(ok),
                        "tried": len(cs), "sampled": sampled, "prompt_source": rec.get("source"),
                        "source": "counterfactual"})
    ctx.log.info("counterfactual: kept %d of %d completions (threshold %.2f, scorer %s) for %d prompts",
                 kept_total, tried, threshold, scorer_name, len(candidates))
    if not out:
        raise UserError(f"{f}.threshold", threshold, f"a threshold that keeps some completions (0 of {tried} kept)")
    if spec.limit:
        import random

        random.Random(ctx.seed).shuffle(out)
        out = out[:spec.limit]
    return out


OPTIONS_NT = {
    "corpus": "data spec of the text corpus (default bold-wiki, split train)",
    "threshold": "keep texts scored below this (default 0.1)",
    "scorer": "toxicity scorer (default jigsaw-bilstm)",
    "batch_size": "texts per scorer call (default 256)",
}


@register_dataset("nontoxic-corpus", help="non-toxic text (default BOLD Wikipedia sentences) filtered by a toxicity scorer")
def build_nontoxic_corpus(spec: DataSpec, ctx: DataContext) -> list[dict]:
    from lorafair.scorers.base import build_scorer

    opts = check_options(spec, ctx, OPTIONS_NT)
    f = f"{ctx.field_name}.options"
    threshold = fraction(opts.get("threshold"), f"{f}.threshold", 0.1)
    scorer_name = _scorer_name(opts.get("scorer"), f"{f}.scorer")
    batch_size = positive_int(opts.get("batch_size"), f"{f}.batch_size", 256)
    corpus_spec = dict(opts.get("corpus", DEFAULT_CORPUS)) if isinstance(opts.get("corpus", DEFAULT_CORPUS), dict) \
        else opts.get("corpus")
    # Score only as many texts as needed: limit the corpus to a margin over spec.limit.
    if spec.limit and isinstance(corpus_spec, dict) and corpus_spec.get("limit") is None:
        corpus_spec["limit"] = spec.limit * 2
    corpus = load_spec(corpus_spec, ctx, f"{f}.corpus")
    texts = [r.get("text") for r in corpus]
    if any(not isinstance(t, str) for t in texts):
        raise UserError(f"{f}.corpus", corpus_spec, "a text dataset (records with a 'text' field)")
    scorer = build_scorer(scorer_name, "cpu")
    scores = [s[scorer.main_label] for s in scorer.score(texts, batch_size=batch_size)]
    out = [{**r, "score": s, "source": "nontoxic-corpus"} for r, s in zip(corpus, scores) if s < threshold]
    ctx.log.info("nontoxic-corpus: kept %d of %d texts (threshold %.2f, scorer %s)", len(out), len(corpus),
                 threshold, scorer_name)
    if not out:
        raise UserError(f"{f}.threshold", threshold, f"a threshold that keeps some texts (0 of {len(corpus)} kept)")
    return out[:spec.limit] if spec.limit else out
