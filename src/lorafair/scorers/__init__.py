"""Toxicity scorers (a registry). See ``base.py`` for the contract.

Importing this package registers every scorer in :data:`SCORERS`: ``jigsaw-bilstm`` (default),
``profanity``, ``hf:<model>``, ``detoxify:<variant>``, ``llm-judge:<model source>``. Heavy
libraries (torch, transformers, scikit-learn) are imported only when a scorer is built.
"""

from lorafair.scorers.base import DEFAULT_SCORER, SCORERS, Scorer, build_scorer, scorer_availability
from lorafair.scorers import hf_classifier, jigsaw_bilstm, llm_judge, profanity  # noqa: F401  (registration)

__all__ = ["DEFAULT_SCORER", "SCORERS", "Scorer", "build_scorer", "scorer_availability"]
