"""LoRA-family variants are built on the base model's own weight tensors (no second copy of the base)."""

import torch

from lorafair.adapt.shared_copy import shares_base_weights, variant_copy
from lorafair.adapt.train import build_variant_model, train_model
from lorafair.adapt.tokenize import encode_records
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig
from lorafair.models.tiny import build_tiny


def storages(model):
    return {p.untyped_storage().data_ptr() for p in model.parameters()}


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_lora_variant_shares_weights_trains_and_leaves_the_base_untouched():
    base, tok = build_tiny("llama", seed=0)
    base.requires_grad_(False)
    ids = torch.tensor([[1, 5, 9, 13, 2]])
    before = logits(base, ids)
    names_before = [n for n, _ in base.named_modules()]
    v = Variant("lora-r4", "lora", 4, (1e-2,), 8.0)
    model = build_variant_model(base, v, 0)
    base_ptrs = storages(base)
    # every base weight of the variant is the base model's own storage: only the adapters are new
    frozen = {p.untyped_storage().data_ptr() for n, p in model.named_parameters() if "lora_" not in n}
    assert frozen <= base_ptrs and frozen
    enc = encode_records([{"text": "the cat sat on the mat and the dog sat too"}] * 8, tok, 16)
    train_model(model, tok, enc, [], TrainConfig(max_steps=3, batch_size=4, checkpoint_every=None), 1e-2, 0,
                torch.device("cpu"), progress=False)
    # trained: the variant differs from the base; the base (weights, modules, mode of its parameters) is unchanged
    assert not torch.allclose(logits(model, ids), before)
    assert torch.equal(logits(base, ids), before)
    assert [n for n, _ in base.named_modules()] == names_before
    assert not any(p.requires_grad for p in base.parameters())


def test_full_and_pissa_get_their_own_weights(monkeypatch):
    base, _ = build_tiny("llama", seed=0)
    assert not shares_base_weights("full") and not shares_base_weights("pissa") and shares_base_weights("dora")
    for method in ("full", "pissa"):
        assert storages(variant_copy(base, method)).isdisjoint(storages(base))
    assert storages(variant_copy(base, "lora")) == storages(base)
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")  # FSDP flattens the parameters it is given: a real copy
    assert not shares_base_weights("lora")
