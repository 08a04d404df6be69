"""A run killed with SIGKILL mid-way resumes and gives the same numbers as an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import yaml

from helpers_lf import TINY, deep_update


def test_sigkill_then_resume_equals_uninterrupted(tmp_path):
    spec = deep_update(TINY, {"variants": {"lora": {"ranks": [1, 2, 4]}}, "train": {"max_steps": 6}})
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(spec))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "lorafair", "run", str(recipe), "--quiet", "--out"]

    killed = tmp_path / "killed"
    p = subprocess.Popen(cmd + [str(killed)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (killed / "full-s0" / "train.json").exists():
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert (killed / "full-s0" / "train.json").exists(), "the run got far enough to be killed mid-way"
    assert not (killed / "metrics.csv").exists(), "killed before the end"
    # no half-written files are visible: every JSON present parses
    import json

    for f in killed.rglob("*.json"):
        json.loads(f.read_text())

    r = subprocess.run(cmd + [str(killed), "--resume"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "trained already, skipping" in (killed / "run.log").read_text()

    clean = tmp_path / "clean"
    r2 = subprocess.run(cmd + [str(clean)], env=env, capture_output=True, text=True, timeout=600)
    assert r2.returncode == 0, r2.stderr
    assert (killed / "metrics.csv").read_text() == (clean / "metrics.csv").read_text()
