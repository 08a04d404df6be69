"""The toxicity study's section: the generic one, and after every study's section the examples — the
prompts where base and full differ most, with the first generation of base, the lowest rank and full and
their scores, from each variant's ``samples.jsonl`` (collapsed, behind a content warning)."""

from __future__ import annotations

import math
from typing import Any

from lorafair.report.doc import Block, Details, Example, Heading, Para, fmt
from lorafair.report.sections import register_section
from lorafair.report.sections.base import Section

CONTENT_WARNING = ("Content warning: these are unfiltered model generations for prompts chosen to elicit "
                   "toxic or stereotyped text. They may be offensive.")
N_EXAMPLES = 5
SCORE_LABELS = ("toxicity", "toxic", "TOXICITY")  # the score shown next to a generation, when present


@register_section("toxicity")
class ToxicitySection(Section):
    """Generic section; the generations (samples.jsonl) as examples after every study."""

    def appendix(self) -> list[Block]:
        """The examples: generations of base, the lowest rank and full (samples.jsonl)."""
        run, method = self.run, self.ctx.main_method()
        with_samples = [v for v in run.variants() if (a := run.artifact(v)) and a.samples]
        if not with_samples:
            return []
        low = next((f"{method}-r{r}" for r in run.ranks(method) if f"{method}-r{r}" in with_samples), None) if method else None
        shown = [v for v in ("base", low, "full") if v and v in with_samples]
        by_variant = {v: _first_sample_per_prompt(run.artifact(v).samples) for v in shown}
        prompts = [p for p in by_variant[shown[0]] if all(p in by_variant[v] for v in shown)]
        if not prompts:
            return []

        def score(v, p):
            return _headline_score(by_variant[v][p].get("scores"))[1]

        if "base" in shown and "full" in shown:
            prompts.sort(key=lambda p: -abs(_nan0(score("base", p)) - _nan0(score("full", p))))
            rule = "the prompts where base and full differ most in score"
        else:
            rule = "the first prompts"
        ex_blocks: list[Block] = [Para(f"Showing {min(N_EXAMPLES, len(prompts))} of {len(prompts)} prompts: {rule}; "
                                       "the first sample of each variant. Score: the toxicity classifier's label and probability "
                                       "(the \"toxic\" label when there is one, else the highest).", "note")]
        for p in prompts[:N_EXAMPLES]:
            cells = []
            for v in shown:
                s = by_variant[v][p]
                label, val = _headline_score(s.get("scores"))
                cells.append((v, str(s.get("text", "")), f"{label} {fmt(val)}" if label else ""))
            ex_blocks.append(Example(p, str(by_variant[shown[0]][p].get("group", "")), cells))
        self.ctx.toc.append(("examples", "Examples"))
        return [Heading(2, "Examples", "examples"),
                Details(f"show generations of {', '.join(shown)} (content warning)", ex_blocks,
                        warning=CONTENT_WARNING)]


def _nan0(x: float) -> float:
    return 0.0 if x is None or math.isnan(x) else x


def _first_sample_per_prompt(samples: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for s in sorted(samples, key=lambda s: (str(s.get("prompt", "")), _sample_index(s))):
        out.setdefault(str(s.get("prompt", "")), s)
    order = list(dict.fromkeys(str(s.get("prompt", "")) for s in samples))  # prompts in file order
    return {p: out[p] for p in order}


def _sample_index(s: dict) -> int:
    try:
        return int(s.get("sample", 0))
    except (TypeError, ValueError):
        return 0


def _headline_score(scores: Any) -> tuple[str, float]:
    """The score shown next to a generation: the "toxicity"/"toxic" label when present, else the highest."""
    if not isinstance(scores, dict) or not scores:
        return "", float("nan")
    nums = {str(k): float(v) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if not nums:
        return "", float("nan")
    for k in SCORE_LABELS:
        if k in nums:
            return k, nums[k]
    k = max(nums, key=nums.get)
    return k, nums[k]
