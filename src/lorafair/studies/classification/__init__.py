"""The ``classification`` study (see ``study.py``); importing this package registers it and the
``adult``, ``compas`` and ``german`` training datasets."""

from lorafair.studies.classification.tabular import datasets  # noqa: F401  (registers the datasets)
from lorafair.studies.classification.study import ClassificationStudy

__all__ = ["ClassificationStudy"]
