"""Logits at chosen positions only: the model's body gives hidden states and the LM head runs on the kept rows.

With a large vocabulary the LM head dominates a forward pass over short texts (SmolLM2: 49k rows, Gemma 3:
262k), so a loss term that reads a few positions per sequence — a fairness penalty's answer position, the tail
of a text and of its counterfactual — should not compute (batch, length, vocabulary) logits. transformers' causal
LMs take a boolean ``logits_to_keep`` mask of shape (batch, length); a model that does not (an older or a custom
architecture) gets the full logits, indexed afterwards: the same values up to float rounding.
"""

from __future__ import annotations

import torch


def logits_at(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """(n_kept, vocabulary) logits at the positions where the boolean (batch, length) ``keep`` is true, in row-major
    order (row by row, positions ascending), as ``model(...).logits[keep]``."""
    n = int(keep.sum())
    try:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, logits_to_keep=keep, use_cache=False).logits
        if logits.dim() == 2 and logits.shape[0] == n:
            return logits
    except (TypeError, IndexError, ValueError):
        pass
    return model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits[keep]
