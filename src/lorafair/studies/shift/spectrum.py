"""Spectrum of a fine-tuning update and its overlap with LoRA updates.

For every linear module with weight W (Linear, or GPT-2's Conv1D), ΔW = W_full − W_base and its
singular values σ_1 ≥ σ_2 ≥ … (``torch.linalg.svdvals``):

- **energy at rank r**: Σ_{i≤r} σ_i² / Σ_i σ_i² = ‖ΔW_r‖_F² / ‖ΔW‖_F², the fraction of the update
  that the best rank-r approximation ΔW_r keeps (Eckart & Young 1936);
- **effective rank** (Roy & Vetterli 2007): exp(H(p)), p_i = σ_i / Σ_j σ_j, H the Shannon entropy
  (nats). Equals r for r equal non-zero singular values; 0 for ΔW = 0.

For a LoRA-family variant, its own update ΔW_v = W_eff(variant) − W(base) per adapted module
(:func:`module_delta`: the factors s·B·A for LoRA and rsLoRA; s·(B·A − B₀A₀) for PiSSA, whose base
layers hold the residual W − s·B₀A₀, as a low-rank product; the dense m/‖W + s·B·A‖·(W + s·B·A) − W
for DoRA), and the **principal angles** (Björck & Golub 1973) between its top-r left singular
subspace (r = the adapter rank) and that of ΔW_full: 0 when the variant found the same directions as
full fine-tuning, π/2 when orthogonal. ``overlap`` = mean cos² of the angles = ‖U_vᵀU_f‖_F² / r. A zero
update (an adapter that has not moved) has no subspace and no angles.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np
import scipy.linalg
import torch
from torch import nn

from lorafair.errors import UserError
from lorafair.methods import base_rewriting_inits

DEFAULT_RANKS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TOP_SV = 64
_LAYER_RE = re.compile(r"^(.*?)\.(\d+)\.(.+)$")


def energy_at_ranks(sv: torch.Tensor | np.ndarray, ranks: Iterable[int]) -> dict[int, float]:
    """Fraction of Σσ² in the top-r singular values, for each r (1.0 for r ≥ number of values).
    NaN when all σ are 0."""
    s = np.sort(np.asarray(torch.as_tensor(sv, dtype=torch.float64).cpu()))[::-1]
    e = s**2
    total = e.sum()
    cum = np.cumsum(e)
    out = {}
    for r in ranks:
        if r < 1:
            raise ValueError(f"rank must be >= 1, got {r}")
        out[int(r)] = float(cum[min(r, len(cum)) - 1] / total) if total > 0 else float("nan")
    return out


def effective_rank(sv: torch.Tensor | np.ndarray) -> float:
    """Roy & Vetterli (2007) effective rank exp(H(σ/Σσ)); 0 for an all-zero spectrum."""
    s = np.abs(np.asarray(torch.as_tensor(sv, dtype=torch.float64).cpu()))
    tot = s.sum()
    if tot <= 0:
        return 0.0
    p = s[s > 0] / tot
    return float(math.exp(-(p * np.log(p)).sum()))


def split_name(name: str) -> tuple[str, Optional[int]]:
    """``model.layers.3.self_attn.q_proj`` → (``self_attn.q_proj``, 3); no layer index → (name, None)."""
    m = _LAYER_RE.match(name)
    return (m.group(3), int(m.group(2))) if m else (name, None)


def _unwrap(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _is_adapter_part(name: str) -> bool:
    """PEFT's own submodules (lora_A, lora_B, lora_embedding_*, modules_to_save copies …)."""
    return any(p.startswith("lora_") or p in ("modules_to_save", "original_module") for p in name.split("."))


