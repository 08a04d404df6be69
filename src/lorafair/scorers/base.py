"""The scorer contract.

A scorer maps texts to per-label probabilities in [0, 1]. It is registered in
:data:`SCORERS` under a name (``jigsaw-bilstm``) or a prefix (``hf``, ``detoxify``,
``llm-judge``: the part after ``:`` is passed as ``arg``), and built with
``build_scorer("name[:arg]", device=...)``.

Extensions (compatible): ``build_scorer`` passes keyword ``options`` (e.g. ``allow_pickle=True``,
``batch_size``) to the factory; a factory may define ``available(arg) -> (bool, str)`` telling whether
its weights are installed, used by :func:`scorer_availability` and ``lorafair scorers``.
Scores are probabilities in [0, 1], or NaN where a scorer could not score a text (``llm-judge``
parse failures): never a made-up 0.
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
SCORERS: Registry[Any] = Registry("scorer", "scorer", plugins=("lorafair.scorers",))


DEFAULT_SCORER = "jigsaw-bilstm"


def build_scorer(spec: str, device: Any = "cpu", **options: Any) -> Scorer:
    """Build the scorer ``name[:arg]`` (the part after the first ``:`` is the factory's ``arg``)."""
    name, _, arg = spec.partition(":")
    factory = SCORERS.get(name)
    return factory(arg or None, device, **options)


def scorer_availability(name: str, arg: str | None = None) -> tuple[bool, str]:
    """(available, note) for a registered scorer, from its factory's ``available`` if it has one."""
    factory = SCORERS.get(name)
    check = getattr(factory, "available", None)
    if check is None:
        return True, ""
    try:
        return check(arg)
    except Exception as e:  # availability probing must never crash a listing
        return False, f"{type(e).__name__}: {e}"
