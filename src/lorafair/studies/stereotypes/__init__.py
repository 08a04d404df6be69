"""The ``stereotypes`` study (likelihood benchmarks: CrowS-Pairs, StereoSet, WinoBias, BBQ)."""

from .study import StereotypesConfig, StereotypesStudy

__all__ = ["StereotypesConfig", "StereotypesStudy"]