def linear_weights(model: nn.Module, *, include_output: bool = False) -> dict[str, torch.Tensor]:
    """Weights of the linear modules (Linear and Conv1D) by module name, in the module's own layout.
    For a PEFT model these are the *base* weights (the adapters' ``base_layer``), unmerged. The
    output embedding (``lm_head``) is left out unless ``include_output``."""
    from transformers.pytorch_utils import Conv1D

    m = _unwrap(model)
    out_emb = m.get_output_embeddings() if hasattr(m, "get_output_embeddings") else None
    weights: dict[str, torch.Tensor] = {}
    for name, mod in m.named_modules():  # model order
        if name.endswith(".base_layer") or _is_adapter_part(name):
            continue
        inner = getattr(mod, "base_layer", None)  # PEFT wrappers hold the original layer here
        layer = inner if isinstance(inner, (nn.Linear, Conv1D)) else mod
        if not isinstance(layer, (nn.Linear, Conv1D)):
            continue
        if out_emb is not None and (layer is out_emb or mod is out_emb) and not include_output:
            continue
        weights[name] = layer.weight.detach()
    return weights


@dataclass
class ModuleSpectrum:
    name: str
    module_type: str
    layer: Optional[int]
    shape: tuple[int, int]
    singular_values: list[float]  # top TOP_SV
    energy: dict[int, float]
    effective_rank: float
    fro_norm: float
    rel_norm: float  # ‖ΔW‖_F / ‖W_base‖_F

    def as_dict(self) -> dict:
        d = asdict(self)
        d["shape"] = list(self.shape)
        d["energy"] = {str(k): v for k, v in self.energy.items()}
        return d


def module_spectrum(name: str, delta: torch.Tensor, ranks: Sequence[int], *, base_norm: float = float("nan"),
                    dtype: torch.dtype = torch.float32, top: int = TOP_SV, sv: Optional[torch.Tensor] = None) -> ModuleSpectrum:
    """Spectrum summary of one ΔW (``sv`` may be given when already computed)."""
    if sv is None:
        sv = torch.linalg.svdvals(delta.to(dtype))
    sv = sv.to(torch.float64).cpu()
    mtype, layer = split_name(name)
    fro = float(torch.sqrt((sv**2).sum()))
    return ModuleSpectrum(
        name, mtype, layer, tuple(delta.shape), [float(x) for x in sv[:top]], energy_at_ranks(sv, ranks),
        effective_rank(sv), fro, fro / base_norm if base_norm and base_norm > 0 else float("nan"),
    )


