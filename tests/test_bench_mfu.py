"""benchmarks/mfu.py: model FLOPs per token (PaLM's convention), LoRA adapter sizes, GPU peaks, MFU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from lorafair.models.sources import load_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mfu():
    spec = importlib.util.spec_from_file_location("mfu", ROOT / "benchmarks" / "mfu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_flops_per_token_by_hand(mfu):
    model, _ = load_model("tiny:llama")
    c = model.config
    head_dim = c.hidden_size // c.num_attention_heads
    q = c.hidden_size * c.num_attention_heads * head_dim
    kv = 2 * c.hidden_size * c.num_key_value_heads * head_dim
    o = c.num_attention_heads * head_dim * c.hidden_size
    mlp = 3 * c.hidden_size * c.intermediate_size
    n = c.num_hidden_layers * (q + kv + o + mlp) + c.hidden_size * c.vocab_size  # + the LM head, not the embedding
    assert mfu.linear_weights(model) == n
    attn = 12 * c.num_hidden_layers * c.num_attention_heads * head_dim * 20
    assert mfu.flops_per_token(model, "full", 20) == 6 * n + attn
    assert mfu.flops_per_token(model, "lora", 20, adapter_weights=1000) == 4 * n + 6 * 1000 + attn
    with pytest.raises(ValueError):
        mfu.flops_per_token(model, "dora", 20)


def test_lora_weights_equal_peft_trainable_parameters(mfu):
    from peft import LoraConfig, get_peft_model

    model, _ = load_model("tiny:llama")
    want = mfu.lora_weights(model, 4)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    assert want == sum(p.numel() for p in pm.parameters() if p.requires_grad)


def test_peaks_and_mfu(mfu):
    assert mfu.gpu_peak_flops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4e12)
    assert mfu.gpu_peak_flops("NVIDIA H100 PCIe") == pytest.approx(756e12)
    assert mfu.gpu_peak_flops("NVIDIA H200") == pytest.approx(989.4e12)
    assert mfu.gpu_peak_flops("Some Other GPU") is None
    assert mfu.mfu(1000.0, 6e9, 1e13) == pytest.approx(0.6)
    assert mfu.peak_flops(torch.device("cpu"), "fp32", override_tflops=2.0) == (2e12, "given (--peak-tflops)")
    assert mfu.measured_matmul_flops(torch.float32, n=128, repeats=2) > 0
