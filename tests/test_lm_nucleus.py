"""Nucleus sampling without a full-vocabulary sort (lorafair.lm.nucleus) against HF's warpers, and its coupling:
nearly equal distributions draw the same token from the same keys."""

import math

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from lorafair.lm.nucleus import NucleusSampler, exponentials, mix32, nucleus_sample


def hf_probs(logits, temperature, top_p):
    """The distribution ``generate(do_sample=True, temperature, top_p, top_k=0)`` draws from."""
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    return torch.softmax(scores, dim=-1)


def keys_for(n, seed=0):
    return torch.randint(0, 2**32, (n, 2), generator=torch.Generator().manual_seed(seed))


def test_hand_computed_nucleus_and_draws():
    # probabilities 0.5, 0.3, 0.15, 0.05; top_p 0.7: the tokens before 0.15 carry 0.8 >= 0.7, so the nucleus
    # is {0.5, 0.3}, renormalised to 0.625 / 0.375 (HF: ascending sums 0.05, 0.2 <= 0.3 are removed)
    logits = torch.tensor([[0.15, 0.5, 0.05, 0.3]]).log()
    assert torch.allclose(hf_probs(logits, 1.0, 0.7), torch.tensor([[0.0, 0.625, 0.0, 0.375]]))

    def pick(e):  # the race with the exponential numbers e (token ids 0..3) set by hand
        return int(nucleus_sample(logits, 0.7, keys_for(1), steps=(2,), noise=lambda k, ids: torch.tensor(e).double()[ids]))

    # the smallest E / p among the nucleus {1: p 0.5, 3: p 0.3} wins; tokens 0 and 2 never do, however small their E
    assert pick([1.0, 1.0, 1.0, 0.5]) == 3  # 1 / 0.5 = 2 > 0.5 / 0.3
    assert pick([1.0, 1.0, 1.0, 0.7]) == 1  # 2 < 0.7 / 0.3
    assert pick([1e-9, 1.0, 1e-9, 1.0]) == 1
    # with the real numbers: the keys' exponentials decide, by hand
    keys = keys_for(1, seed=5)
    e = exponentials(keys, torch.arange(4).unsqueeze(0))[0]
    want = 1 if e[1] / 0.5 < e[3] / 0.3 else 3
    assert int(nucleus_sample(logits, 0.7, keys)) == want


def test_mix32_is_lowbias32_and_exponentials_are_uniform_and_deterministic():
    # lowbias32 by hand in Python ints (mod 2**32)
    def ref(x):
        x ^= x >> 16
        x = (x * 0x7FEB352D) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x846CA68B) & 0xFFFFFFFF
        return x ^ (x >> 16)

    xs = [0, 1, 2, 12345, 2**31, 2**32 - 1, 0xDEADBEEF]
    assert mix32(torch.tensor(xs)).tolist() == [ref(x) for x in xs]
    keys, ids = keys_for(4000), torch.arange(300).expand(4000, 300)
    e = exponentials(keys, ids)
    assert torch.equal(e, exponentials(keys.clone(), ids.clone()))
    u = torch.exp(-e)
    # uniform: mean 1/2 and variance 1/12, per token id and across adjacent ids (no correlation)
    assert abs(u.mean().item() - 0.5) < 0.002 and abs(u.var().item() - 1 / 12) < 0.001
    assert (u.mean(0) - 0.5).abs().max() < 5 * (1 / 12 / 4000) ** 0.5
    c = torch.corrcoef(torch.stack([u[:, :-1].flatten(), u[:, 1:].flatten()]))[0, 1]
    assert abs(c.item()) < 0.01


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
    keys = keys_for(64)
    full = nucleus_sample(logits, 0.9, keys, steps=())
    assert torch.equal(nucleus_sample(logits, 0.9, keys, steps=(4, 64, 1024)), full)
    assert torch.equal(nucleus_sample(logits, 0.9, keys), full)


def test_nucleus_set_equals_hf_on_a_large_vocabulary():
    # a token is drawable iff it is in HF's nucleus: give the probed token a tiny exponential number, so it
    # wins whenever it takes part in the race
    torch.manual_seed(2)
    logits = torch.randn(8, 49152) * torch.tensor([[0.3], [1.0], [2.0], [3.0], [5.0], [8.0], [12.0], [20.0]])
    kept = (hf_probs(logits, 1.0, 0.9) > 0).sum(-1)
    order = torch.argsort(logits, dim=-1, descending=True)
    for row in range(8):
        for rank in range(max(0, int(kept[row]) - 3), int(kept[row]) + 3):
            token = int(order[row, rank])

            def noise(keys, ids, token=token):
                return torch.where(ids == token, 1e-300, 1.0).double()

            drawn = int(nucleus_sample(logits[row:row + 1], 0.9, keys_for(1), noise=noise)) == token
            # HF's last kept token, within 2 places (float rounding of sums of thousands of probabilities ~1e-5)
            if abs(rank + 1 - int(kept[row])) > 2 and abs(rank - int(kept[row])) > 2:
                assert drawn == (rank < kept[row]), (row, rank, int(kept[row]))


def test_nearly_equal_distributions_draw_the_same_tokens():
    # the coupling: logits moved by bf16-sized noise (sd 0.02) change few draws, far fewer than a new key does;
    # (an inverse CDF over the sorted nucleus, the earlier draw, changed 48% of them here: near-tied tokens swap places)
    torch.manual_seed(3)
    logits = torch.randn(2000, 5000) * 2.5
    moved = logits + 0.02 * torch.randn_like(logits)
    keys = keys_for(2000)
    same = (nucleus_sample(logits, 0.9, keys) == nucleus_sample(moved, 0.9, keys)).float().mean().item()
    tv = 0.5 * (hf_probs(logits, 1.0, 0.9) - hf_probs(moved, 1.0, 0.9)).abs().sum(-1).mean().item()
    assert same >= 1 - 2 * tv - 0.01, (same, tv)
    assert same > 0.95
    other = (nucleus_sample(logits, 0.9, keys) == nucleus_sample(logits, 0.9, keys_for(2000, seed=9))).float().mean()
    assert other < 0.2


def test_bad_settings_are_refused():
    for t, p in [(0.0, 0.9), (1.0, 0.0), (1.0, 1.5), (-1.0, 0.5), (math.nan, 0.9)]:
        with pytest.raises(ValueError):
            NucleusSampler(t, p)
