"""Batched log-likelihood of continuations under a causal LM (shared by every stereotype benchmark): a thin
adapter of :meth:`lorafair.lm.LM.loglikelihood`.

For a request ``(context, continuation)`` the score is

    log P(continuation | context) = sum_{t in continuation tokens} log softmax(logits_{t-1})[token_t]

computed in float32 (``log_softmax`` of the logits cast to float32), with right padding and the
padding masked out, many requests per forward pass.

Tokenization (as lm-evaluation-harness ``_encode_pair``): trailing whitespace of the context is
moved to the front of the continuation; the whole string ``context + continuation`` is tokenized
once and the continuation tokens are those after the context's own tokens, so the continuation is
tokenized as it would be in running text. Every sequence starts with the *prefix token*
(:func:`prefix_token_id`, lm-evaluation-harness ``HFLM.prefix_token_id``): the tokenizer's BOS
token, or its EOS token when it has no BOS (GPT-2/Qwen-style tokenizers, where EOS is the document
separator). So an empty context means "conditioned on the prefix token only" and every token of a
sentence is scored, with or without a BOS token; only a tokenizer with neither loses the first
token of an empty-context request (``n_tokens`` says so). lm-evaluation-harness prefixes the token
for empty contexts only; here it is prefixed to every sequence (with a BOS token, as before), so
all requests of a benchmark are conditioned alike.
Sequences longer than the model's maximum are cut from the left of the context.
"""

from __future__ import annotations

from typing import Any, Sequence

from lorafair.lm import LM, Scored, encode_pair, max_positions, prefix_token_id

__all__ = ["Scored", "encode_pair", "prefix_token_id", "score_continuations"]

_max_len = max_positions  # the former private name


def score_continuations(
    model: Any,
    tokenizer: Any,
    requests: Sequence[tuple[str, str]],
    *,
    batch_size: int = 16,
    device: Any = None,
    progress: bool = False,
    desc: str = "scoring",
) -> list[Scored]:
    """Score every ``(context, continuation)`` request; results in the order of ``requests``.

    Requests are sorted by length (longest first) so each batch holds similar lengths; results do
    not depend on ``batch_size`` beyond float rounding.
    """
    lm = LM(model, tokenizer, batch_size=batch_size, device=device, progress=progress)
    return lm.loglikelihood(requests, desc=desc)
