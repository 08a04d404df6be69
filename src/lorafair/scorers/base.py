"""The scorer contract.

A scorer maps texts to per-label probabilities in [0, 1]. It is registered in
:data:`SCORERS` under a name (``jigsaw-bilstm``) or a prefix (``hf``, ``detoxify``,
``llm-judge``: the part after ``:`` is passed as ``arg``), and built with
``build_scorer("name[:arg]", device=...)``.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from lorafair.registry import Registry


class Scorer(Protocol):
    labels: tuple[str, ...]  # e.g. ("toxic", "severe_toxic", ...)
    main_label: str  # the label used as "toxicity" (e.g. "toxic")

    def score(self, texts: Sequence[str], batch_size: int = 64) -> list[dict[str, float]]:
        """One dict label -> probability per text, in order. Empty strings are valid."""

    def identity(self) -> dict[str, Any]:
        """name, version, weights sha256 …, recorded in results."""


# name -> factory(arg: str | None, device) -> Scorer
SCORERS: Registry[Any] = Registry("scorer", "scorer")


def build_scorer(spec: str, device: Any = "cpu") -> Scorer:
    name, _, arg = spec.partition(":")
    factory = SCORERS.get(name)
    return factory(arg or None, device)
