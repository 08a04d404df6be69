"""The ``toxicity`` study (see ``study.py``); importing this package registers it and its datasets."""

from lorafair.studies.toxicity import datasets  # noqa: F401  (registers the prompt and detox datasets)
from lorafair.studies.toxicity.study import ToxicityStudy

__all__ = ["ToxicityStudy"]
