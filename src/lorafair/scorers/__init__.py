"""Toxicity scorers (a registry). See ``base.py`` for the contract.

Every module of this package registers its scorers in :data:`SCORERS` (found on the first lookup):
``jigsaw-bilstm`` (default), ``profanity``, ``hf:<model>``, ``detoxify:<variant>``, ``llm-judge:<model
source>``. Heavy libraries (torch, transformers, scikit-learn) are imported only when a scorer is built.
"""

from lorafair.scorers.base import DEFAULT_SCORER, SCORERS, Scorer, build_scorer, scorer_availability

__all__ = ["DEFAULT_SCORER", "SCORERS", "Scorer", "build_scorer", "scorer_availability"]