def paired_weights(base: nn.Module, full: nn.Module) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, W_base, W_full) for every linear module; UserError if the architectures differ."""
    wb, wf = linear_weights(base), linear_weights(full)
    if set(wb) != set(wf):
        only_b, only_f = sorted(set(wb) - set(wf))[:3], sorted(set(wf) - set(wb))[:3]
        raise UserError.plain(
            f"the two models have different architectures: modules only in base {only_b}, only in full {only_f}"
        )
    if not wb:
        raise UserError.plain("no linear modules found in the models")
    out = []
    for name in wb:
        if wb[name].shape != wf[name].shape:
            raise UserError.plain(
                f"the two models have different architectures: {name} is {tuple(wb[name].shape)} in base "
                f"and {tuple(wf[name].shape)} in full"
            )
        out.append((name, wb[name], wf[name]))
    return out


@dataclass
class UpdateDecomposition:
    """SVD of every ΔW_full: spectra plus the top-k left singular vectors (for principal angles)."""

    spectra: list[ModuleSpectrum]
    left: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> U[:, :k] (float32)


def update_spectrum(base: nn.Module, full: nn.Module, ranks: Sequence[int] = DEFAULT_RANKS, *,
                    dtype: torch.dtype = torch.float32, keep_left: int = 0) -> UpdateDecomposition:
    """Spectrum of ΔW = W_full − W_base for every linear module; with ``keep_left`` > 0 also keeps
    that many left singular vectors of each ΔW (one SVD per module either way)."""
    spectra, left = [], {}
    with torch.no_grad():
        for name, wb, wf in paired_weights(base, full):
            delta = wf.to(dtype) - wb.to(dtype)
            if keep_left:
                u, s, _ = torch.linalg.svd(delta, full_matrices=False)
                if s.numel() and s[0] > 0:  # a zero update has no subspace to compare with
                    left[name] = u[:, :keep_left].to(torch.float32).clone()
            else:
                s = torch.linalg.svdvals(delta)
            spectra.append(module_spectrum(name, delta, ranks, base_norm=float(wb.to(dtype).norm()), sv=s))
    return UpdateDecomposition(spectra, left)


def _agg(values: list[float]) -> float:
    v = [x for x in values if x == x]
    return float(np.mean(v)) if v else float("nan")


def summarise_spectra(spectra: Sequence[ModuleSpectrum]) -> dict:
    """Mean energy at each rank, mean effective rank and count, per module type and per layer."""
    def group(key):
        groups: dict = {}
        for s in spectra:
            groups.setdefault(key(s), []).append(s)
        out = {}
        for k, items in sorted(groups.items(), key=lambda kv: (kv[0] is None, kv[0])):
            ranks = items[0].energy.keys()
            out[str(k)] = {
                "n_modules": len(items),
                "energy": {str(r): _agg([s.energy[r] for s in items]) for r in ranks},
                "effective_rank": _agg([s.effective_rank for s in items]),
                "rel_norm": _agg([s.rel_norm for s in items]),
            }
        return out

    return {"by_type": group(lambda s: s.module_type), "by_layer": group(lambda s: s.layer)}


def orthonormal_basis(m: torch.Tensor | np.ndarray, r: int, *, niter: int = 2, with_values: bool = False):
    """Top-r left singular vectors of ``m`` (float64 numpy, columns); with ``with_values`` also the top-r
    singular values.

    For small r a randomized range finder (``torch.svd_lowrank``, r + 8 columns, ``niter`` power
    iterations, seeded) gives the same subspace at a fraction of a full SVD's cost."""
    t = torch.as_tensor(m).detach().to(torch.float64).cpu()
    q = r + 8
    if q < min(t.shape) // 2:
        gen_state = torch.random.get_rng_state()
        torch.manual_seed(0)
        u, s, _ = torch.svd_lowrank(t, q=q, niter=niter)
        torch.random.set_rng_state(gen_state)
        u, s = u[:, :r].numpy(), s[:r].numpy()
    else:
        u, s, _ = np.linalg.svd(t.numpy(), full_matrices=False)
        u, s = u[:, :r], s[:r]
    return (u, s) if with_values else u


