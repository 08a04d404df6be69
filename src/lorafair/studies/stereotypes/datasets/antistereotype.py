"""``antistereotype``: anti-stereotypical sentences of CrowS-Pairs and StereoSet, for debias fine-tuning;
``stereotype``: the stereotypical side of the same items, for a biased starting model (the ``bias`` recipe's
controlled start, as ``redditbias-comments`` is ``detox-controlled``'s).

- CrowS-Pairs: ``sent_less`` (the less stereotyping sentence of each pair; ``stereotype``: ``sent_more``, the
  sentence whose higher likelihood CrowS-Pairs counts as a stereotyped preference);
- StereoSet (dev file): the anti-stereotype sentence (``stereotype``: the stereotype sentence); intrasentence:
  the filled sentence; intersentence: ``context + " " + sentence``.

The split is by item id, deterministic and seed-independent
(:func:`lorafair.studies.stereotypes.sampling.split_items`); the default ``split: train`` is the
complement of the ``eval`` items the ``stereotypes`` study evaluates by default, so fine-tuning on
this dataset never sees an evaluated item.
"""

from __future__ import annotations

from lorafair.data.options import check_options, choice, choice_list
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.errors import UserError

SOURCES = ("crows", "stereoset-intrasentence", "stereoset-intersentence")
OPTIONS = {
    "sources": f"any of {', '.join(SOURCES)} (default all)",
    "split": "train (default) | eval | all: the split by item id shared with the stereotypes study",
}


@register_dataset("antistereotype", help="anti-stereotypical sentences (CrowS-Pairs, StereoSet) from a split disjoint from evaluation")
def build_antistereotype(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Records ``{"text", "source", "group" (bias type), "id", "split"}``."""
    return _sentences(spec, ctx, stereotyped=False)


@register_dataset("stereotype", help="stereotypical sentences (CrowS-Pairs, StereoSet) from a split disjoint from evaluation "
                  "(a biased starting model)")
def build_stereotype(spec: DataSpec, ctx: DataContext) -> list[dict]:
    """Records ``{"text", "source", "group" (bias type), "id", "split"}``: the other side of ``antistereotype``'s."""
    return _sentences(spec, ctx, stereotyped=True)


def _sentences(spec: DataSpec, ctx: DataContext, stereotyped: bool) -> list[dict]:
    from lorafair.studies.stereotypes import crows, stereoset
    from lorafair.studies.stereotypes.sampling import split_items

    opts = check_options(spec, ctx, OPTIONS)
    f = ctx.field_name
    sources = choice_list(opts.get("sources"), f"{f}.options.sources", SOURCES, list(SOURCES))
    split = choice(opts.get("split"), f"{f}.options.split", ("train", "eval", "all"), "train")
    out: list[dict] = []
    if "crows" in sources:
        for it in split_items(crows.load_crows(), "crows", split):
            out.append({"text": it["sent_more" if stereotyped else "sent_less"], "source": "crows", "group": it["bias_type"], "id": it["id"], "split": split})
    for task in ("intrasentence", "intersentence"):
        if f"stereoset-{task}" not in sources:
            continue
        for it in split_items(stereoset.load_stereoset(task), "stereoset", split):
            anti = it["sentences"]["stereotype" if stereotyped else "anti-stereotype"]
            text = anti if task == "intrasentence" else f"{it['context']} {anti}"
            out.append({"text": text, "source": f"stereoset-{task}", "group": it["bias_type"], "id": it["id"], "split": split})
    if not out:
        raise UserError(f"{f}.options", opts, "options that select at least one sentence")
    return out
