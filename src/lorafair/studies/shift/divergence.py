"""Divergences between next-token posteriors, computed from logits.

Definitions (natural log, nats), for distributions P and Q over the vocabulary:

- KL(P‖Q) = Σ_x P(x) (log P(x) − log Q(x))                  (Kullback & Leibler 1951)
- reverse KL is KL(Q‖P): the same function with arguments swapped;
- JS(P, Q) = ½ KL(P‖M) + ½ KL(Q‖M), M = ½(P + Q)             (Lin 1991), bounded by log 2.

Logits are turned into log-probabilities with ``log_softmax`` in the accumulation dtype
(float32 by default, float64 on request), so nothing under- or overflows. Each function returns one
value per token position; :func:`masked_token_values`, :func:`per_sequence_means` and
:func:`summarise` aggregate them with a padding mask.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

LOG2 = math.log(2.0)


def _logp(logits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.log_softmax(logits.to(dtype), dim=-1)


class Workspace:
    """Scratch tensors reused across the chunks of a vocabulary-wide computation.

    Each temporary of :func:`pair_divergences` is a few MB; allocated fresh per chunk, glibc serves
    them with ``mmap`` and every chunk pays the page faults again — measured 3–4× slower on CPU than
    the same arithmetic in reused buffers (``benchmarks/bench_shift.py``)."""

    def __init__(self) -> None:
        self._buf: dict[str, torch.Tensor] = {}

    def get(self, name: str, like: torch.Tensor) -> torch.Tensor:
        """A tensor of ``like``'s shape, dtype and device (contents undefined), reused per ``name``."""
        t = self._buf.get(name)
        n = like.numel()
        if t is None or t.numel() < n or t.dtype != like.dtype or t.device != like.device:
            t = self._buf[name] = torch.empty(n, dtype=like.dtype, device=like.device)
        return t[:n].view(like.shape)


@torch.no_grad()
def pair_divergences(logp: torch.Tensor, logq: torch.Tensor, kinds=("kl", "reverse_kl", "js"), *,
                     p: Optional[torch.Tensor] = None, q: Optional[torch.Tensor] = None,
                     work: Optional[Workspace] = None) -> dict[str, torch.Tensor]:
    """KL(P‖Q) (``kl``), KL(Q‖P) (``reverse_kl``) and JS(P, Q) (``js``) per position, from
    log-probabilities over the last axis, sharing the work between them: one difference
    log p − log q serves both KL directions, ``p``/``q`` (the probabilities, when the caller has them)
    are computed at most once, and temporaries live in ``work`` (pass one :class:`Workspace` for
    all chunks of a loop). Sums are pairwise (``nansum``), so float32 keeps ~1e-8 absolute accuracy
    on a 49k vocabulary (a dot-product/``bmm`` form is faster but ~300× less accurate).
    A term with P(x)=0 is 0·(−∞ or NaN) = NaN and ``nansum`` counts it 0, as the definition does; a
    term with P(x)>0, Q(x)=0 makes KL(P‖Q) infinite, as it is. No autograd (metrics only)."""
    w = work if work is not None else Workspace()
    out: dict[str, torch.Tensor] = {}
    if ("kl" in kinds or "js" in kinds) and p is None:
        p = torch.exp(logp, out=w.get("p", logp))
    if ("reverse_kl" in kinds or "js" in kinds) and q is None:
        q = torch.exp(logq, out=w.get("q", logq))
    if "kl" in kinds or "reverse_kl" in kinds:
        d = torch.sub(logp, logq, out=w.get("d", logp))
        t = w.get("t", logp)
        if "kl" in kinds:
            out["kl"] = torch.nansum(torch.mul(p, d, out=t), dim=-1).clamp_min(0.0)
        if "reverse_kl" in kinds:
            out["reverse_kl"] = torch.nansum(torch.mul(q, d, out=t), dim=-1).neg().clamp_min(0.0)
    if "js" in kinds:
        # log M = log ½(P + Q); each of log p − log M, log q − log M is near 0 where P ≈ Q, so the
        # sums do not cancel large terms (writing JS through entropies, or Σp = 1, loses ~1e-5).
        logm = torch.logaddexp(logp, logq, out=w.get("m", logp)).sub_(LOG2)
        t = w.get("t", logp)
        js = torch.nansum(torch.sub(logp, logm, out=t).mul_(p), dim=-1)
        js += torch.nansum(torch.sub(logq, logm, out=t).mul_(q), dim=-1)
        out["js"] = (0.5 * js).clamp(0.0, LOG2)
    return out


