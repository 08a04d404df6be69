"""A LoRA adapter trained under FSDP (sharded parameters) is saved complete and loads to the same logits
(the failure seen elsewhere: empty adapters saved under ZeRO-3 / FSDP, peft#1402, trl#4416). Two CPU
processes over gloo with FSDP2, the engine of the shipped ``fsdp`` accelerate config (accelerate itself runs
FSDP only on accelerators, so this test shards with torch directly and gathers as accelerate does)."""

import json
import os
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("sharded_save_worker.py")


def test_fsdp_sharded_adapter_saved_complete_and_loads_to_same_logits(tmp_path):
    import subprocess

    pytest.importorskip("torch.distributed.fsdp")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29573",
                        str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads((tmp_path / "result.json").read_text())
    assert res["local_numel"] * 2 == res["full_numel"], res  # each process holds half of the adapter: really sharded
    # lora_A and lora_B of q, k, v, o, gate, up, down in 2 layers: 28 tensors, none empty, every element
    assert res["saved_tensors"] == 28 and res["empty_tensors"] == 0, res
    assert res["saved_numel"] == res["full_numel"], res
    assert res["adapter_delta"] > 0.01, "the adapter changes the logits (a zero adapter would prove nothing)"
    assert res["max_diff_sharded"] < 1e-5 and res["max_diff_loaded"] < 1e-5, res
