"""stats.bootstrap.ratio_ci: the one ratio-of-sums bootstrap (held-out loss, perplexity, shift KL)."""

import math

import numpy as np
import pytest

from lorafair.stats.bootstrap import bootstrap_ci, ratio_ci


def test_ratio_ci_equals_the_generic_bootstrap_of_the_ratio():
    rng = np.random.default_rng(3)
    s, c = rng.gamma(2.0, 3.0, 40), rng.integers(1, 30, 40).astype(float)
    ref = bootstrap_ci(np.stack([s, c], 1), lambda x: x[:, 0].sum() / x[:, 1].sum(), n_boot=500, seed=7)
    assert ratio_ci(s, c, n_boot=500, seed=7) == pytest.approx(ref, rel=1e-12)
    ref_exp = bootstrap_ci(np.stack([s, c], 1), lambda x: math.exp(x[:, 0].sum() / x[:, 1].sum()), n_boot=500, seed=7)
    assert ratio_ci(s, c, transform=np.exp, n_boot=500, seed=7) == pytest.approx(ref_exp, rel=1e-12)


def test_ratio_ci_point_is_the_token_weighted_mean():
    point, lo, hi = ratio_ci([2.0, 6.0], [1.0, 3.0], n_boot=200, seed=0)
    assert point == 2.0 and lo <= point <= hi


def test_ratio_ci_few_items_and_no_counts():
    assert math.isnan(ratio_ci([1.0], [2.0])[1]) and ratio_ci([1.0], [2.0])[0] == 0.5
    p, lo, hi = ratio_ci([0.0, 0.0], [0.0, 0.0], n_boot=50)
    assert math.isnan(p) and math.isnan(lo) and math.isnan(hi)
    with pytest.raises(ValueError):
        ratio_ci([1.0, 2.0], [1.0])
