"""The ``stereotypes`` study (likelihood benchmarks: CrowS-Pairs, StereoSet, WinoBias, BBQ) and its
debiasing training datasets; importing this package registers both."""

from lorafair.studies.stereotypes import datasets  # noqa: F401  (registers cda, antistereotype)
from lorafair.studies.stereotypes.study import StereotypesConfig, StereotypesStudy

__all__ = ["StereotypesConfig", "StereotypesStudy"]
