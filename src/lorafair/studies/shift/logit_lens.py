"""Logit lens (nostalgebraist 2020): read the residual stream of every layer through the model's
own final norm and unembedding.

For a causal LM with hidden states h_0 (embeddings) … h_L (output of the last block, which
``transformers`` returns *after* the final norm), layer ℓ's lens distribution is

    lens_ℓ = softmax(W_U · proj(norm_f(h_ℓ)))      for ℓ < L,
    lens_L = softmax(model logits)                  (h_L is already normalised),

where norm_f is the decoder's final norm, proj the optional output projection (OPT's
``project_out``) and W_U the output embedding (``model.get_output_embeddings()``). Works for
llama-family models (``model.norm``), GPT-2/GPT-Neo/GPT-J (``transformer.ln_f``), OPT
(``model.decoder.final_layer_norm``), GPT-NeoX, Phi, Falcon, and any model whose decoder
(``get_decoder()``) holds its final norm under one of the usual names. PEFT models are unwrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import nn

from lorafair.errors import UserError

# Attribute names under which decoders keep their final norm, most common first.
_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f", "ln_out")
# Paths from the CausalLM wrapper to the decoder, tried when get_decoder() is missing.
_DECODER_PATHS = ("model.decoder", "model", "transformer", "gpt_neox", "decoder", "backbone")


def _unwrap(model: nn.Module) -> nn.Module:
    get_base = getattr(model, "get_base_model", None)  # peft.PeftModel
    return get_base() if callable(get_base) else model


def _getpath(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_decoder(model: nn.Module) -> nn.Module:
    m = _unwrap(model)
    get = getattr(m, "get_decoder", None)
    if callable(get):
        try:
            dec = get()
            if isinstance(dec, nn.Module) and dec is not m:
                return dec
        except (AttributeError, NotImplementedError):
            pass
    for path in _DECODER_PATHS:
        dec = _getpath(m, path)
        if isinstance(dec, nn.Module):
            # "model" of OPT is a wrapper holding .decoder: descend.
            inner = getattr(dec, "decoder", None)
            return inner if isinstance(inner, nn.Module) else dec
    raise UserError.plain(f"logit lens: cannot find the decoder of {type(m).__name__}")


def find_final_norm(model: nn.Module) -> nn.Module:
    """The decoder's final norm module (e.g. ``model.model.norm`` for llama)."""
    dec = find_decoder(model)
    for name in _NORM_NAMES:
        mod = getattr(dec, name, None)
        if isinstance(mod, nn.Module):
            return mod
    raise UserError.plain(
        f"logit lens: cannot find the final norm of {type(_unwrap(model)).__name__} "
        f"(looked for {', '.join(_NORM_NAMES)} on {type(dec).__name__})"
    )


@dataclass
class LensHead:
    """norm_f → proj → W_U (→ soft-capping), the map from a residual stream to lens logits."""

    norm: nn.Module
    proj: Optional[nn.Module]
    unembed: nn.Module
    softcap: Optional[float] = None

    def __call__(self, hidden: torch.Tensor) -> torch.Tensor:
        x = self.norm(hidden)
        if self.proj is not None:
            x = self.proj(x)
        logits = self.unembed(x)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


def lens_head(model: nn.Module) -> LensHead:
    m = _unwrap(model)
    unembed = m.get_output_embeddings()
    if unembed is None:
        raise UserError.plain(f"logit lens: {type(m).__name__} has no output embeddings (not a causal LM?)")
    proj = getattr(find_decoder(m), "project_out", None)
    softcap = getattr(m.config, "final_logit_softcapping", None)
    return LensHead(find_final_norm(m), proj if isinstance(proj, nn.Module) else None, unembed, softcap)


def lens_logits(model: nn.Module, hidden_states, final_logits: torch.Tensor, layers=None) -> Callable[[int], torch.Tensor]:
    """Return ``get(ℓ)`` giving layer ℓ's lens logits (batch × seq × vocab), computed on demand so
    only one layer's vocabulary-sized tensor lives at a time. ℓ runs over 0 … len(hidden_states)−1;
    the last is ``final_logits``."""
    head = lens_head(model)
    last = len(hidden_states) - 1

    def get(layer: int) -> torch.Tensor:
        if layer == last:
            return final_logits
        return head(hidden_states[layer])

    return get


def toxic_mass(logits: torch.Tensor, token_ids: torch.Tensor, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Probability mass softmax(logits) puts on ``token_ids`` (1-D, unique), per position."""
    return toxic_mass_logp(torch.log_softmax(logits.to(dtype), dim=-1), token_ids)


def toxic_mass_logp(logp: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Probability mass on ``token_ids`` (1-D, unique) per position, from log-probabilities."""
    return torch.logsumexp(logp.index_select(-1, token_ids.to(logp.device)), dim=-1).exp()
