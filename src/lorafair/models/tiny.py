"""``tiny:<arch>[-size]``: random-initialised models built from a config (seeded, deterministic).

``tiny:llama`` is a 2-layer model for tests; ``tiny:llama-1b``, ``tiny:llama-7b`` build real shapes
(without downloading anything) for throughput and memory figures. Tokenizer: byte-level, built in code.
"""

from __future__ import annotations

import torch

from lorafair.errors import UserError
from lorafair.models.byte_tokenizer import byte_tokenizer

# arch -> size -> config kwargs
SIZES: dict[str, dict[str, dict]] = {
    "llama": {
        "": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
        "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, vocab_size=49152),
        "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256),
        "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
    },
    "gpt2": {"": dict(n_embd=64, n_layer=2, n_head=4)},
    "opt": {
        "": dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4, word_embed_proj_dim=64),
        "1.3b": dict(hidden_size=2048, ffn_dim=8192, num_hidden_layers=24, num_attention_heads=32, word_embed_proj_dim=2048, vocab_size=50272),
    },
}


def tiny_names() -> list[str]:
    return [f"tiny:{a}" + (f"-{s}" if s else "") for a, sizes in SIZES.items() for s in sizes]


def tiny_config(spec: str):
    """``(config, tokenizer)`` of ``spec`` such as ``llama`` or ``llama-1b``: the model's shape, no weights."""
    from transformers import AutoConfig

    arch, _, size = spec.partition("-")
    if arch not in SIZES or size not in SIZES[arch]:
        raise UserError("model.source", f"tiny:{spec}", f"one of {', '.join(tiny_names())}")
    tok = byte_tokenizer()
    kwargs = dict(SIZES[arch][size])
    kwargs.setdefault("vocab_size", len(tok))
    if arch == "llama":
        kwargs.setdefault("max_position_embeddings", 4096)
        kwargs.setdefault("tie_word_embeddings", size in ("", "135m"))
    if arch == "opt":
        kwargs.setdefault("max_position_embeddings", 2048)
    config = AutoConfig.for_model(
        arch, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, **kwargs
    )
    return config, tok


def build_tiny(spec: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    """Build ``(model, tokenizer)`` for ``spec`` such as ``llama`` or ``llama-1b``."""
    from transformers import AutoModelForCausalLM

    config, tok = tiny_config(spec)
    gen = torch.random.fork_rng(devices=[])
    with gen:
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model.eval()
    return model, tok
