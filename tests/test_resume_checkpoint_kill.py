"""A run killed with SIGKILL in the middle of a variant's training resumes from that variant's last
checkpoint (not from step 0) and ends with the same adapter, losses and metrics as an uninterrupted run."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import yaml

from helpers_lf import TINY, deep_update


def test_sigkill_mid_variant_resumes_from_its_checkpoint(tmp_path):
    from safetensors.torch import load_file

    # dropout and grad_accum 2 over 5 micro-batches an epoch: RNG state and pending gradients must be restored
    spec = deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [2], "dropout": 0.1}},
                              "train": {"max_steps": 200, "grad_accum": 2, "checkpoint_every": 10}})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "lorafair", "run", str(recipe), "--quiet", "--out"]

    killed = tmp_path / "killed"
    folder = killed / "lora-r2-s0"
    latest = folder / "checkpoint" / "lr-0" / "latest.json"
    p = subprocess.Popen(cmd + [str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, step = time.time() + 300, 0
    while time.time() < deadline and step < 40 and p.poll() is None:
        try:
            step = json.loads(latest.read_text())["step"]
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.02)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert step >= 40, "the training got far enough to have a checkpoint"
    assert not (folder / "train.json").exists(), "killed in the middle of the variant's training"
    for f in killed.rglob("*.json"):  # nothing half-written is visible
        json.loads(f.read_text())
    ck = json.loads(latest.read_text())
    weights = load_file(folder / "checkpoint" / "lr-0" / ck["folder"] / "trainable.safetensors")
    assert weights and all("lora_" in k for k in weights), "a LoRA checkpoint holds the adapter, not the base"

    r = subprocess.run(cmd + [str(killed), "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    m = re.search(r"lora-r2: resumed from checkpoint at step (\d+) of 200", (killed / "run.log").read_text())
    assert m and int(m.group(1)) >= ck["step"] - 10, "resumed from the last checkpoint, not from step 0"
    assert not (folder / "checkpoint").exists(), "the checkpoint is removed once the variant is saved"

    clean = tmp_path / "clean"
    r2 = subprocess.run(cmd + [str(clean)], env=env, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr
    a = load_file(folder / "adapter" / "adapter_model.safetensors")
    b = load_file(clean / "lora-r2-s0" / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    ta = json.loads((folder / "train.json").read_text())
    tb = json.loads((clean / "lora-r2-s0" / "train.json").read_text())
    for k in ("history", "train_loss", "eval_loss", "lr", "lr_search", "tokens", "steps", "fingerprint"):
        assert ta[k] == tb[k], k
    assert (killed / "metrics.csv").read_text() == (clean / "metrics.csv").read_text()
