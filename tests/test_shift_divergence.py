import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from lorafair.studies.shift import divergence as dv



def logits(p):
    return torch.tensor(np.log(p), dtype=torch.float64)


def test_kl_hand_computed():
    p, q = torch.tensor([0.5, 0.5]).log(), torch.tensor([0.25, 0.75]).log()
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert dv.kl_from_logits(p, q).item() == pytest.approx(expected, rel=1e-6)
    rev = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert dv.reverse_kl_from_logits(p, q).item() == pytest.approx(rev, rel=1e-6)
    assert expected != pytest.approx(rev)


def test_kl_is_shift_invariant_in_logits_and_matches_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 7, 50)) * 3, rng.normal(size=(4, 7, 50)) * 3
    kl = dv.kl_from_logits(torch.tensor(a) + 100.0, torch.tensor(b) - 50.0, dtype=torch.float64)
    pa = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
    pb = np.exp(b) / np.exp(b).sum(-1, keepdims=True)
    ref = entropy(pa, pb, axis=-1)
    np.testing.assert_allclose(kl.numpy(), ref, rtol=1e-9)
    kl32 = dv.kl_from_logits(torch.tensor(a, dtype=torch.float32), torch.tensor(b, dtype=torch.float32))
    assert kl32.dtype == torch.float32
    np.testing.assert_allclose(kl32.numpy(), ref, rtol=1e-4, atol=1e-6)


def test_js_hand_computed_and_bounds():
    p, q = np.array([0.5, 0.5]), np.array([0.25, 0.75])
    m = (p + q) / 2
    expected = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    got = dv.js_from_logits(torch.tensor(np.log(p)), torch.tensor(np.log(q)), dtype=torch.float64).item()
    assert got == pytest.approx(expected, rel=1e-9)
    assert got == pytest.approx(jensenshannon(p, q) ** 2, rel=1e-9)
    # disjoint supports -> log 2 (large logit gaps instead of -inf)
    a = torch.tensor([50.0, -50.0])
    assert dv.js_from_logits(a, a.flip(0), dtype=torch.float64).item() == pytest.approx(math.log(2), rel=1e-9)


def test_zero_for_identical():
    x = torch.randn(3, 5, 259)
    assert torch.all(dv.kl_from_logits(x, x) == 0)
    assert torch.all(dv.js_from_logits(x, x).abs() < 1e-7)


def test_zero_probability_terms_count_zero():
    # P puts no mass on token 2 (log p = -inf): the term is 0, not nan
    p = torch.tensor([0.0, 0.0, -float("inf")])
    q = torch.tensor([0.0, 1.0, 2.0])
    kl = dv.kl_from_logits(p, q, dtype=torch.float64).item()
    qq = np.exp([0, 1, 2]) / np.exp([0, 1, 2]).sum()
    assert kl == pytest.approx(0.5 * math.log(0.5 / qq[0]) + 0.5 * math.log(0.5 / qq[1]), rel=1e-9)


def _near_pair(n=40, v=4000, seed=0, scale=0.3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, v, generator=g) * 3
    return torch.log_softmax(x + scale * torch.randn(n, v, generator=g), -1), torch.log_softmax(x, -1)


def test_pair_divergences_match_float64_definitions_in_float32():
    lp, lq = _near_pair()
    got = dv.pair_divergences(lp, lq)
    p64, q64 = lp.double(), lq.double()
    P, Q = p64.exp(), q64.exp()
    M = 0.5 * (P + Q)
    ref = {"kl": (P * (p64 - q64)).sum(-1), "reverse_kl": (Q * (q64 - p64)).sum(-1),
           "js": 0.5 * (P * (p64 - M.log())).sum(-1) + 0.5 * (Q * (q64 - M.log())).sum(-1)}
    assert set(got) == set(ref)
    for k in ref:
        assert got[k].dtype == torch.float32
        # small divergences (~0.04 KL, ~0.01 JS) are accurate to 1e-6 absolute in float32
        np.testing.assert_allclose(got[k].double().numpy(), ref[k].numpy(), atol=1e-6, rtol=0)
    # the single-purpose functions are the same computation
    np.testing.assert_array_equal(dv.kl_from_logp(lp, lq).numpy(), got["kl"].numpy())
    np.testing.assert_array_equal(dv.js_from_logp(lp, lq).numpy(), got["js"].numpy())
    assert set(dv.pair_divergences(lp, lq, ("reverse_kl",))) == {"reverse_kl"}


def test_pair_divergences_zero_mass_and_infinite_kl():
    inf = float("inf")
    lp = torch.tensor([[math.log(0.5), math.log(0.5), -inf]])
    lq = torch.tensor([[math.log(0.25), math.log(0.25), math.log(0.5)]])
    out = dv.pair_divergences(lp, lq)
    assert out["kl"].item() == pytest.approx(math.log(2), rel=1e-6)  # P(2)=0 counts 0
    assert out["reverse_kl"].item() == inf  # Q(2)>0 where P(2)=0
    m = np.array([0.375, 0.375, 0.25])
    js = 0.5 * (0.5 * np.log(0.5 / m[:2])).sum() + 0.5 * ((np.array([0.25, 0.25, 0.5]) * np.log(np.array([0.25, 0.25, 0.5]) / m)).sum())
    assert out["js"].item() == pytest.approx(js, rel=1e-6)


def test_chunk_rows():
    assert dv.chunk_rows(49152, torch.device("cpu")) == (1 << 19) // 49152
    assert dv.chunk_rows(10**8, torch.device("cpu")) == 1
    assert dv.chunk_rows(49152, torch.device("meta")) >= 1 << 20
