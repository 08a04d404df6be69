"""The lmeval study: lm-evaluation-harness tasks on every variant through lm-eval's Python API. lm-eval is an
optional extra (`make test` does not install it): without it the study is refused with one line; with it, a
local CrowS-Pairs task on the same pairs gives exactly the built-in study's crows_stereotype_pct."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import yaml

from lorafair.cli import main
from lorafair.studies.lmeval import lm_eval_installed

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    """benchmarks/bench_eval_vs_lmeval.py: its local CrowS-Pairs task (crows_local) and the study's pairs."""
    spec = importlib.util.spec_from_file_location("bench_eval_vs_lmeval", ROOT / "benchmarks" / "bench_eval_vs_lmeval.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(lm_eval_installed(), reason="lm_eval is installed: the refusal is for its absence")
def test_without_lm_eval_the_study_is_refused_with_what_to_install(tmp_path, capsys):
    rec = {"model": {"source": "tiny:llama"}, "variants": {"full": {"enabled": False}, "lora": {"ranks": [2]}},
           "data": {"train": {"source": "bold-wiki", "limit": 8}}, "studies": {"lmeval": {"tasks": ["crows_pairs_english"]}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(rec))
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: studies.lmeval: needs lm-evaluation-harness, which is not installed: "
                   "pip install 'lorafair[lmeval]' (or pip install 'lm-eval>=0.4.5,<0.5')"]
    assert not (tmp_path / "o").exists()


def test_lmeval_local_crows_equals_the_builtin_crows_on_the_same_pairs(tmp_path):
    pytest.importorskip("lm_eval")
    bench = _bench()
    pairs = 24
    tasks = bench.write_crows_task(bench.crows_items(pairs, 0), tmp_path / "tasks")
    rec = {"name": "lmeval", "model": {"source": "tiny:llama"}, "seeds": [0],
           "variants": {"full": {"enabled": True, "lr": 1e-3}, "lora": {"ranks": [2], "lr": 1e-2}},
           "train": {"max_steps": 3, "batch_size": 4, "max_length": 32},
           "data": {"train": {"source": "bold-wiki", "limit": 24}, "holdout": 0.25},
           "studies": {"stereotypes": {"benchmarks": ["crows"], "limit": {"crows": pairs}, "n_boot": 100, "batch_size": 8},
                       "lmeval": {"tasks": ["crows_local"], "include_path": str(tasks), "batch_size": 8, "n_boot": 100}},
           "output": {"report": False}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(rec))
    out = tmp_path / "run"
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(out), "--quiet"]) == 0
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        rows = {(r["variant"], r["metric"], r["group"]): r for r in csv.DictReader(f)}
    for v in ("base", "full", "lora-r2"):
        ours = float(rows[(v, "crows_stereotype_pct", "")]["value"])
        theirs = rows[(v, "crows_local.pct_stereotype", "")]
        print(f"{v}: crows_stereotype_pct {ours:.4f}, lmeval crows_local.pct_stereotype x 100 {100 * float(theirs['value']):.4f}")
        assert 100 * float(theirs["value"]) == pytest.approx(ours, abs=1e-9), v
        assert int(theirs["n"]) == pairs
        assert float(theirs["ci_low"]) <= float(theirs["value"]) <= float(theirs["ci_high"])
    roles = json.loads((out / "metric_roles.json").read_text())["lmeval"]
    assert roles["crows_local.pct_stereotype"]["role"] == "target" and roles["crows_local.pct_stereotype"]["direction"] == "lower"
    assert ("lora-r2", "delta_crows_local.pct_stereotype", "") in rows
    assert ("lora-r2", "capture_crows_local.pct_stereotype", "") in rows


def test_an_unknown_task_is_one_line(tmp_path, capsys):
    pytest.importorskip("lm_eval")
    rec = {"model": {"source": "tiny:llama"}, "variants": {"full": {"enabled": False}, "lora": {"ranks": []}},
           "studies": {"lmeval": {"tasks": ["no_such_task_xyz"], "include_path": str(tmp_path)}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(rec))
    assert main(["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: studies.lmeval.tasks=['no_such_task_xyz']: expected lm-eval task names"), err