def chunked_divergences(logp: torch.Tensor, logq: torch.Tensor, kinds=("kl",), *, work: Optional[Workspace] = None,
                        rows: Optional[int] = None) -> dict[str, torch.Tensor]:
    """:func:`pair_divergences` over any leading shape (… × vocabulary), ``rows`` positions at a time
    (default :func:`chunk_rows`) in one reused :class:`Workspace`."""
    if logp.shape != logq.shape:
        raise ValueError(f"log-probabilities of shapes {tuple(logp.shape)} and {tuple(logq.shape)} differ")
    lead, vocab = logp.shape[:-1], logp.shape[-1]
    a, b = logp.reshape(-1, vocab), logq.reshape(-1, vocab)
    step = rows or chunk_rows(vocab, logp.device)
    w = work if work is not None else Workspace()
    parts: dict[str, list] = {k: [] for k in kinds}
    for s in range(0, a.shape[0], step):
        for k, v in pair_divergences(a[s : s + step], b[s : s + step], kinds, work=w).items():
            parts[k].append(v)
    return {k: (torch.cat(v) if v else a.new_zeros(0)).reshape(lead) for k, v in parts.items()}


def kl_from_logp(logp: torch.Tensor, logq: torch.Tensor, *, work: Optional[Workspace] = None) -> torch.Tensor:
    """KL(P‖Q) per position from log-probabilities over the last axis. Terms with P(x)=0 count 0."""
    return chunked_divergences(logp, logq, ("kl",), work=work)["kl"]


def kl_from_logits(p_logits: torch.Tensor, q_logits: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """KL(P‖Q) per position, P = softmax(p_logits), Q = softmax(q_logits); shape = logits.shape[:-1]."""
    return kl_from_logp(_logp(p_logits, dtype), _logp(q_logits, dtype))


def reverse_kl_from_logits(p_logits: torch.Tensor, q_logits: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """KL(Q‖P) per position (the reverse direction of :func:`kl_from_logits`)."""
    return kl_from_logits(q_logits, p_logits, dtype=dtype)


def js_from_logp(logp: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """Jensen–Shannon divergence per position from log-probabilities (nats, in [0, log 2])."""
    return chunked_divergences(logp, logq, ("js",))["js"]


def js_from_logits(p_logits: torch.Tensor, q_logits: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Jensen–Shannon divergence per position between softmax(p_logits) and softmax(q_logits)."""
    return js_from_logp(_logp(p_logits, dtype), _logp(q_logits, dtype))


def chunk_rows(vocab_size: int, device: torch.device, target_elements: int = 1 << 19) -> int:
    """Rows (positions) per chunk for vocabulary-wide elementwise work: on a CPU, chunks of about
    ``target_elements`` floats (2 MiB), so the temporaries of :func:`pair_divergences` stay near the
    cache; on an accelerator one chunk is the whole batch."""
    if device.type != "cpu":
        return 1 << 30
    return max(1, target_elements // max(1, vocab_size))


def masked_token_values(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """The per-token values where ``mask`` is true, flattened (float64 numpy)."""
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    return values[mask.bool()].detach().to(torch.float64).cpu().numpy()


def per_sequence_means(values: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Mean over the masked positions of each sequence (rows of ``values``); NaN for an empty row."""
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    m = mask.to(torch.float64)
    s = (values.to(torch.float64) * m).sum(-1)
    n = m.sum(-1)
    out = torch.where(n > 0, s / n.clamp_min(1), torch.full_like(s, float("nan")))
    return out.cpu().numpy()


DEFAULT_QUANTILES = (0.5, 0.9, 0.99)


def summarise(token_values: np.ndarray, seq_means: np.ndarray, quantiles=DEFAULT_QUANTILES) -> dict[str, float]:
    """Aggregates of one divergence: mean per token (all tokens pooled), mean per sequence (mean of
    per-sequence means) and token quantiles (``q50``, ``q90``, ``q99`` …)."""
    tv = np.asarray(token_values, dtype=np.float64)
    sm = np.asarray(seq_means, dtype=np.float64)
    sm = sm[~np.isnan(sm)]
    out = {
        "mean_token": float(tv.mean()) if tv.size else float("nan"),
        "mean_sequence": float(sm.mean()) if sm.size else float("nan"),
        "n_tokens": int(tv.size),
        "n_sequences": int(sm.size),
    }
    for q in quantiles:
        out[f"q{round(q * 100):d}"] = float(np.quantile(tv, q)) if tv.size else float("nan")
    return out
