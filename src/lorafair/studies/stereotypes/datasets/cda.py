"""``cda``: counterfactual data augmentation (Zhao et al. 2018; Lu et al. 2020) of a text corpus.

Every text of the corpus (default ``bold-wiki``, BOLD's Wikipedia sentences) that contains an
identity term of the chosen axes gets a counterfactual copy with the terms swapped (lists in
:mod:`lorafair.data.wordlists`). The output holds the counterfactuals and, with
``keep_original`` (default true), the originals too: the two-sided CDA training set.
"""

from __future__ import annotations

from lorafair.data.wordlists import AXES, augment, axes_mapping
from lorafair.data.options import boolean, check_options, choice_list
from lorafair.data.registry import DATASETS, DataContext, DataSpec, register_dataset
from lorafair.errors import UserError

OPTIONS = {
    "corpus": "a registered text dataset to augment (default bold-wiki)",
    "corpus_options": "options passed to the corpus builder (default {})",
    "axes": f"identity axes to swap: {', '.join(AXES)} (default gender)",
    "keep_original": "also keep the original texts that were swapped (default true)",
    "keep_unchanged": "also keep texts without any identity term (default false)",
}


@register_dataset("cda", help="counterfactual data augmentation: identity terms swapped in a corpus (default bold-wiki)")
def build_cda(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Records ``{"text", "counterfactual": bool, "swaps": n, "source_text"}`` plus the corpus metadata."""
    opts = check_options(spec, ctx, OPTIONS)
    f = ctx.field_name
    axes = choice_list(opts.get("axes"), f"{f}.options.axes", AXES, ["gender"])
    keep_original = boolean(opts.get("keep_original"), f"{f}.options.keep_original", True)
    keep_unchanged = boolean(opts.get("keep_unchanged"), f"{f}.options.keep_unchanged", False)
    corpus = opts.get("corpus", "bold-wiki")
    if corpus == "cda" or not isinstance(corpus, str):
        raise UserError(f"{f}.options.corpus", corpus, "the name of another registered text dataset")
    corpus_options = opts.get("corpus_options") or {}
    if not isinstance(corpus_options, dict):
        raise UserError(f"{f}.options.corpus_options", corpus_options, "a mapping of options")
    builder = DATASETS.get(corpus) if corpus in DATASETS else None
    if builder is None:
        raise UserError(f"{f}.options.corpus", corpus, f"one of {', '.join(DATASETS.names())}")
    sub = DataSpec(source=corpus, options=corpus_options)
    sub_ctx = DataContext(seed=ctx.seed, log=ctx.log, progress=ctx.progress, cache_dir=ctx.cache_dir,
                          base_model=ctx.base_model, field_name=f"{f}.options.corpus")
    rows = builder(sub, sub_ctx)
    for r in rows:
        if not isinstance(r.get("text"), str):
            raise UserError(f"{f}.options.corpus", corpus, "a dataset of text records")
    out = augment(rows, axes_mapping(axes), keep_original, keep_unchanged)
    if not out:
        raise UserError(f"{f}.options", opts, "options under which some corpus text contains an identity term")
    return out
