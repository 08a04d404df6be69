"""The Pareto front of the trade-off plot, on synthetic points."""

import pytest

from lorafair.stats.pareto import pareto_front


def test_front_on_synthetic_points_lower_x_higher_y():
    # x: a fairness target (lower is better), y: a utility guard (higher is better)
    pts = [(0.30, 0.80), (0.20, 0.70), (0.25, 0.60), (0.10, 0.50), (0.40, 0.90), (0.35, 0.75), (0.10, 0.40)]
    # (0.25, 0.60) is beaten by (0.20, 0.70); (0.35, 0.75) by (0.30, 0.80); (0.10, 0.40) by (0.10, 0.50)
    assert pareto_front(pts) == [3, 1, 0, 4]
    brute = [i for i, (x, y) in enumerate(pts)
             if not any(a <= x and b >= y and (a, b) != (x, y) for a, b in pts)]
    assert sorted(pareto_front(pts)) == sorted(brute)


def test_directions_ties_and_nan():
    pts = [(1.0, 1.0), (2.0, 2.0), (2.0, 2.0), (3.0, 0.5), (float("nan"), 9.0)]
    assert pareto_front(pts, "higher", "higher") == [1, 2, 3]  # equal points are both on the front; NaN never
    assert pareto_front(pts, "lower", "lower") == [0, 3]
    assert pareto_front(pts, "higher", "lower") == [3]
    assert pareto_front([]) == []
    with pytest.raises(ValueError, match="x_better must be one of"):
        pareto_front(pts, "up")
