"""Run by test_sharded_save.py under torchrun with 2 CPU processes (gloo): a LoRA model of tiny:llama sharded
with FSDP2 (``fully_shard``), saved the naive way (each process's own state dict: the bug of peft#1402 /
trl#4416) and lorafair's way (the full state dict gathered as ``Accelerator.get_state_dict`` does under
FSDP2, attached with ``checkpoint.attach_gathered_state``, written by ``checkpoint.save_adapter``).
Writes ``result.json`` into the folder given as argv[1]."""

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from lorafair.adapt import checkpoint
    from lorafair.adapt.train import build_variant_model
    from lorafair.adapt.variants import Variant
    from lorafair.models.tiny import build_tiny

    base, _ = build_tiny("llama", seed=0)
    model = build_variant_model(base, Variant("lora-r2", "lora", 2, (1e-2,), 4.0), seed=0)
    with torch.no_grad():  # a trained-looking adapter: B is zero at init, and a zero adapter would hide a bug
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.05)
    ids = torch.arange(3, 19).reshape(2, 8)
    with torch.no_grad():
        want = model(input_ids=ids).logits
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in model.base_model.model.model.layers:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    with torch.no_grad():
        sharded_logits = model(input_ids=ids).logits
    # the naive save: what each process holds is a shard
    local = {k: v.to_local() if hasattr(v, "to_local") else v for k, v in model.state_dict().items() if "lora_" in k}
    local_numel = sum(v.numel() for v in local.values())
    full_numel = sum(v.numel() for k, v in model.state_dict().items() if "lora_" in k)  # global shapes (DTensor)
    gathered = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True,
                                                                    cpu_offload=True))
    result = {}
    if rank == 0:
        checkpoint.attach_gathered_state(model, gathered)
        checkpoint.save_adapter(model, out / "adapter")
        from safetensors.torch import load_file

        saved = load_file(str(out / "adapter" / "adapter_model.safetensors"))
        fresh, _ = build_tiny("llama", seed=0)
        with torch.no_grad():
            base_logits = fresh(input_ids=ids).logits
        loaded = checkpoint.load_adapter(fresh, out / "adapter").eval()
        with torch.no_grad():
            got = loaded(input_ids=ids).logits
        result = {"saved_tensors": len(saved), "saved_numel": sum(v.numel() for v in saved.values()),
                  "empty_tensors": sum(v.numel() == 0 for v in saved.values()),
                  "local_numel": local_numel, "full_numel": full_numel,
                  "max_diff_loaded": float((got - want).abs().max()),
                  "max_diff_sharded": float((sharded_logits - want).abs().max()),
                  "adapter_delta": float((want - base_logits).abs().max())}
        (out / "result.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
