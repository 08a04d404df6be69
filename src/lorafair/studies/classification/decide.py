"""The decision of a causal LM on a yes/no prompt: the log-odds of the answers " yes" vs " no".

For a prompt x, ``log_odds(x) = log P(" yes" | x) - log P(" no" | x)`` where ``log P(a | x)`` is the sum
of the next-token log-probabilities of the tokens of ``a`` (the prompt and the answer are tokenized
separately and concatenated, as lm-evaluation-harness scores a continuation). When both answers are a
single token (SmolLM2: " yes" and " no" are), one forward pass per batch gives both, keeping only the
last position's logits; otherwise one pass per answer keeps the logits of the answer's positions.

The decision is ``log_odds > threshold`` (label 1 = the dataset's positive class). ``threshold`` 0 is
"yes is more likely than no". :func:`prior_threshold` is the calibrated alternative: the threshold at
which the share of "yes" decisions equals a given base rate (the positive rate of the training split).

Batches are left-padded with explicit ``position_ids`` (cumulative sum of the attention mask), so a
record's score does not depend on its batch (tested: batched equals one-by-one). The scoring itself is
:meth:`lorafair.lm.LM.answer_logprobs` (shared with the decisions study).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lorafair.lm import LM
from lorafair.studies.classification.tabular.render import NO, YES


def answer_log_probs(
    model, tokenizer, prompts: Sequence[str], answers: Sequence[str] = (YES, NO), *,
    batch_size: int = 16, device=None, progress: bool = False,
) -> np.ndarray:
    """``log P(answer | prompt)`` for every prompt (rows) and answer (columns), float64 array
    (:meth:`lorafair.lm.LM.answer_logprobs`: left padding with position ids, prompts batched by length)."""
    lm = LM(model, tokenizer, batch_size=batch_size, device=device, progress=progress)
    return lm.answer_logprobs(prompts, answers, padding="left", order="ascending", desc="yes/no scores")


def yes_no_log_odds(model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16, device=None, progress: bool = False) -> np.ndarray:
    """``log P(" yes" | x) - log P(" no" | x)`` for every prompt x."""
    lp = answer_log_probs(model, tokenizer, prompts, (YES, NO), batch_size=batch_size, device=device, progress=progress)
    return lp[:, 0] - lp[:, 1]


def prior_threshold(log_odds: np.ndarray, base_rate: float) -> float:
    """Threshold t such that the share of ``log_odds > t`` is ``base_rate`` (up to ties): the
    ``1 - base_rate`` quantile of the log-odds (numpy's linear interpolation)."""
    if not 0.0 <= base_rate <= 1.0:
        raise ValueError("base_rate must be in [0, 1]")
    return float(np.quantile(np.asarray(log_odds, dtype=np.float64), 1.0 - base_rate))


def decide(log_odds: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Decisions (1 = yes = positive class) ``log_odds > threshold`` as an int array."""
    return (np.asarray(log_odds) > threshold).astype(int)
