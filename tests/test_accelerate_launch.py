"""A variant's training runs unchanged under `accelerate launch` with 2 CPU processes."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from helpers_lf import TINY, deep_update


def test_accelerate_launch_two_cpu_processes(tmp_path):
    accel = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    if accel is None:
        pytest.fail("accelerate CLI not installed next to the interpreter")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(deep_update(TINY, {"train": {"max_steps": 2}})))
    out = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    # On a machine without GPUs, `--multi_gpu` makes accelerate start the processes with torchrun, and the
    # Accelerator (cpu=True) runs them as MULTI_CPU over gloo. (`--cpu --num_processes 2` alone starts one process.)
    r = subprocess.run([accel, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
                        "--dynamo_backend", "no", "--main_process_port", "29561", "-m", "lorafair", "train", str(recipe), "--variant", "lora-r1", "--out", str(out), "--quiet"],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    tj = json.loads((out / "lora-r1-s0" / "train.json").read_text())
    # 2 processes × 2 steps × batch 4 sequences: tokens counted across both processes
    single = subprocess.run([sys.executable, "-m", "lorafair", "train", str(recipe), "--variant", "lora-r1", "--out", str(tmp_path / "one"), "--quiet"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    tj1 = json.loads((tmp_path / "one" / "lora-r1-s0" / "train.json").read_text())
    assert tj["steps"] == tj1["steps"] == 2
    assert tj["tokens"] > tj1["tokens"], "two processes saw twice the data per step"
    assert tj["world_size"] == 2 and tj1["world_size"] == 1
    assert (out / "lora-r1-s0" / "adapter" / "adapter_model.safetensors").is_file()
    # a later `lorafair run` into the same directory finds the variant trained and only evaluates
    r = subprocess.run([sys.executable, "-m", "lorafair", "run", str(recipe), "--out", str(out), "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    log = (out / "run.log").read_text()
    assert "lora-r1 seed 0: trained already, skipping" in log
