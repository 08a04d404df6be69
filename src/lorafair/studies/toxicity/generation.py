"""Seeded, batched sampling of continuations, and perplexity of texts.

:func:`sample_continuations` follows the RealToxicityPrompts protocol (Gehman et al., 2020):
nucleus sampling (top-p) at a given temperature, no top-k cut (``top_k=0``: transformers would
otherwise apply its default top-k of 50), ``k`` continuations per prompt of at most
``max_new_tokens`` tokens. Prompts are batched with left padding, ``num_return_sequences=k``, the
key/value cache, no gradients; only the new tokens are decoded.

Determinism: batch ``b`` is sampled under ``torch.manual_seed(sample_seed(seed, b, stream))`` inside a forked
RNG state (the caller's RNG is left untouched), so the same (prompts, settings, seed, batch size)
give the same texts, and two models evaluated with the same settings draw the same random numbers
(common random numbers make base-vs-variant comparisons less noisy).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import torch

from lorafair.errors import UserError


def sample_seed(seed: int, batch: int, stream: str = "eval") -> int:
    """A 60-bit seed for batch ``batch`` of a run seeded with ``seed`` (``stream`` separates uses)."""
    return int(hashlib.sha256(f"toxicity-sample:{stream}:{seed}:{batch}".encode()).hexdigest()[:15], 16)


def _fork_rng(device: Any):
    dev = torch.device(device)
    devices = [dev.index or 0] if dev.type == "cuda" else []
    return torch.random.fork_rng(devices=devices)


@torch.no_grad()
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
    from tqdm.auto import tqdm

    if k < 1 or max_new_tokens < 1:
        raise ValueError("k and max_new_tokens must be positive")
    for i, p in enumerate(prompts):
        if not p or not p.strip():
            raise UserError("prompts", p, f"non-empty prompts (prompt #{i} is empty)")
    was_training = model.training
    model.eval()
    per_batch = max(1, batch_size // k)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    out: list[list[str]] = []
    try:
        starts = range(0, len(prompts), per_batch)
        for b, start in enumerate(tqdm(starts, desc="sampling", disable=not progress, leave=False)):
            chunk = list(prompts[start:start + per_batch])
            enc = tokenizer(chunk, return_tensors="pt", padding=True).to(device)
            with _fork_rng(device):
                torch.manual_seed(sample_seed(seed, b, stream))
                seqs = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=temperature,
                    top_p=top_p,
                    top_k=0,
                    max_new_tokens=max_new_tokens,
                    num_return_sequences=k,
                    use_cache=True,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new = seqs[:, enc["input_ids"].shape[1]:]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            out.extend(texts[i * k:(i + 1) * k] for i in range(len(chunk)))
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return out


@torch.no_grad()
def text_nll(
    model: Any, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 16, max_length: int = 128,
    device: Any = "cpu",
) -> list[tuple[float, int]]:
    """Per text: (sum of next-token negative log-likelihoods in nats, number of predicted tokens).

    Each text is tokenised as the tokenizer does by default and, unless that already starts with it,
    preceded by the prefix token (BOS, else EOS: lm-evaluation-harness ``prefix_token_id``, as
    :func:`lorafair.studies.stereotypes.scoring.prefix_token_id`), so every token of the text is
    predicted from its prefix, the first one included (tokenizers that add no BOS, e.g. SmolLM2's,
    or have none would otherwise lose it). Truncated to ``max_length`` tokens, the prefix token
    included. Perplexity of a set = exp(Σ nll / Σ tokens).
    """
    bos, eos = getattr(tokenizer, "bos_token_id", None), getattr(tokenizer, "eos_token_id", None)
    prefix = bos if bos is not None else eos
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    encoded = []
    for t in texts:
        ids = list(tokenizer(t)["input_ids"])
        if prefix is not None and (not ids or ids[0] != prefix):
            ids = [prefix] + ids
        encoded.append(ids[:max_length])
    out: list[tuple[float, int]] = []
    for start in range(0, len(encoded), batch_size):
        batch = encoded[start:start + batch_size]
        width = max(1, max(len(ids) for ids in batch))
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attn = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):  # right padding
            input_ids[row, :len(ids)] = torch.tensor(ids, dtype=torch.long)
            attn[row, :len(ids)] = 1
        input_ids, attn = input_ids.to(device), attn.to(device)
        logits = model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = input_ids[:, 1:]
        mask = attn[:, 1:].bool() & attn[:, :-1].bool()
        nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1) * mask
        out.extend((float(s), int(n)) for s, n in zip(nll.sum(1).tolist(), mask.sum(1).tolist()))
    return out


def perplexity(nll: Sequence[tuple[float, int]]) -> float:
    """exp(Σ nll / Σ tokens) of :func:`text_nll` output (nan when there are no tokens)."""
    total = sum(s for s, _ in nll)
    n = sum(c for _, c in nll)
    return math.exp(total / n) if n else float("nan")
