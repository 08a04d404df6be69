"""``profanity``: ``alt-profanity-check`` (a linear SVM on tf-idf of words, calibrated), label ``profanity``.

Note: that package loads its model with ``joblib`` (a pickle) from its own installed files
(``profanity_check/data/{model,vectorizer}.joblib``) at import time. It is an explicitly declared
dependency of lorafair, so this is trusted code on the same footing as any installed library; the
pickles' sha256 are recorded in :meth:`ProfanityScorer.identity`. It may warn when the installed
scikit-learn differs from the one that pickled the model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any, Sequence

from lorafair.errors import UserError
from lorafair.scorers.base import SCORERS
from lorafair.scorers.cache import sha256_file

DISTRIBUTION = "alt-profanity-check"


def _data_dir() -> Path | None:
    from lorafair.packages import package_dir

    root = package_dir("profanity_check")
    d = root / "data" if root else None
    return d if d is not None and (d / "model.joblib").is_file() else None


@SCORERS.register("profanity", help="alt-profanity-check linear model (label: profanity); fast")
class ProfanityScorer:
    """Probability that a text is profane, from ``profanity_check.predict_prob``."""

    name = "profanity"
    labels = ("profanity",)
    main_label = "profanity"

    def __init__(self, arg: str | None = None, device: Any = "cpu", **_: Any):
        if arg:
            raise UserError("scorer", f"profanity:{arg}", "profanity without an argument")
        if _data_dir() is None:
            raise UserError.plain(f"scorer 'profanity' needs the package {DISTRIBUTION}: pip install {DISTRIBUTION}")
        import profanity_check  # loads the joblib model shipped with the package (see module docstring)

        self._predict_prob = profanity_check.predict_prob

    @classmethod
    def available(cls, arg: str | None = None) -> tuple[bool, str]:
        if _data_dir() is None:
            return False, f"pip install {DISTRIBUTION}"
        return True, f"{DISTRIBUTION} {importlib.metadata.version(DISTRIBUTION)}"

    def score(self, texts: Sequence[str], batch_size: int = 1024) -> list[dict[str, float]]:
        out: list[dict[str, float]] = []
        texts = list(texts)
        for start in range(0, len(texts), max(1, batch_size)):
            probs = self._predict_prob(texts[start : start + batch_size])
            out.extend({"profanity": float(p)} for p in probs)
        return out

    def identity(self) -> dict[str, Any]:
        d = _data_dir()
        return {
            "name": self.name,
            "package": DISTRIBUTION,
            "version": importlib.metadata.version(DISTRIBUTION),
            "weights_sha256": {f: sha256_file(d / f) for f in ("model.joblib", "vectorizer.joblib")} if d else None,
            "labels": list(self.labels),
            "main_label": self.main_label,
        }
