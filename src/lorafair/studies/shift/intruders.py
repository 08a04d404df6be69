"""Intruder dimensions (Shuttleworth et al. 2024, "LoRA vs Full Fine-tuning: An Illusion of Equivalence",
arXiv 2410.21228): singular vectors of a fine-tuned weight that resemble none of the pre-trained weight's.

For one module with base weight W and fine-tuned weight W' = W + ΔW (module layout, as PEFT stores it):
U = left singular vectors of W (all of them), U' = those of W'; for each of the top-k columns u'_i of
U' (by singular value) its best match is max_j |⟨u'_i, u_j⟩|; u'_i is an *intruder* when that is below ε.
This mirrors the detection in PEFT's ``peft/tuners/lora/intruders.py`` (``reduce_intruder_dimension``:
``cos_sim = (U_merged.T @ U_base).abs().max(dim=1).values``, ``cos_sim[:top_k] < threshold_epsilon``,
SVDs in float32, defaults top_k 10, ε 0.5), which only runs inside its mitigation of a PEFT LoRA model;
here it is applied to any pair of weights, so full fine-tuning gets counted too (tested against PEFT's).
One difference: W is the *base model's* weight, where PEFT takes the adapter's base layer (the same for
LoRA, rsLoRA and DoRA; for PiSSA that layer holds the residual W − B₀A₀, not the pre-trained weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

DEFAULT_TOP_K = 10
DEFAULT_EPSILON = 0.5


def left_singular_vectors(w: torch.Tensor) -> torch.Tensor:
    """U of ``torch.linalg.svd(w, full_matrices=False)`` in float32 (half precision is upcast, as PEFT does)."""
    w = w.detach()
    if w.dtype != torch.float32:
        w = w.float()
    return torch.linalg.svd(w, full_matrices=False)[0]


def best_cosines(u_base: torch.Tensor, w_ft: torch.Tensor, top_k: int = DEFAULT_TOP_K) -> torch.Tensor:
    """For each of the top-k left singular vectors of ``w_ft``: its largest |cosine| with any column of
    ``u_base`` (float32, length min(top_k, rank))."""
    u_ft = left_singular_vectors(w_ft)[:, :top_k]
    return (u_ft.T @ u_base.to(u_ft.dtype)).abs().max(dim=1).values


def intruder_indices(w_base: torch.Tensor, w_ft: torch.Tensor, *, top_k: int = DEFAULT_TOP_K,
                     epsilon: float = DEFAULT_EPSILON, u_base: Optional[torch.Tensor] = None) -> list[int]:
    """Indices (among the top-k singular vectors of ``w_ft``, by singular value) of the intruder dimensions.
    ``u_base``: the left singular vectors of ``w_base`` when already computed."""
    if u_base is None:
        u_base = left_singular_vectors(w_base)
    cos = best_cosines(u_base, w_ft, top_k)
    return torch.where(cos < epsilon)[0].tolist()


@dataclass
class ModuleIntruders:
    name: str
    module_type: str
    layer: Optional[int]
    count: int
    indices: list[int]
    best_cosine: list[float]  # per top-k singular vector of W'

    def as_dict(self) -> dict:
        return {"name": self.name, "module_type": self.module_type, "layer": self.layer, "count": self.count,
                "indices": self.indices, "best_cosine": [round(c, 6) for c in self.best_cosine]}


def summarise(modules: list[ModuleIntruders]) -> dict:
    """Total, and counts per module type and per layer (every analysed module counted, zeros included)."""
    by_type: dict[str, int] = {}
    by_layer: dict[str, int] = {}
    for m in modules:
        by_type[m.module_type] = by_type.get(m.module_type, 0) + m.count
        key = "none" if m.layer is None else str(m.layer)
        by_layer[key] = by_layer.get(key, 0) + m.count
    layer_order = sorted(by_layer, key=lambda k: (k == "none", int(k) if k != "none" else 0))
    return {
        "total": sum(m.count for m in modules),
        "modules": len(modules),
        "modules_with_intruders": sum(1 for m in modules if m.count),
        "by_type": dict(sorted(by_type.items())),
        "by_layer": {k: by_layer[k] for k in layer_order},
    }
