"""The Pareto front of a fairness–utility trade-off: the variants no other variant beats on both axes."""

from __future__ import annotations

import math
from typing import Sequence

DIRECTIONS = ("lower", "higher")


def pareto_front(points: Sequence[tuple[float, float]], x_better: str = "lower", y_better: str = "higher") -> list[int]:
    """Indices of the non-dominated points, sorted by x (then y). A point is dominated when another point is at
    least as good on both axes and better on one (``x_better`` / ``y_better``: ``lower`` or ``higher``); equal
    points are all on the front; a point with a NaN coordinate is never on it (nor dominates)."""
    for name, d in (("x_better", x_better), ("y_better", y_better)):
        if d not in DIRECTIONS:
            raise ValueError(f"{name} must be one of {DIRECTIONS}, not {d!r}")
    sx = 1.0 if x_better == "lower" else -1.0
    sy = 1.0 if y_better == "lower" else -1.0
    # minimise (sx·x, sy·y)
    pts = [(sx * float(x), sy * float(y), i) for i, (x, y) in enumerate(points)
           if not (math.isnan(float(x)) or math.isnan(float(y)))]
    pts.sort()
    front, best_y, last = [], math.inf, None
    for x, y, i in pts:
        if y < best_y or (last is not None and (x, y) == last):
            front.append((x, y, i))
            if y < best_y:
                best_y, last = y, (x, y)
    return [i for _, _, i in sorted(front, key=lambda t: (sx * t[0], sy * t[1]))]
