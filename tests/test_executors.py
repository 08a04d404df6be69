"""`lorafair run --executor`: the same recipe on the local runner, on Slurm (submitit's local executor) and on
Ray (a local instance with 2 CPUs) gives byte-identical metrics.csv; a driver killed mid-sweep and re-run
re-submits only the missing jobs; a failed job is reported with its log and the others complete."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
import yaml

from helpers_lf import TINY, deep_update, one_error_line, run_cli_subprocess

RECIPE = deep_update(TINY, {"variants": {"lora": {"ranks": [1, 2]}}, "train": {"max_steps": 2},
                            "data": {"train": {"limit": 16}}, "output": {"report": False}})
# 7 jobs: train full, lora-r1, lora-r2; evaluate base, full, lora-r1, lora-r2
JOBS = 7
ENV = dict(os.environ, OMP_NUM_THREADS="1")
SLURM_LOCAL = ["--executor", "slurm", "--executor-opt", "cluster=local", "--executor-opt", "poll_s=0.3"]


def _planned(err: str) -> tuple[int, int]:
    m = re.search(r"(\d+) job\(s\) to run, (\d+) done already", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def submitit():
    return pytest.importorskip("submitit")  # first in a test's arguments: skipped before the local run is made


@pytest.fixture(scope="module")
def ray():
    return pytest.importorskip("ray")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "r.yaml"
    p.write_text(yaml.safe_dump(RECIPE))
    return p


@pytest.fixture(scope="module")
def local_csv(recipe, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    r = run_cli_subprocess("run", recipe, "--out", out, "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    return (out / "metrics.csv").read_bytes()


def test_slurm_submitit_local_same_metrics_as_local(submitit, recipe, local_csv, tmp_path):
    out = tmp_path / "run"
    # eval_group=2: the two LoRA variants evaluated by one job (one base model loaded for both)
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, "--executor-opt", "max_jobs=2",
                           "--executor-opt", "eval_group=2", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _planned(r.stderr) == (JOBS - 1, 0)
    assert (out / "metrics.csv").read_bytes() == local_csv
    assert "jobs: 6 done, 0 failed" in r.stderr
    for name in ("train-full-s0", "train-lora-r1-s0", "train-lora-r2-s0", "evaluate-base-s0", "evaluate-full-s0",
                 "evaluate-lora-r1..lora-r2-s0"):
        assert (out / "jobs" / f"{name}.log").read_text().startswith("$ "), name
    # an evaluation waits for its trainings and for the full reference
    log = r.stderr
    for train in ("full", "lora-r1", "lora-r2"):
        assert log.index(f"train {train} seed 0: done") < log.index("submitted evaluate lora-r1..lora-r2 seed 0")
    # re-running a finished sweep submits nothing and writes the same tables
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _planned(r.stderr) == (0, JOBS)
    assert (out / "metrics.csv").read_bytes() == local_csv


def test_ray_local_instance_same_metrics_as_local(ray, recipe, local_csv, tmp_path):
    out = tmp_path / "run"
    r = run_cli_subprocess("run", recipe, "--out", out, "--executor", "ray", "--executor-opt", "local_cpus=2",
                           "--executor-opt", "num_cpus=1", "--executor-opt", "poll_s=0.3", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "a local Ray instance (2 CPUs)" in r.stderr
    assert _planned(r.stderr) == (JOBS, 0)
    assert (out / "metrics.csv").read_bytes() == local_csv


def test_killed_driver_rerun_submits_only_missing_jobs(submitit, recipe, local_csv, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "lorafair", "run", str(recipe), "--out", str(out), *SLURM_LOCAL, "--executor-opt", "max_jobs=1"]
    driver = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out / "full-s0" / "train.json"
    t0 = time.time()
    while not first.exists() and driver.poll() is None and time.time() - t0 < 300:
        time.sleep(0.2)
    assert first.exists() and driver.poll() is None, "the driver should still be running after its first job"
    driver.send_signal(signal.SIGKILL)  # no clean-up, no cancel: as a crashed login node
    driver.wait()
    assert not (out / "metrics.csv").exists()
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    todo, done = _planned(r.stderr)
    assert done >= 1 and todo + done == JOBS, r.stderr
    assert "submitted train full seed 0" not in r.stderr  # finished before the kill: not submitted again
    # a job the killed driver left running (submitit's local jobs outlive it) is waited for, not submitted again
    assert len(re.findall(r"^submitted ", r.stderr, re.M)) + r.stderr.count("(not submitted again)") == todo
    assert (out / "metrics.csv").read_bytes() == local_csv


def test_failed_job_reported_with_log_others_complete(submitit, recipe, local_csv, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "lora-r1-s0").write_text("not a folder")  # the lora-r1 training job cannot write its variant
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, "--executor-opt", "max_jobs=2", "--quiet", env=ENV)
    assert r.returncode == 1, r.stderr[-3000:]
    last = r.stderr.strip().splitlines()[-1]
    log = out / "jobs" / "train-lora-r1-s0.log"
    assert last.startswith("error: 1 job(s) failed, 1 skipped: train lora-r1 seed 0 (exit 1, log ") and str(log) in last
    assert "FileExistsError" in log.read_text()
    assert f"train lora-r1 seed 0: failed (exit code 1); log: {log}" in r.stderr
    assert "evaluate lora-r1 seed 0: skipped" in r.stderr
    # the other jobs finished, and their rows are in metrics.csv
    rows = (out / "metrics.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in rows[1:]} == {"base", "full", "lora-r2"}
    # the cause fixed, the same command submits the two missing jobs only, and the tables equal the local run's
    (out / "lora-r1-s0").unlink()
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _planned(r.stderr) == (2, JOBS - 2)
    assert (out / "metrics.csv").read_bytes() == local_csv


# ---------------------------------------------------------------------------------------- bad input

def test_engine_not_installed_refused_before_any_work(recipe, tmp_path, monkeypatch, capsys):
    from lorafair.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "ray"])
    line = one_error_line(code, capsys.readouterr().err)
    assert line == "error: --executor='ray': expected an installed engine: ray is not installed (pip install 'lorafair[ray]')"
    assert not (tmp_path / "run").exists()
    monkeypatch.setitem(sys.modules, "submitit", None)
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "slurm"])
    assert "(pip install 'lorafair[slurm]')" in one_error_line(code, capsys.readouterr().err)


@pytest.mark.parametrize("args, expected", [
    (["--executor", "k8s"], "error: --executor='k8s': expected one of local, ray, slurm"),
    (["--executor", "local", "--executor-opt", "num_gpus=1"],
     "error: --executor-opt num_gpus='1': expected no option (the local executor takes none)"),
    (["--executor-opt", "num_gpus"], "error: --executor-opt='num_gpus': expected key=value (e.g. num_gpus=1)"),
])
def test_bad_executor_arguments(recipe, tmp_path, capsys, args, expected):
    from lorafair.cli import main

    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), *args])
    assert one_error_line(code, capsys.readouterr().err).startswith(expected)
    assert not (tmp_path / "run").exists()


def test_slurm_options_checked_and_passed(submitit, tmp_path, capsys):
    from lorafair.run.executors.base import Options
    from lorafair.run.executors.slurm import SlurmExecutor, minutes

    assert (minutes("90"), minutes("1:30:00"), minutes("2-00:00:00"), minutes("0:10")) == (90, 90, 2880, 10)
    ex = SlurmExecutor(Options({"cluster": "local", "time": "1:30:00", "num_cpus": "2", "mem_gb": "8"}, "slurm"), tmp_path)
    assert ex.executor.parameters["timeout_min"] == 90
    from lorafair.errors import UserError

    with pytest.raises(UserError, match=r"--executor-opt time='soon': expected minutes or H:MM:SS"):
        SlurmExecutor(Options({"cluster": "local", "time": "soon"}, "slurm"), tmp_path)
    with pytest.raises(UserError, match=r"--executor-opt partiton='gpu': expected one of the slurm executor's options"):
        SlurmExecutor(Options({"cluster": "local", "partiton": "gpu"}, "slurm"), tmp_path)


def test_accelerate_config_job_command(recipe, tmp_path):
    """``accelerate_config`` runs each training job (not the evaluations) under ``accelerate launch``."""
    from lorafair.accelerate_configs import FOLDER, config_path, names
    from lorafair.config.load import load_config
    from lorafair.errors import UserError
    from lorafair.run.executors.base import Executor, Options
    from lorafair.run.sweep import Sweep

    assert names() == ["ddp", "fsdp", "zero2", "zero3"]
    for name in names():  # every shipped config is one accelerate reads
        from accelerate.commands.config.config_args import load_config_from_file

        cfg = load_config_from_file(str(FOLDER / f"{name}.yaml"))
        assert cfg.distributed_type.value in ("MULTI_GPU", "FSDP", "DEEPSPEED"), name
    opts = Options({"accelerate_config": "fsdp", "num_gpus": "4", "eval_group": "8"}, "x")
    sweep = Sweep(load_config(str(recipe)), tmp_path / "run", Executor(opts, tmp_path), quiet=True)
    jobs, done = sweep.plan()
    assert done == 0 and len(jobs) == JOBS - 1  # lora-r1 and lora-r2 evaluated by one job
    train = next(j for j in jobs if j.key == "train lora-r1 seed 0")
    assert train.argv[1:6] == ["-m", "accelerate.commands.launch", "--config_file", str(config_path("fsdp")), "--num_processes"]
    assert train.argv[6:11] == ["4", "-m", "lorafair", "train", str((tmp_path / "run" / "config.yaml").absolute())]
    ev = next(j for j in jobs if j.key == "evaluate lora-r1..lora-r2 seed 0")
    assert ev.argv[1:9] == ["-m", "lorafair", "evaluate", str((tmp_path / "run" / "config.yaml").absolute()),
                            "--variant", "lora-r1", "--variant", "lora-r2"]
    assert sorted(ev.deps) == ["train full seed 0", "train lora-r1 seed 0", "train lora-r2 seed 0"]
    with pytest.raises(UserError, match="expected one of ddp, fsdp, zero2, zero3 or an accelerate config file"):
        config_path("zero4")


def test_multi_process_training_job_under_accelerate_ddp(submitit, tmp_path):
    """``accelerate_config=ddp`` with 2 CPU processes: the training job runs under ``accelerate launch``
    (world size 2 in train.json), its evaluation in one process, the tables are written."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(deep_update(RECIPE, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}})))
    out = tmp_path / "run"
    r = run_cli_subprocess("run", recipe, "--out", out, *SLURM_LOCAL, "--executor-opt", "accelerate_config=ddp",
                           "--executor-opt", "num_processes=2", "--executor-opt", "main_process_port=29579", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _planned(r.stderr) == (3, 0)
    import json

    assert json.loads((out / "lora-r1-s0" / "train.json").read_text())["world_size"] == 2
    assert " -m accelerate.commands.launch --config_file " in (out / "jobs" / "train-lora-r1-s0.log").read_text()
    assert "accelerate" not in (out / "jobs" / "evaluate-lora-r1-s0.log").read_text().splitlines()[0]
    assert (out / "lora-r1-s0" / "results" / "heldout.json").is_file() and (out / "metrics.csv").is_file()
