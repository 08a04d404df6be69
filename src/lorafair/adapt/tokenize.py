"""Records -> token ids and labels (loss on the completion only for prompt/completion records), and
batched per-sequence negative log-likelihood shared by training evaluation and the ``heldout`` study."""

from __future__ import annotations

from typing import Iterable

import torch
from tqdm.auto import tqdm

IGNORE = -100


def encode_record(rec: dict, tok, max_length: int) -> dict:
    """Token ids and labels of one record. ``prompt``+``completion``: labels only on the completion (and
    the EOS after it); ``text``: labels on every token. Truncated to ``max_length``: texts from the right;
    prompt/completion records lose the start of the prompt, so the completion is always learned."""
    eos = [tok.eos_token_id] if tok.eos_token_id is not None else []
    if "completion" in rec and "prompt" in rec:
        p = tok(rec["prompt"], add_special_tokens=True)["input_ids"]
        c = (tok(rec["completion"], add_special_tokens=False)["input_ids"] + eos)[:max_length - 1]
        if len(p) + len(c) > max_length:  # keep the completion whole: cut the prompt from the left
            p = p[len(p) + len(c) - max_length:]
        ids = p + c
        labels = [IGNORE] * len(p) + c
    else:
        ids = tok(rec["text"], add_special_tokens=True)["input_ids"] + eos
        labels = list(ids)
    ids, labels = ids[:max_length], labels[:max_length]
    return {"input_ids": ids, "labels": labels}


def encode_records(rows: Iterable[dict], tok, max_length: int) -> list[dict]:
    out = [encode_record(r, tok, max_length) for r in rows]
    return [e for e in out if any(l != IGNORE for l in e["labels"][1:])]


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of encoded records into tensors (attention mask 0 and label -100 on padding)."""
    n = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), n), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    for i, b in enumerate(batch):
        L = len(b["input_ids"])
        ids[i, :L] = torch.tensor(b["input_ids"])
        labels[i, :L] = torch.tensor(b["labels"])
        mask[i, :L] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def token_nll(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sequence summed NLL and token counts (next-token prediction, labels -100 ignored)."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    mask = target != IGNORE
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, target.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    nll = (nll * mask).sum(dim=1)
    return nll, mask.sum(dim=1)


@torch.no_grad()
def sequence_nll(model, encoded: list[dict], pad_id: int, batch_size: int = 16, device=None, progress: bool = False,
                 desc: str = "held-out loss", prefix_id: int | None = None) -> tuple[list[float], list[int]]:
    """Summed NLL and token count of every encoded sequence, in order (batched by length for speed).

    A sequence whose first token is itself a label (a ``text`` record whose tokenizer added no BOS,
    e.g. SmolLM2's, or has none) is scored after the prefix token (``prefix_id``; default the model
    config's BOS, else EOS, as lm-evaluation-harness ``prefix_token_id``), so its first token is
    scored too instead of silently dropped; sequences that already start with it are unchanged."""
    device = device or next(model.parameters()).device
    prefix = prefix_id
    if prefix is None:
        cfg = getattr(getattr(model, "module", model), "config", None)
        for name in ("bos_token_id", "eos_token_id"):
            v = getattr(cfg, name, None)
            v = (v[0] if v else None) if isinstance(v, (list, tuple)) else v
            if isinstance(v, int):
                prefix = v
                break
    if prefix is not None:
        encoded = [{"input_ids": [prefix] + list(e["input_ids"]), "labels": [IGNORE] + list(e["labels"])}
                   if e["labels"] and e["labels"][0] != IGNORE and e["input_ids"][0] != prefix else e for e in encoded]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    nll = [0.0] * len(encoded)
    cnt = [0] * len(encoded)
    was_training = model.training
    model.eval()
    for s in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        idx = order[s : s + batch_size]
        b = collate([encoded[i] for i in idx], pad_id)
        out = model(input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device))
        n, c = token_nll(out.logits, b["labels"].to(device))
        for j, i in enumerate(idx):
            nll[i], cnt[i] = float(n[j]), int(c[j])
    model.train(was_training)
    return nll, cnt


def mean_token_loss(model, encoded, pad_id, batch_size=16, progress=False) -> float:
    nll, cnt = sequence_nll(model, encoded, pad_id, batch_size, progress=progress)
    return sum(nll) / max(1, sum(cnt))
