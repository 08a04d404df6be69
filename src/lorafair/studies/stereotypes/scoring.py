"""Batched log-likelihood of continuations under a causal LM (shared by every stereotype benchmark).

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

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class Scored:
    """Per-token log-probabilities (natural log) of one continuation, and the token ids scored."""

    token_logprobs: np.ndarray  # float64, one per scored continuation token
    token_ids: list[int]

    @property
    def total(self) -> float:
        return float(self.token_logprobs.sum())

    @property
    def mean(self) -> float:
        return float(self.token_logprobs.mean()) if len(self.token_logprobs) else float("nan")

    @property
    def n_tokens(self) -> int:
        return len(self.token_logprobs)


def prefix_token_id(tokenizer: Any) -> int | None:
    """The token every scored sequence starts with: BOS, else EOS (lm-evaluation-harness), else None."""
    for name in ("bos_token_id", "eos_token_id"):
        v = getattr(tokenizer, name, None)
        if isinstance(v, (list, tuple)):
            v = v[0] if v else None
        if v is not None:
            return int(v)
    return None


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (prefix token + context, continuation), following lm-evaluation-harness."""
    n_space = len(context) - len(context.rstrip())
    if n_space:
        continuation = context[-n_space:] + continuation
        context = context[:-n_space]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"] if context else []
    # BPE can merge across the boundary; then fall back to the longest common prefix.
    k = len(ctx)
    if whole[:k] != ctx:
        k = 0
        while k < min(len(ctx), len(whole)) and whole[k] == ctx[k]:
            k += 1
    ctx_ids, cont_ids = whole[:k], whole[k:]
    prefix = prefix_token_id(tokenizer)
    if prefix is not None:
        ctx_ids = [prefix] + ctx_ids
    return ctx_ids, cont_ids


def _max_len(model: Any) -> int | None:
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


@torch.no_grad()
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
    from tqdm.auto import tqdm

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if device is None:
        device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    max_len = _max_len(model)
    encoded = []
    for context, continuation in requests:
        ctx, cont = encode_pair(tokenizer, context, continuation)
        seq = ctx + cont
        n_ctx = len(ctx)
        if max_len is not None and len(seq) > max_len:
            cut = len(seq) - max_len
            seq, n_ctx = seq[cut:], max(n_ctx - cut, 0)
        encoded.append((seq, n_ctx))
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    out: list[Scored | None] = [None] * len(encoded)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, disable=not progress):
        width = max(len(encoded[i][0]) for i in batch)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            seq = encoded[i][0]
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        for row, i in enumerate(batch):
            seq, n_ctx = encoded[i]
            first = max(n_ctx, 1)  # position 0 has no left context: never scored
            if first >= len(seq):
                out[i] = Scored(np.zeros(0), [])
                continue
            lp = torch.log_softmax(logits[row, first - 1 : len(seq) - 1].float(), dim=-1)
            targets = torch.tensor(seq[first:], dtype=torch.long, device=lp.device)
            tok_lp = lp.gather(1, targets[:, None])[:, 0]
            out[i] = Scored(tok_lp.double().cpu().numpy(), list(seq[first:]))
    return out  # type: ignore[return-value]
