"""Tokenisation for LM scoring: token ids of a text, the prefix token, (context, continuation) pairs.

The *prefix token* (lm-evaluation-harness ``HFLM.prefix_token_id``) is the token a scored sequence
starts with so that its first real token is predicted from something: the tokenizer's BOS token, or its
EOS token when it has no BOS (GPT-2/Qwen-style tokenizers, where EOS is the document separator).
"""

from __future__ import annotations

from typing import Any, Iterable

IGNORE = -100  # label of a position that is not scored (as transformers' loss)


def tokens(tokenizer: Any, text: str, special: bool = True) -> list[int]:
    """Token ids of ``text`` (``special``: with the tokenizer's special tokens, e.g. an added BOS)."""
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _first_int(v: Any) -> int | None:
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return None if v is None else int(v)


def prefix_token_id(tokenizer: Any) -> int | None:
    """The token every scored sequence starts with: BOS, else EOS (lm-evaluation-harness), else None."""
    for name in ("bos_token_id", "eos_token_id"):
        v = _first_int(getattr(tokenizer, name, None))
        if v is not None:
            return v
    return None


def config_prefix_id(model: Any) -> int | None:
    """The prefix token from a model's config (BOS, else EOS), for callers without a tokenizer. An
    accelerate/DDP wrapper (``model.module``) is looked through."""
    cfg = getattr(getattr(model, "module", model), "config", None)
    for name in ("bos_token_id", "eos_token_id"):
        v = getattr(cfg, name, None)
        v = (v[0] if v else None) if isinstance(v, (list, tuple)) else v
        if isinstance(v, int):
            return v
    return None


def with_prefix(ids: list[int], prefix: int | None) -> list[int]:
    """``ids`` preceded by ``prefix`` unless it already starts with it (or there is no prefix token)."""
    ids = list(ids)
    if prefix is not None and (not ids or ids[0] != prefix):
        return [prefix] + ids
    return ids


def encode_pair(tokenizer: Any, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """Token ids of (prefix token + context, continuation), following lm-evaluation-harness ``_encode_pair``:
    trailing whitespace of the context moves to the front of the continuation; ``context + continuation``
    is tokenized once and the continuation tokens are those after the context's own tokens (so the
    continuation is tokenized as in running text)."""
    n_space = len(context) - len(context.rstrip())
    if n_space:
        continuation = context[-n_space:] + continuation
        context = context[:-n_space]
    whole = tokens(tokenizer, context + continuation, special=False)
    ctx = tokens(tokenizer, context, special=False) if context else []
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


def max_positions(model: Any) -> int | None:
    """The longest sequence the model accepts (from its config), or None when it does not say."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        v = getattr(cfg, name, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def encode_record(rec: dict, tok, max_length: int) -> dict:
    """Token ids and labels of one record. ``prompt``+``completion``: labels only on the completion (and
    the EOS after it); ``text``: labels on every token. Truncated to ``max_length``: texts from the right;
    prompt/completion records lose the start of the prompt, so the completion is always learned."""
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    if "completion" in rec and "prompt" in rec:
        p = tokens(tok, rec["prompt"], special=True)
        c = (tokens(tok, rec["completion"], special=False) + eos)[:max_length - 1]
        if len(p) + len(c) > max_length:  # keep the completion whole: cut the prompt from the left
            p = p[len(p) + len(c) - max_length:]
        ids = p + c
        labels = [IGNORE] * len(p) + c
    else:
        ids = tokens(tok, rec["text"], special=True) + eos
        labels = list(ids)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}


def learnable(encoded: dict) -> bool:
    """Whether an encoded record has a label to learn from (a token after the first that is not IGNORE)."""
    return any(l != IGNORE for l in encoded["labels"][1:])


def encode_records(rows: Iterable[dict], tok, max_length: int) -> list[dict]:
    """The records encoded (:func:`encode_record`), those with nothing to learn from left out."""
    return [e for e in (encode_record(r, tok, max_length) for r in rows) if learnable(e)]
