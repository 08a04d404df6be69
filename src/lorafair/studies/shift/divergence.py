"""Divergences between next-token posteriors, computed from logits.

Definitions (natural log, nats), for distributions P and Q over the vocabulary:

- KL(P‖Q) = Σ_x P(x) (log P(x) − log Q(x))                  (Kullback & Leibler 1951)
- reverse KL is KL(Q‖P): the same function with arguments swapped;
- JS(P, Q) = ½ KL(P‖M) + ½ KL(Q‖M), M = ½(P + Q)             (Lin 1991), bounded by log 2.

Logits are turned into log-probabilities with ``log_softmax`` in the accumulation dtype
(float32 by default, float64 on request), so nothing under- or overflows. Each function returns one
value per token position.
"""

from __future__ import annotations

import math
from typing import Optional

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


def role_divergences(logps: dict[str, torch.Tensor], pairs: dict[tuple[str, str], dict[str, str]], kinds, *,
                     rows: int, work: Optional[Workspace] = None) -> dict[str, torch.Tensor]:
    """Divergences between several models' log-posteriors over the same positions, ``rows`` positions
    at a time in one reused :class:`Workspace`.

    ``logps``: role → positions × vocabulary; ``pairs``: (P role, Q role) → {kind: output name} with
    kinds ``kl`` = KL(P‖Q), ``reverse_kl`` = KL(Q‖P), ``js``; only ``kinds`` are computed. Each role's
    probabilities are exponentiated once per chunk and shared by the pairs; a pair of one and the same
    tensor is 0 without work. Returns output name → one value per position."""
    n = next(iter(logps.values())).shape[0]
    w = work if work is not None else Workspace()
    parts: dict[str, list] = {name: [] for pair in pairs.values() for k, name in pair.items() if k in kinds}
    for s in range(0, n, rows):
        sub = {role: t[s : s + rows] for role, t in logps.items()}
        probs: dict[str, torch.Tensor] = {}

        def prob(role):
            if role not in probs:
                probs[role] = torch.exp(sub[role], out=w.get(f"p_{role}", sub[role]))
            return probs[role]

        for (a, b), names in pairs.items():
            want = tuple(k for k in kinds if k in names)
            if not want:
                continue
            if logps[a] is logps[b]:
                res = {k: sub[a].new_zeros(sub[a].shape[0]) for k in want}
            else:
                need_q = "reverse_kl" in want or "js" in want
                res = pair_divergences(sub[a], sub[b], want, p=prob(a), q=prob(b) if need_q else None, work=w)
            for k, v in res.items():
                parts[names[k]].append(v)
    return {name: torch.cat(v) if v else next(iter(logps.values())).new_zeros(0) for name, v in parts.items()}


def chunked_divergences(logp: torch.Tensor, logq: torch.Tensor, kinds=("kl",), *, work: Optional[Workspace] = None,
                        rows: Optional[int] = None) -> dict[str, torch.Tensor]:
    """:func:`pair_divergences` over any leading shape (… × vocabulary), ``rows`` positions at a time
    (default :func:`chunk_rows`) in one reused :class:`Workspace`."""
    if logp.shape != logq.shape:
        raise ValueError(f"log-probabilities of shapes {tuple(logp.shape)} and {tuple(logq.shape)} differ")
    lead, vocab = logp.shape[:-1], logp.shape[-1]
    out = role_divergences({"p": logp.reshape(-1, vocab), "q": logq.reshape(-1, vocab)}, {("p", "q"): {k: k for k in kinds}},
                           kinds, rows=rows or chunk_rows(vocab, logp.device), work=work)
    return {k: v.reshape(lead) for k, v in out.items()}


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
