"""benchmarks/device_check.sh, the prepared run of issue 14's GPU figures, dry-run on the CPU with a tiny model: every
step exits 0, its logs and the ladder's per-phase memory land under $OUT, and a failing step is reported without
stopping the others."""

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "device_check.sh"


def run(tmp_path, **env):
    e = {**os.environ, "QUICK": "1", "DEVICE": "cpu", "MODEL": "tiny:llama", "OUT": str(tmp_path / "out"),
         "PYTHON": sys.executable, "OMP_NUM_THREADS": "1", **env}
    return subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=e, timeout=600)


def test_dry_run_on_cpu(tmp_path):
    out = run(tmp_path)
    assert out.returncode == 0, out.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    for name in ("train", "sample", "ladder", "mixed"):
        assert f"{name}: exit 0" in summary, summary
    assert "RESULT" in summary and "sequences/s" in summary
    assert "RESULT scoring: separate" in summary and "RESULT sampling: separate" in summary
    mixed = (tmp_path / "out" / "mixed.log").read_text()
    assert mixed.count("identical texts 30 of 30") == 5 and mixed.count("decisions agree") == 5
    phases = json.loads((tmp_path / "out" / "ladder_phases.json").read_text())
    assert {"train", "evaluate"} <= set(phases) and phases["train"]["peak_rss_mb"] > 0


def test_a_failing_step_is_reported_and_the_others_run(tmp_path):
    out = run(tmp_path, MODEL="tiny:nosuch")
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert out.returncode == 0
    assert all(f"{name}: exit " in summary for name in ("train", "sample", "ladder", "mixed"))
    assert "train: exit 0" not in summary and "ladder: exit 0" not in summary
