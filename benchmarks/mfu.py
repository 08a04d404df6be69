"""Model FLOPs utilisation (MFU) of a training: the model FLOPs of the real tokens per second over the device's peak.

    mfu(tokens_per_s, flops_per_token(model, method, seq_len), peak_flops(device))

FLOPs per real token, PaLM's convention (Chowdhery et al. 2022, appendix B): every matrix product of the model
counts 2 FLOPs per weight in the forward pass and 4 in the backward pass (gradients of the activations and of the
weights), plus attention's ``12 · layers · d_attn · T`` for a sequence of ``T`` tokens. ``N`` is the weight count
of every ``nn.Linear`` of the model, the LM head included (tied or not) and the input embedding (a lookup) left
out. A full fine-tuning does ``6 N``; a LoRA training does no weight gradient for the frozen weights, so ``4 N``
plus ``6 N_adapter`` (every adapter matrix trained). Padding and recomputation are not model FLOPs: MFU reads real
tokens only, so padding lowers it, as it should.

The peak: a GPU's dense bf16 tensor-core peak from its data sheet (by name; ``--peak-tflops`` where it is not in
:data:`GPU_BF16_TFLOPS`); on a CPU, no data sheet applies, so :func:`measured_matmul_flops` times a 2048² matrix
product in the precision the training uses and that is reported as the peak (say so wherever it is printed).
"""

from __future__ import annotations

import time

import torch

# dense (no sparsity) bf16 tensor-core peaks, TFLOP/s, from the vendors' data sheets; matched by substring of
# torch.cuda.get_device_name, most specific first
GPU_BF16_TFLOPS = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100", 989.4),  # SXM
    ("A100", 312.0),
    ("L40S", 362.1),
    ("A10G", 70.0),  # 35 TFLOP/s dense fp16/bf16 with fp32 accumulate, 70 with fp16 accumulate; the higher
    ("L4", 121.0),
)


def linear_weights(model) -> int:
    """Weights of every ``nn.Linear`` in ``model``, each counted once (pass the base model, not a PEFT model: its
    adapter matrices are ``nn.Linear`` modules too)."""
    seen, n = set(), 0
    for m in model.modules():
        if isinstance(m, torch.nn.Linear) and id(m.weight) not in seen:
            seen.add(id(m.weight))
            n += m.weight.numel()
    return n


def lora_weights(model, rank: int) -> int:
    """Weights of rank-``rank`` LoRA adapters on every ``nn.Linear`` of ``model`` but the LM head (PEFT's
    "all-linear" target): ``rank × (in + out)`` each."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return sum(rank * (m.in_features + m.out_features) for m in model.modules()
               if isinstance(m, torch.nn.Linear) and m is not head)


def attention_shape(config) -> tuple[int, int]:
    """(layers, attention width d_attn = heads × head dim) of a transformers config."""
    cfg = getattr(config, "text_config", None) or config
    layers = cfg.num_hidden_layers
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return layers, heads * head_dim


def flops_per_token(model, method: str, seq_len: float, *, adapter_weights: int = 0) -> float:
    """Model FLOPs per real token of one training step (forward and backward), PaLM's convention (module doc).
    ``method``: "full" or "lora"; ``model``: the base model (its ``nn.Linear`` weights are ``N``);
    ``adapter_weights``: the LoRA matrices' weight count; ``seq_len``: the mean real sequence length."""
    n = linear_weights(model)
    layers, d_attn = attention_shape(model.config)
    attention = 12 * layers * d_attn * seq_len
    if method == "full":
        return 6 * n + attention
    if method == "lora":
        return 4 * n + 6 * adapter_weights + attention
    raise ValueError(f"method must be full or lora, not {method!r}")


def gpu_peak_flops(name: str) -> float | None:
    """The dense bf16 peak (FLOP/s) of a GPU named ``name``, or None when it is not in the table."""
    for key, tflops in GPU_BF16_TFLOPS:
        if key in name:
            return tflops * 1e12
    return None


def measured_matmul_flops(dtype: torch.dtype = torch.bfloat16, n: int = 2048, repeats: int = 5,
                          device: str | torch.device = "cpu") -> float:
    """FLOP/s of the best of ``repeats`` ``n × n`` matrix products in ``dtype`` on ``device``."""
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        a @ b
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


def peak_flops(device: torch.device, precision: str, override_tflops: float | None = None) -> tuple[float, str]:
    """(peak FLOP/s, where it comes from) for ``device`` training in ``precision`` ("bf16" or "fp32")."""
    if override_tflops:
        return override_tflops * 1e12, "given (--peak-tflops)"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if (p := gpu_peak_flops(name)) is not None:
            return p, f"{name} data sheet, dense bf16"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    return measured_matmul_flops(dtype, device=device), f"measured: best 2048² {precision} matmul on this {device.type}"


def mfu(tokens_per_s: float, flops_token: float, peak: float) -> float:
    """Model FLOPs utilisation: achieved model FLOP/s over ``peak``."""
    return tokens_per_s * flops_token / peak
