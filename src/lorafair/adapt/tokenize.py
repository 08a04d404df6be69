"""The training side of tokenisation: records -> token ids and labels (:func:`lorafair.lm.encode_record`,
re-exported here), the training collate, and the batched per-sequence negative log-likelihood shared by training evaluation and
the ``heldout`` study (a thin adapter of :meth:`lorafair.lm.LM.sequence_nll`)."""

from __future__ import annotations

import torch

from lorafair.lm import IGNORE, LM, encode_record, encode_records, pad

__all__ = ["IGNORE", "collate", "encode_record", "encode_records", "sequence_nll"]


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded records into tensors (attention mask 0 and label -100 on padding)."""
    ids, mask = pad([b["input_ids"] for b in batch], pad_id, "right")
    labels, _ = pad([b["labels"] for b in batch], IGNORE, "right", width=ids.shape[1])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def sequence_nll(model, encoded: list[dict], pad_id: int, batch_size: int = 16, device=None, progress: bool = False,
                 desc: str = "held-out loss", prefix_id: int | None = None) -> tuple[list[float], list[int]]:
    """Summed NLL and token count of every encoded sequence, in order (batched by length for speed):
    :meth:`lorafair.lm.LM.sequence_nll`.

    A sequence whose first token is itself a label (a ``text`` record whose tokenizer added no BOS,
    e.g. SmolLM2's, or has none) is scored after the prefix token (``prefix_id``; default the model
    config's BOS, else EOS, as lm-evaluation-harness ``prefix_token_id``), so its first token is
    scored too instead of silently dropped; sequences that already start with it are unchanged."""
    lm = LM(model, batch_size=batch_size, device=device, progress=progress, pad_id=pad_id)
    return lm.sequence_nll(encoded, prefix="auto" if prefix_id is None else prefix_id, desc=desc)
