"""The decision of a causal LM on a yes/no prompt: the log-odds of the answers " yes" vs " no".

For a prompt x, ``log_odds(x) = log P(" yes" | x) - log P(" no" | x)`` where ``log P(a | x)`` is the sum
of the next-token log-probabilities of the tokens of ``a`` (the prompt and the answer are tokenized
separately and concatenated, as lm-evaluation-harness scores a continuation). When both answers are a
single token (SmolLM2: " yes" and " no" are), one forward pass per batch gives both, keeping only the
last position's logits; otherwise one pass per answer keeps the logits of the answer's positions.

The decision is ``log_odds > threshold`` (label 1 = the dataset's positive class). ``threshold`` 0 is
"yes is more likely than no". :func:`prior_threshold` is the calibrated alternative: the threshold at
which the share of "yes" decisions equals a given base rate (the positive rate of the training split).

Batches are left-padded with explicit ``position_ids`` (cumulative sum of the attention mask), so a
record's score does not depend on its batch (tested: batched equals one-by-one).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from lorafair.studies.classification.tabular.render import NO, YES


def _tokenize(tokenizer, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def _left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
        mask[i, width - len(s):] = 1
    pos = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return ids.to(device), mask.to(device), pos.to(device)


def _last_logits(model, ids, mask, pos, keep: int) -> torch.Tensor:
    """Logits of the last ``keep`` positions (all positions' logits are computed only if the model
    does not accept ``logits_to_keep``)."""
    try:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, logits_to_keep=keep, use_cache=False)
    except TypeError:
        out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False)
    return out.logits[:, -keep:, :].float()


@torch.no_grad()
def answer_log_probs(
    model, tokenizer, prompts: Sequence[str], answers: Sequence[str] = (YES, NO), *,
    batch_size: int = 16, device=None, progress: bool = False,
) -> np.ndarray:
    """``log P(answer | prompt)`` for every prompt (rows) and answer (columns), float64 array."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    device = device if device is not None else next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answer_ids = [_tokenize(tokenizer, a, False) for a in answers]
    if any(len(a) == 0 for a in answer_ids):
        raise ValueError(f"an answer tokenizes to nothing: {answers!r}")
    single = all(len(a) == 1 for a in answer_ids)
    prompt_ids = [_tokenize(tokenizer, p, True) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(prompt_ids[i]))  # less padding; results re-ordered
    out = np.zeros((len(prompts), len(answers)), dtype=np.float64)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="yes/no scores", disable=not progress):
        if single:
            ids, mask, pos = _left_pad([prompt_ids[i] for i in batch], pad_id, device)
            logp = torch.log_softmax(_last_logits(model, ids, mask, pos, 1)[:, -1, :], dim=-1)
            cols = torch.tensor([a[0] for a in answer_ids], device=logp.device)
            out[batch] = logp[:, cols].double().cpu().numpy()
            continue
        for j, a in enumerate(answer_ids):
            ids, mask, pos = _left_pad([prompt_ids[i] + a for i in batch], pad_id, device)
            logits = _last_logits(model, ids, mask, pos, len(a) + 1)[:, :-1, :]  # positions predicting a
            logp = torch.log_softmax(logits, dim=-1)
            target = torch.tensor(a, device=logp.device).expand(len(batch), -1)
            out[batch, j] = logp.gather(-1, target.unsqueeze(-1)).squeeze(-1).sum(-1).double().cpu().numpy()
    return out


def yes_no_log_odds(model, tokenizer, prompts: Sequence[str], *, batch_size: int = 16, device=None, progress: bool = False) -> np.ndarray:
    """``log P(" yes" | x) - log P(" no" | x)`` for every prompt x."""
    lp = answer_log_probs(model, tokenizer, prompts, (YES, NO), batch_size=batch_size, device=device, progress=progress)
    return lp[:, 0] - lp[:, 1]


def prior_threshold(log_odds: np.ndarray, base_rate: float) -> float:
    """Threshold t such that the share of ``log_odds > t`` is ``base_rate`` (up to ties): the
    ``1 - base_rate`` quantile of the log-odds (numpy's linear interpolation)."""
    if not 0.0 <= base_rate <= 1.0:
        raise ValueError("base_rate must be in [0, 1]")
    return float(np.quantile(np.asarray(log_odds, dtype=np.float64), 1.0 - base_rate))


def decide(log_odds: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Decisions (1 = yes = positive class) ``log_odds > threshold`` as an int array."""
    return (np.asarray(log_odds) > threshold).astype(int)
