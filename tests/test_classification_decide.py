"""Yes/no log-odds of a causal LM: batched equals one-by-one equals a plain unpadded computation."""

import numpy as np
import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.classification.decide import (
    answer_log_probs,
    decide,
    prior_threshold,
    yes_no_log_odds,
)

PROMPTS = [
    "The person is 39 years old.\nQuestion: Does this person earn more than $50,000 a year?\nAnswer:",
    "Q?\nAnswer:",
    "The applicant's sex is Female. Savings: ... < 100 DM.\nQuestion: good?\nAnswer:",
    "x",
    "Age: 22. Job: skilled employee/ official.\nAnswer:",
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny("llama")


def _reference(model, tok, prompt, answer):
    """Sum of log P(answer token | prefix) from one unpadded forward pass over prompt + answer."""
    p = tok(prompt)["input_ids"]
    a = tok(answer, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + a])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), -1)
    return float(sum(logp[len(p) - 1 + j, t] for j, t in enumerate(a)))


@pytest.mark.parametrize("answers", [(" yes", " no"), ("y", "n")])  # multi-token and single-token paths
def test_batched_equals_one_by_one_and_reference(tiny, answers):
    model, tok = tiny
    batched = answer_log_probs(model, tok, PROMPTS, answers, batch_size=3)
    single = np.vstack([answer_log_probs(model, tok, [p], answers, batch_size=1) for p in PROMPTS])
    ref = np.array([[_reference(model, tok, p, a) for a in answers] for p in PROMPTS])
    assert batched.shape == (len(PROMPTS), 2)
    np.testing.assert_allclose(batched, single, atol=1e-4)
    np.testing.assert_allclose(batched, ref, atol=1e-4)


def test_log_odds_and_decisions_independent_of_batch_size(tiny):
    model, tok = tiny
    a = yes_no_log_odds(model, tok, PROMPTS, batch_size=16)
    b = yes_no_log_odds(model, tok, PROMPTS, batch_size=1)
    np.testing.assert_allclose(a, b, atol=1e-4)
    lp = answer_log_probs(model, tok, PROMPTS, batch_size=2)
    np.testing.assert_allclose(a, lp[:, 0] - lp[:, 1], atol=1e-5)  # batch 16 vs batch 2: float32 reduction order differs
    assert (decide(a, 0.0) == decide(b, 0.0)).all()


def test_decide_and_prior_threshold():
    lo = np.array([-2.0, -1.0, 0.0, 0.5, 3.0])
    assert decide(lo).tolist() == [0, 0, 0, 1, 1]  # strictly greater than the threshold
    assert decide(lo, -1.5).tolist() == [0, 1, 1, 1, 1]
    t = prior_threshold(lo, 0.4)  # 60% quantile of the log-odds
    assert t == pytest.approx(np.quantile(lo, 0.6))
    assert decide(lo, t).mean() == pytest.approx(0.4)
    with pytest.raises(ValueError, match="base_rate"):
        prior_threshold(lo, 1.5)


def test_bad_batch_size(tiny):
    model, tok = tiny
    with pytest.raises(ValueError, match="batch_size"):
        answer_log_probs(model, tok, PROMPTS, batch_size=0)
