"""The ``decisions`` study (a lending simulation with delayed impact) and its ``lending-policy`` dataset."""

from lorafair.studies.decisions import datasets  # noqa: F401  (registers the "lending-policy" dataset)
from lorafair.studies.decisions.study import DecisionsStudy  # noqa: F401  (registers the "decisions" study)
