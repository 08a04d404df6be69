"""Seeded, batched sampling of continuations, and perplexity of texts (thin adapters of :class:`lorafair.lm.LM`).

:func:`sample_continuations` follows the RealToxicityPrompts protocol (Gehman et al., 2020):
nucleus sampling (top-p) at a given temperature, no top-k cut (``top_k=0``: transformers would
otherwise apply its default top-k of 50), ``k`` continuations per prompt of at most
``max_new_tokens`` tokens. Prompts are batched with left padding, ``num_return_sequences=k``, the
key/value cache, no gradients; only the new tokens are decoded (:meth:`lorafair.lm.LM.sample`).

Determinism: batch ``b`` is sampled under ``torch.manual_seed(sample_seed(seed, b, stream))`` inside a forked
RNG state (the caller's RNG is left untouched), so the same (prompts, settings, seed, batch size)
give the same texts, and two models evaluated with the same settings draw the same random numbers
(common random numbers make base-vs-variant comparisons less noisy).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

from lorafair.lm import LM, fork_rng, sample_seed

__all__ = ["perplexity", "sample_continuations", "sample_seed", "text_nll"]

_fork_rng = fork_rng  # the former private name


def sample_continuations(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    k: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    seed: int,
    batch_size: int = 64,
    device: Any = "cpu",
    progress: bool = False,
    stream: str = "eval",
) -> list[list[str]]:
    """Return ``k`` sampled continuations (new text only) for every prompt, in order.

    ``batch_size`` counts sequences (prompts × k) per ``generate`` call; at least one prompt goes
    in each call.
    """
    lm = LM(model, tokenizer, batch_size=max(1, batch_size), device=device, progress=progress)
    return lm.sample(prompts, k=k, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                     stream=stream)


def text_nll(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16, max_length: int = 128,
    device: Any = "cpu",
) -> list[tuple[float, int]]:
    """Per text: (sum of next-token negative log-likelihoods in nats, number of predicted tokens).

    Each text is tokenised as the tokenizer does by default and, unless that already starts with it,
    preceded by the prefix token (BOS, else EOS: lm-evaluation-harness ``prefix_token_id``, as
    :func:`lorafair.lm.prefix_token_id`), so every token of the text is
    predicted from its prefix, the first one included (tokenizers that add no BOS, e.g. SmolLM2's,
    or have none would otherwise lose it). Truncated to ``max_length`` tokens, the prefix token
    included. Perplexity of a set = exp(Σ nll / Σ tokens). :meth:`lorafair.lm.LM.rolling_nll`.
    """
    return LM(model, tokenizer, batch_size=batch_size, device=device).rolling_nll(texts, max_length=max_length)


def perplexity(nll: Sequence[tuple[float, int]]) -> float:
    """exp(Σ nll / Σ tokens) of :func:`text_nll` output (nan when there are no tokens)."""
    total = sum(s for s, _ in nll)
    n = sum(c for _, c in nll)
    return math.exp(total / n) if n else float("nan")
