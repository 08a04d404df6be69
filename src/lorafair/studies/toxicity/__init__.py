"""The ``toxicity`` study (see ``study.py``); importing this package registers it and its datasets."""

from lorafair.data.prompts_common import ensure_builtin_datasets
from lorafair.studies.toxicity.study import ToxicityStudy

ensure_builtin_datasets()

__all__ = ["ToxicityStudy"]