def principal_angles(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, *, orthonormal: bool = False) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``a`` and ``b``
    (``scipy.linalg.subspace_angles``, accurate for small angles too).

    ``orthonormal=True`` promises orthonormal columns (singular vectors, a QR's Q) and skips scipy's two
    re-orthonormalising SVDs: the same algorithm (Björck & Golub 1973: cosines from σ(AᵀB), sines from
    σ(B − A·AᵀB) where cos² ≥ ½) on the given bases, in float64 — 4–5× faster for 64-dim subspaces."""
    if not orthonormal:
        a = np.asarray(torch.as_tensor(a, dtype=torch.float64).cpu())
        b = np.asarray(torch.as_tensor(b, dtype=torch.float64).cpu())
        return np.sort(scipy.linalg.subspace_angles(a, b))
    qa = torch.as_tensor(a, dtype=torch.float64).cpu()
    qb = torch.as_tensor(b, dtype=torch.float64).cpu()
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    m = qa.T @ qb
    cos = torch.linalg.svdvals(m).flip(0).clamp(-1.0, 1.0)  # ascending: the smallest cosine is the largest angle
    theta = torch.arccos(cos)
    small = cos**2 >= 0.5
    if bool(small.any()):
        sin = torch.linalg.svdvals(qb - qa @ m).clamp(-1.0, 1.0)  # descending, pairs with ascending cosines
        theta = torch.where(small, torch.arcsin(sin), theta)
    return np.sort(theta.numpy())


@dataclass
class LowRankDelta:
    """An update ΔW = L · R (module layout: out × in, or in × out for ``fan_in_fan_out`` layers such as
    GPT-2's Conv1D) kept as its factors. Width 0 is the zero update (:meth:`zero`)."""

    left: torch.Tensor
    right: torch.Tensor

    @classmethod
    def zero(cls, shape: tuple[int, int]) -> "LowRankDelta":
        return cls(torch.zeros(shape[0], 0, dtype=torch.float64), torch.zeros(0, shape[1], dtype=torch.float64))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.left.shape[0], self.right.shape[1])

    @property
    def is_zero(self) -> bool:
        return self.left.shape[1] == 0

    def dense(self) -> torch.Tensor:
        return self.left @ self.right

    def _core(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(Q_L, R_L R_Rᵀ) with L = Q_L R_L and Rᵀ = Q_R R_R, so ΔW = Q_L (R_L R_Rᵀ) Q_Rᵀ."""
        left, right = self.left.detach().to(torch.float64).cpu(), self.right.detach().to(torch.float64).cpu()
        q_l, r_l = torch.linalg.qr(left)
        _, r_r = torch.linalg.qr(right.T)
        return q_l, r_l @ r_r.T

    def fro_norm(self) -> float:
        """‖ΔW‖_F from the factors (the norm of the small core)."""
        return 0.0 if self.is_zero else float(torch.linalg.norm(self._core()[1]))

    def left_basis(self, k: int) -> np.ndarray:
        """Top-k left singular vectors (float64, columns), exactly, from the factors: ΔW's left singular
        vectors are Q_L times those of the core — an SVD of (factor width)² instead of out × in."""
        q_l, core = self._core()
        u, _, _ = torch.linalg.svd(core)
        return (q_l @ u[:, :k]).numpy()


# Updates whose computation cancels (PiSSA's residual base layer, DoRA's rescaled weight) are exact only
# up to the rounding of the stored weights: below this fraction of ‖W_base‖_F they count as zero.
def rounding_floor(dtype: torch.dtype, r: int) -> float:
    """Relative size (to ‖W‖_F) of the rounding noise of an effective-weight difference: one ulp of the
    weight's dtype (PiSSA's residual is stored in it: ≤ ½ ulp per entry) plus √r float32 ulps (PEFT's own
    float32 product B₀A₀ at PiSSA initialisation). A 0-step PiSSA adapter measures 0.2–1.5 float32 ulps."""
    return torch.finfo(dtype).eps + math.sqrt(max(r, 1)) * torch.finfo(torch.float32).eps




def _range_factor(c: torch.Tensor, q: int, tol: float) -> Optional[tuple[torch.Tensor, torch.Tensor]]:
    """(Q, QᵀC) with C ≈ Q·QᵀC to within ``tol`` (Frobenius), Q of q orthonormal columns from a seeded
    randomized range finder with one power iteration; None when C is not that low-rank (or q is not small)."""
    if q >= min(c.shape) // 2:
        return None
    gen = torch.Generator(device=c.device).manual_seed(0)
    omega = torch.randn(c.shape[1], q, generator=gen, dtype=c.dtype, device=c.device)
    qm = torch.linalg.qr(c @ omega).Q
    qm = torch.linalg.qr(c @ (c.T @ qm)).Q
    coef = qm.T @ c
    if float(torch.linalg.norm(c - qm @ coef)) > tol:
        return None
    return qm, coef


def module_delta(mod: nn.Module, adapter: str, w_base: Optional[torch.Tensor] = None
                 ) -> tuple[LowRankDelta | torch.Tensor, float]:
    """ΔW = W_eff − W_base of one PEFT LoRA-family layer, in the module's weight layout, float64.

    ``w_base``: the base model's weight of this module (default: the layer's ``base_layer`` weight, which
    is the base weight for LoRA, rsLoRA and DoRA but the residual W − s·B₀A₀ for PiSSA).

    - LoRA / rsLoRA (base layer = W): ΔW = s·B·A, kept as its factors (exact);
    - base layer ≠ W (PiSSA): ΔW = (W_res − W) + s·B·A = s·(B·A − B₀A₀); the correction W_res − W has the
      adapter's rank, so it is factored by a randomized range finder (rank r + 8, residual below the
      rounding floor) and ΔW = [s·B | Q]·[A ; QᵀC] stays a low-rank product (else dense);
    - DoRA: W_eff = m / ‖W + s·B·A‖_row · (W + s·B·A) (PEFT's norm: per output unit), ΔW = W_eff − W
      dense (not of rank r in general);
    - other layer types: PEFT's own merge on a copy of the layer, minus W.

    Returns (ΔW, floor): updates below floor = :func:`rounding_floor` × ‖W_base‖_F where the computation
    cancels (PiSSA, DoRA; floor 0 for exact factors), and exactly zero ones, are :meth:`LowRankDelta.zero`.
    """
    fifo = bool(getattr(mod, "fan_in_fan_out", False))
    t = (lambda x: x.T) if fifo else (lambda x: x)  # module layout <-> out × in
    w_bl = mod.get_base_layer().weight.detach()
    w_ref = w_bl if w_base is None else w_base.detach().to(w_bl.device)
    if w_ref.shape != w_bl.shape:
        raise UserError.plain(f"base weight of a LoRA module has shape {tuple(w_ref.shape)}, the variant's "
                              f"{tuple(w_bl.shape)}: the variant was not trained on this base model")
    r = int(mod.r[adapter])
    f64 = torch.float64
    floor = rounding_floor(w_bl.dtype, r) * float(torch.linalg.norm(w_ref.to(f64)))
    a, b = mod.lora_A[adapter], mod.lora_B[adapter]
    mags = getattr(mod, "lora_magnitude_vector", None) or {}
    with torch.no_grad():
        if not (isinstance(a, nn.Linear) and isinstance(b, nn.Linear)):
            cp = copy.deepcopy(mod)
            cp.merge(adapter_names=[adapter])
            delta: LowRankDelta | torch.Tensor = cp.get_base_layer().weight.detach().to(f64) - w_ref.to(f64)
            del cp
            exact = False
        else:
            left = b.weight.detach().to(f64) * mod.scaling[adapter]  # out × r
            right = a.weight.detach().to(f64)  # r × in
            if adapter in mags:  # DoRA
                v = t(w_bl).to(f64) + left @ right
                g = mags[adapter].weight.detach().to(f64).reshape(-1) / torch.linalg.norm(v, dim=1)
                delta, exact = t(g[:, None] * v - t(w_ref).to(f64)), False
            elif torch.equal(w_bl, w_ref):
                delta, exact = (LowRankDelta(right.T, left.T) if fifo else LowRankDelta(left, right)), True
            else:
                c = t(w_bl).to(f64) - t(w_ref).to(f64)
                fac = _range_factor(c, r + 8, floor)
                if fac is not None:
                    lf, rf = torch.cat([left, fac[0]], 1), torch.cat([right, fac[1]], 0)
                    delta = LowRankDelta(rf.T, lf.T) if fifo else LowRankDelta(lf, rf)
                else:
                    delta = t(c + left @ right)
                exact = False
    floor = 0.0 if exact else floor
    norm = delta.fro_norm() if isinstance(delta, LowRankDelta) else float(torch.linalg.norm(delta))
    if norm == 0 or norm <= floor:
        return LowRankDelta.zero(tuple(w_bl.shape)), floor
    return delta, floor


def lora_deltas(model: nn.Module, base: nn.Module | dict[str, torch.Tensor] | None = None
                ) -> dict[str, tuple[LowRankDelta | torch.Tensor, int, float]]:
    """ΔW = W_eff(variant) − W(base) of each LoRA-family module of a PEFT model (active adapter), by
    base-model module name: (ΔW, adapter rank r, rounding floor) (see :func:`module_delta`). ``base``: the base model
    (or its :func:`linear_weights`); required for PiSSA-like inits, whose base layers are not the base
    weights. A zero update is :meth:`LowRankDelta.zero` (``is_zero``)."""
    try:
        from peft.tuners.lora import LoraLayer
    except ImportError:  # pragma: no cover
        return {}
    inner = _unwrap(model)
    if base is None:
        cfgs = getattr(model, "peft_config", {}) or {}
        rewriting = base_rewriting_inits()  # PEFT inits that rewrite the base layer's weight (PiSSA's …)
        moved = [n for n, c in cfgs.items() if str(getattr(c, "init_lora_weights", "")).lower().startswith(rewriting)]
        if moved:
            raise UserError.plain(f"adapter {moved[0]!r} was initialised with {cfgs[moved[0]].init_lora_weights!r}, "
                                  "which rewrites the base layers: its update needs the base model's weights")
        base_w: dict[str, torch.Tensor] = {}
    else:
        base_w = base if isinstance(base, dict) else linear_weights(base, include_output=True)
    out: dict[str, tuple[LowRankDelta | torch.Tensor, int, float]] = {}
    for name, mod in inner.named_modules():
        if not isinstance(mod, LoraLayer):
            continue
        for adapter in mod.active_adapters:
            if adapter not in getattr(mod, "lora_A", {}):
                continue
            if base is not None and name not in base_w:
                raise UserError.plain(f"module {name} of the variant is not in the base model")
            delta, floor = module_delta(mod, adapter, base_w.get(name))
            out[name] = (delta, int(mod.r[adapter]), floor)
            break
    return out


def top_left(delta: LowRankDelta | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k left singular vectors and values of a module's ΔW: exactly from the factors of a
    :class:`LowRankDelta`, by a randomized range finder (4 power iterations) for a dense one."""
    if isinstance(delta, LowRankDelta):
        q_l, core = delta._core()
        u, s, _ = torch.linalg.svd(core)
        return (q_l @ u[:, :k]).numpy(), s[:k].numpy()
    return orthonormal_basis(delta, k, niter=4, with_values=True)


def lora_subspace_angles(lora: dict[str, tuple], full_left: dict[str, torch.Tensor]) -> list[dict]:
    """Per LoRA module: principal angles between the top-r subspaces of the variant's ΔW and of ΔW_full
    (r = the adapter rank, capped by the stored full vectors, the matrix size and ΔW's numerical rank:
    singular values ≤ 1e-6·σ₁ and, where given as a third tuple element, ≤ the rounding floor, do not
    count). Modules whose ΔW or ΔW_full is zero have no subspace and no row."""
    rows = []
    for name, (delta, r, *rest) in sorted(lora.items()):
        if name not in full_left or (isinstance(delta, LowRankDelta) and delta.is_zero):
            continue
        floor = float(rest[0]) if rest else 0.0
        uf = full_left[name]
        k = min(r, uf.shape[1], min(delta.shape))
        ul, sv = top_left(delta, k)
        k = int(((sv > 1e-6 * sv[0]) & (sv > floor)).sum()) if sv.size and sv[0] > 0 else 0
        if k == 0:
            continue
        ang = principal_angles(ul[:, :k], uf[:, :k], orthonormal=True)
        mtype, layer = split_name(name)
        rows.append({
            "name": name, "module_type": mtype, "layer": layer, "r": k,
            "angles_deg": [float(np.degrees(x)) for x in ang],
            "mean_angle_deg": float(np.degrees(ang.mean())),
            "overlap": float((np.cos(ang) ** 2).mean()),
        })
    return rows
