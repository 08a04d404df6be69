"""Nucleus sampling without a full-vocabulary sort (lorafair.lm.nucleus) against HF's warpers."""

import math

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from lorafair.lm.nucleus import NucleusSampler, nucleus_sample


def hf_probs(logits, temperature, top_p):
    """The distribution ``generate(do_sample=True, temperature, top_p, top_k=0)`` draws from."""
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, dim=-1)


def test_hand_computed_nucleus_and_draws():
    # probabilities 0.5, 0.3, 0.15, 0.05; top_p 0.7: the tokens before 0.15 carry 0.8 >= 0.7, so the nucleus
    # is {0.5, 0.3}, renormalised to 0.625 / 0.375 (HF: ascending sums 0.05, 0.2 <= 0.3 are removed)
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    assert torch.allclose(hf_probs(logits, 1.0, 0.7), torch.tensor([[0.0, 0.625, 0.0, 0.375]]))
    pick = lambda u: int(nucleus_sample(logits, 0.7, torch.tensor([u]), steps=(2,)))  # noqa: E731
    assert [pick(0.0), pick(0.62), pick(0.63), pick(0.999999)] == [1, 1, 3, 3]


@pytest.mark.parametrize("temperature,top_p", [(1.0, 0.9), (0.7, 0.5), (1.3, 0.95), (1.0, 1.0)])
def test_draws_follow_hf_distribution(temperature, top_p):
    torch.manual_seed(0)
    vocab, n = 60, 40_000
    logits = torch.randn(3, vocab) * torch.tensor([[0.5], [2.0], [6.0]])
    want = hf_probs(logits, temperature, top_p)
    sampler = NucleusSampler(temperature, top_p)
    for r in range(3):
        rows = logits[r].expand(n, vocab).clone()
        token = sampler(None, rows).argmax(-1)
        freq = torch.bincount(token, minlength=vocab).double() / n
        p = want[r].double()
        assert (freq[p == 0] == 0).all()  # never outside HF's nucleus
        sd = torch.sqrt(p * (1 - p) / n)
        assert ((freq - p).abs() <= 5 * sd + 1e-12).all()


def test_candidate_sets_and_full_sort_give_the_same_draw():
    # rows whose nucleus is larger than the first candidate set are retried: the same token as the full sort
    torch.manual_seed(1)
    logits = torch.randn(64, 5000) * torch.linspace(0.2, 8, 64).unsqueeze(1)
    u = torch.rand(64)
    full = nucleus_sample(logits, 0.9, u, steps=())
    assert torch.equal(nucleus_sample(logits, 0.9, u, steps=(4, 64, 1024)), full)
    assert torch.equal(nucleus_sample(logits, 0.9, u), full)


def test_nucleus_set_equals_hf_on_a_large_vocabulary():
    # every token HF keeps can be drawn and no other: u just below each boundary picks the last kept token
    torch.manual_seed(2)
    logits = torch.randn(8, 49152) * torch.tensor([[0.3], [1.0], [2.0], [3.0], [5.0], [8.0], [12.0], [20.0]])
    kept = (hf_probs(logits, 1.0, 0.9) > 0).sum(-1)
    last = nucleus_sample(logits, 0.9, torch.full((8,), 1 - 1e-7))
    order = torch.argsort(logits, dim=-1, descending=True)
    rank = (order == last.unsqueeze(1)).int().argmax(-1)
    # the last drawable token is HF's last kept one (within 2 places: float rounding of the sums of thousands
    # of probabilities ~1e-5 at the boundary)
    assert ((rank + 1 - kept).abs() <= 2).all(), (rank + 1, kept)


def test_bad_settings_are_refused():
    for t, p in [(0.0, 0.9), (1.0, 0.0), (1.0, 1.5), (-1.0, 0.5), (math.nan, 0.9)]:
        with pytest.raises(ValueError):
            NucleusSampler(t, p)
