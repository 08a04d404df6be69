"""`lorafair run --executor slurm|ray`: a driver stopped by Ctrl-C / SIGTERM cancels its jobs (or, with
``on_interrupt=detach``, leaves them running), the next driver re-attaches to jobs still running instead of
submitting them twice, and LoRA ranks the model cannot take are refused before any job is submitted.

The engine is submitit's local executor (no cluster); a job is held while it runs by the interpreter the jobs are
started with (``--executor-opt python=``: a shell script that waits while a file names the job), so the test
stops the driver at a known point."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
import yaml

from helpers_lf import TINY, deep_update, one_error_line, run_cli_subprocess

# 3 jobs: train lora-r1 (builds the seed's data first), then evaluate base and evaluate lora-r1
RECIPE = deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}, "train": {"max_steps": 1},
                            "data": {"train": {"limit": 16}}, "output": {"report": False}})
ENV = dict(os.environ, OMP_NUM_THREADS="1")
HELD = "evaluate .*--variant lora-r1 "  # the job the hold script holds (a grep -E pattern on its command line)


def _planned(err: str) -> tuple[int, int]:
    m = re.search(r"(\d+) job\(s\) to run, (\d+) done already", err)
    assert m, err
    return int(m.group(1)), int(m.group(2))


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed job's process may wait to be reaped)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _wait(cond, what: str, timeout: float = 120):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def submitit():
    return pytest.importorskip("submitit")


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    p = tmp_path_factory.mktemp("recipe") / "r.yaml"
    p.write_text(yaml.safe_dump(RECIPE))
    return p


@pytest.fixture
def hold(tmp_path):
    """The jobs' interpreter: a job whose command line matches HOLD writes its pid to ``pid``, starts a child
    process of its own (pid in ``child``: a job's processes, as ``accelerate launch`` starts them), and waits
    while HOLD exists."""
    d = tmp_path / "hold"
    d.mkdir()
    script = d / "python"
    script.write_text(f"""#!/bin/sh
if [ -e "{d}/HOLD" ] && echo "$*" | grep -Eq -- "$(cat "{d}/HOLD")"; then
  sleep 600 &
  echo $! > "{d}/child"
  echo $$ > "{d}/pid"
  while [ -e "{d}/HOLD" ]; do sleep 0.1; done
  kill $!
fi
exec {sys.executable} "$@"
""")
    script.chmod(0o755)
    (d / "HOLD").write_text(HELD)
    yield d
    (d / "HOLD").unlink(missing_ok=True)  # a test that failed midway leaves no job held
    for name in ("pid", "child"):
        if (d / name).exists() and _alive(pid := int((d / name).read_text())):
            os.kill(pid, signal.SIGKILL)


def _driver(recipe, out, hold, *opts, engine=("slurm", "cluster=local")):
    cmd = [sys.executable, "-m", "lorafair", "run", str(recipe), "--out", str(out), "--executor", engine[0],
           "--executor-opt", engine[1], "--executor-opt", "poll_s=0.2", "--executor-opt", f"python={hold / 'python'}"]
    for o in opts:
        cmd += ["--executor-opt", o]
    err = open(out.parent / f"driver-{time.time_ns()}.err", "w+")
    return subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=err, text=True), err


def _stderr(err) -> str:
    err.flush()
    return Path(err.name).read_text()


def test_interrupt_cancels_or_detaches_and_rerun_reattaches(submitit, recipe, hold, tmp_path):
    out = tmp_path / "run"
    local = tmp_path / "local"
    r = run_cli_subprocess("run", recipe, "--out", local, "--quiet", env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]

    # 1. SIGTERM while `evaluate lora-r1` runs (held) and the two other jobs are done: it is cancelled
    driver, err = _driver(recipe, out, hold)
    _wait(lambda: (hold / "pid").exists() and "evaluate base seed 0: done" in _stderr(err), "the held job")
    held = int((hold / "pid").read_text())
    recorded = json.loads((out / "jobs" / "submitted.json").read_text())["jobs"]
    assert list(recorded) == ["evaluate lora-r1 seed 0"]
    assert (recorded["evaluate lora-r1 seed 0"]["engine"], recorded["evaluate lora-r1 seed 0"]["cluster"]) == ("slurm", "local")
    job_id = recorded["evaluate lora-r1 seed 0"]["id"]
    driver.send_signal(signal.SIGTERM)
    assert driver.wait(60) == 143
    text = _stderr(err)
    assert "Traceback" not in text, text
    last = text.strip().splitlines()[-1]
    assert last == (f"error: interrupted by SIGTERM: cancelled 1 job(s): evaluate lora-r1 seed 0 (job {job_id}); the "
                    "finished pieces are kept: run the same command again to resume (only the missing jobs are submitted)")
    child = int((hold / "child").read_text())
    _wait(lambda: not any(map(_alive, (held, child, int(job_id)))), "the cancelled job's processes to end", 30)
    assert not (out / "jobs" / "submitted.json").exists()  # nothing left running to re-attach to
    assert not (out / "lora-r1-s0" / "results" / "heldout.json").exists()

    # 2. the same command with on_interrupt=detach: the missing job only is submitted; Ctrl-C leaves it running
    (hold / "pid").unlink()
    driver, err = _driver(recipe, out, hold, "on_interrupt=detach")
    _wait(lambda: (hold / "pid").exists(), "the held job")
    held = int((hold / "pid").read_text())
    assert _planned(_stderr(err)) == (1, 2)
    driver.send_signal(signal.SIGINT)
    assert driver.wait(60) == 130
    text = _stderr(err)
    job_id = json.loads((out / "jobs" / "submitted.json").read_text())["jobs"]["evaluate lora-r1 seed 0"]["id"]
    assert "Traceback" not in text, text
    assert text.strip().splitlines()[-1] == (
        f"error: interrupted by Ctrl-C: left 1 job(s) running as on_interrupt=detach asks: evaluate lora-r1 seed 0 "
        f"(job {job_id}); run the same command again to wait for them and submit the rest (to stop them: kill -INT {job_id})")
    time.sleep(1)
    assert _alive(held) and _alive(int(job_id))

    # 3. the same command: waits for the job left running instead of submitting it again, then writes the tables
    driver, err = _driver(recipe, out, hold)
    _wait(lambda: "still queued or running" in _stderr(err), "the driver to re-attach", 60)
    (hold / "HOLD").unlink()  # the held job goes on
    assert driver.wait(120) == 0, _stderr(err)[-3000:]
    text = _stderr(err)
    assert (f"evaluate lora-r1 seed 0: job {job_id}, submitted by an earlier driver, is still queued or running: "
            "waiting for it (not submitted again)") in text
    assert "1 job(s) to run, 2 done already, 1 of an earlier driver re-attached" in text
    assert not re.search(r"^submitted ", text, re.M), text
    assert "evaluate lora-r1 seed 0: done" in text
    assert not (out / "jobs" / "submitted.json").exists()
    assert (out / "metrics.csv").read_bytes() == (local / "metrics.csv").read_bytes()


def test_ray_interrupt_cancels_the_running_task_and_its_processes(recipe, hold, tmp_path):
    """Ctrl-C with Ray (a local instance): the running task is cancelled and the job's processes end with it."""
    pytest.importorskip("ray")
    out = tmp_path / "run"
    (hold / "HOLD").write_text("train .*--variant lora-r1 ")
    driver, err = _driver(recipe, out, hold, "num_cpus=1", engine=("ray", "local_cpus=2"))
    _wait(lambda: (hold / "pid").exists(), "the held job", 180)
    held = int((hold / "pid").read_text())
    driver.send_signal(signal.SIGINT)
    assert driver.wait(120) == 130
    text = _stderr(err)
    last = text.strip().splitlines()[-1]
    assert re.fullmatch(r"error: interrupted by Ctrl-C: cancelled 1 job\(s\): train lora-r1 seed 0 \(job [0-9a-f]+\); "
                        r"2 job\(s\) not submitted; the finished pieces are kept: run the same command again to resume "
                        r"\(only the missing jobs are submitted\)", last), text
    child = int((hold / "child").read_text())
    _wait(lambda: not _alive(held) and not _alive(child), "the cancelled job's processes to end", 30)
    assert not (out / "jobs" / "submitted.json").exists() and not (out / "lora-r1-s0" / "train.json").exists()


def test_unknown_job_state_warns_with_its_id_and_submits_again(submitit, recipe, tmp_path, monkeypatch, caplog):
    """A recorded job the engine cannot tell about (sacct does not know it): a warning with its id and the command
    that cancels it, and the job is submitted again; a job the engine says ended is submitted again quietly."""
    from lorafair.config.load import load_config
    from lorafair.run.executors.base import Options
    from lorafair.run.executors.slurm import SlurmExecutor
    from lorafair.run.sweep import Sweep, _State

    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, body in {"srun": "exit 0", "sacct": 'echo "JobID|State|NodeList"; echo "77_0|RUNNING|n1"; '
                                                  'echo "77_1|CANCELLED by 0|n1"; echo "78|PENDING|"'}.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_}:{os.environ['PATH']}")
    out = tmp_path / "run"
    ex = SlurmExecutor(Options({"cluster": "slurm"}, "slurm"), out / "jobs")
    assert [ex.reattach(i)[0] for i in ("77_0", "77_1", "78", "99")] == ["running", "ended", "running", "unknown"]

    sweep = Sweep(load_config(str(recipe)), out, ex, quiet=True)
    jobs, _ = sweep.plan()
    states = [_State(j) for j in jobs]
    ids = {"train lora-r1 seed 0": "99", "evaluate base seed 0": "77_1", "evaluate lora-r1 seed 0": "77_0"}
    (out / "jobs").mkdir(parents=True, exist_ok=True)
    (out / "jobs" / "submitted.json").write_text(json.dumps({"jobs": {k: {"engine": "slurm", "id": v} for k, v in ids.items()}}))
    notes = dict((msg.split(":")[0], (level, msg)) for level, msg in sweep._reattach(states))
    import logging

    assert notes["train lora-r1 seed 0"] == (logging.WARNING, (
        "train lora-r1 seed 0: job 99, submitted by an earlier driver, may still be running (sacct does not know it (or "
        "cannot be run here)); submitting it again. If it is, cancel it: scancel 99"))
    assert notes["evaluate base seed 0"][0] == logging.INFO and "ended without its result" in notes["evaluate base seed 0"][1]
    by_key = {s.job.key: s for s in states}
    assert by_key["train lora-r1 seed 0"].status == "waiting" and by_key["evaluate base seed 0"].status == "waiting"
    s = by_key["evaluate lora-r1 seed 0"]
    assert s.status == "queued" and s.job_id == "77_0" and s.handle.job_id == "77_0" and ex.poll(s.handle) == ("pending", None)


def test_jobs_of_another_executor_or_cluster_are_not_reattached(submitit, recipe, tmp_path):
    """submitted.json records where each job runs: a driver with another executor or cluster (here submitit's local
    executor, the record's job on Slurm or Ray) does not take a recorded id for one of its own jobs (the id is a
    live local job's pid all the same) — one warning names them and they are submitted again —; a record written
    before the cluster was recorded is taken as this cluster's and re-attached."""
    import logging

    from lorafair.config.load import load_config
    from lorafair.run.executors.base import Options
    from lorafair.run.executors.slurm import SlurmExecutor
    from lorafair.run.sweep import Sweep, _State

    out = tmp_path / "run"
    ex = SlurmExecutor(Options({"cluster": "local"}, "slurm"), out / "jobs")
    # a live process that looks like a job controller of submitit's local executor for this run: its pid is the id
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit.local._local",
                             str(ex.executor.folder)])
    try:
        pid = str(proc.pid)
        _wait(lambda: ex.reattach(pid)[0] == "running", "the stand-in job controller to start", 30)
        sweep = Sweep(load_config(str(recipe)), out, ex, quiet=True)
        states = [_State(j) for j in sweep.plan()[0]]
        (out / "jobs").mkdir(parents=True, exist_ok=True)
        (out / "jobs" / "submitted.json").write_text(json.dumps({"jobs": {
            "train lora-r1 seed 0": {"engine": "slurm", "cluster": "slurm", "id": pid},
            "evaluate base seed 0": {"engine": "ray", "cluster": "local", "id": "ab12"},
            "evaluate lora-r1 seed 0": {"engine": "slurm", "id": pid},  # an older driver's record: no cluster
        }}))
        assert sweep._reattach(states) == [
            (logging.INFO, f"evaluate lora-r1 seed 0: job {pid}, submitted by an earlier driver, is still queued or "
                           "running: waiting for it (not submitted again)"),
            (logging.WARNING, "2 job(s) an earlier driver submitted on another executor or cluster than this one "
                              f"(slurm (local)) are not re-attached: train lora-r1 seed 0 (job {pid} on slurm (slurm)), "
                              "evaluate base seed 0 (job ab12 on ray (local)); submitting them again here. If they "
                              "still run there, cancel them there")]
        by_key = {s.job.key: s for s in states}
        for key in ("train lora-r1 seed 0", "evaluate base seed 0"):
            assert by_key[key].status == "waiting" and by_key[key].handle is None
        s = by_key["evaluate lora-r1 seed 0"]
        assert s.status == "queued" and s.job_id == pid and ex.poll(s.handle) == ("pending", None)
        sweep._write_submitted(states)  # the re-attached job is recorded again, now with where it runs
        recorded = json.loads((out / "jobs" / "submitted.json").read_text())["jobs"]
        assert {k: (r["engine"], r["cluster"], r["id"]) for k, r in recorded.items()} == {
            "evaluate lora-r1 seed 0": ("slurm", "local", pid)}
    finally:
        proc.kill()
        proc.wait()


def test_ray_records_where_its_tasks_run(tmp_path, monkeypatch):
    """Ray's cluster kind, recorded with each task's id: the address it connects to, or ``local`` for the instance
    the sweep starts (a stand-in ray module: no Ray is started)."""
    from lorafair.run.executors.base import Options
    from lorafair.run.executors.ray import RayExecutor

    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: False
    fake.init = lambda **kw: None
    fake.remote = lambda f: f
    fake.cluster_resources = lambda: {"CPU": 2.0}
    monkeypatch.setitem(sys.modules, "ray", fake)
    own = RayExecutor(Options({}, "ray"), tmp_path)
    assert (own.cluster, own.where(), own.describe()) == ("local", "ray (local)", "ray on a local Ray instance (2 CPUs)")
    assert RayExecutor(Options({"address": "auto"}, "ray"), tmp_path).where() == "ray (auto)"


@pytest.fixture(scope="module")
def finished(recipe, tmp_path_factory):
    """A run directory whose every piece is finished (a local run): a driver started on it submits no job."""
    from lorafair.cli import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["run", str(recipe), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "Ctrl-C")])
def test_signal_while_the_tables_are_written_exits_with_its_code(submitit, recipe, finished, tmp_path, monkeypatch,
                                                                 capsys, sig, code, name):
    """Every job done, the driver writing metrics.csv and the report: SIGTERM ends it with 143 (Ctrl-C: 130) and
    one line, and the same command then writes the tables without submitting anything."""
    import shutil

    from lorafair.cli import main
    from lorafair.run.runner import Runner

    out = tmp_path / "run"
    shutil.copytree(finished, out)
    metrics = (out / "metrics.csv").read_bytes()
    (out / "metrics.csv").unlink()
    write_tables = Runner.write_tables
    calls = []

    def signalled(self):
        calls.append(1)
        os.kill(os.getpid(), sig)  # the driver's handler raises before the tables are written
        return write_tables(self)

    monkeypatch.setattr(Runner, "write_tables", signalled)
    argv = ["run", str(recipe), "--out", str(out), "--quiet", "--executor", "slurm", "--executor-opt", "cluster=local"]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        f"error: interrupted by {name}: every job had finished; the tables or the report may be missing or stale: run "
        "the same command again to write them (no job is submitted)")
    assert calls == [1] and not (out / "metrics.csv").exists() and not (out / "jobs" / "submitted.json").exists()
    monkeypatch.setattr(Runner, "write_tables", write_tables)
    assert main(argv) == 0  # the lock was released
    assert (out / "metrics.csv").read_bytes() == metrics


def test_a_signal_outside_the_drivers_phases_exits_with_its_code(recipe, tmp_path, monkeypatch, capsys):
    """A SIGTERM the driver turned into a KeyboardInterrupt that reaches the command line itself (e.g. while the
    engine is shut down) still exits 143, not Ctrl-C's 130."""
    import lorafair.run.sweep as sweep
    from lorafair.cli import main

    def stopped(*a, **k):
        raise sweep.Stop(signal.SIGTERM)

    monkeypatch.setattr(sweep, "run_sweep", stopped)
    assert main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "slurm"]) == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted by SIGTERM"


# ---------------------------------------------------------------------------------------- bad input

def test_ranks_refused_before_any_job_is_submitted(submitit, recipe, tmp_path, capsys):
    from lorafair.cli import main

    out = tmp_path / "run"
    code = main(["run", str(recipe), "--out", str(out), "--executor", "slurm", "--executor-opt", "cluster=local",
                 "--set", "variants.lora.ranks=[1,65]"])
    line = one_error_line(code, capsys.readouterr().err)
    # the local runner's message (checked there after loading the model), here from the model's config alone
    assert line == ("error: variants.lora.ranks=[1, 65]: expected ranks the model can take: rank 65 exceeds module "
                    "model.layers.0.self_attn.k_proj (shape (32, 64), smaller dimension 32); allowed ranks are 1..32")
    assert not out.exists()
    code = main(["run", str(recipe), "--out", str(out), "--executor", "slurm", "--executor-opt", "cluster=local",
                 "--set", "variants.lora.target_modules=[q_prj]"])
    assert "'q_prj' matches no module" in one_error_line(code, capsys.readouterr().err)
    assert not out.exists()


def test_ranks_checked_on_a_local_folder_without_loading_weights(submitit, recipe, tmp_path, capsys):
    """hf:<folder>: the driver reads config.json only (this folder has no weights: a job loading them would fail)."""
    from lorafair.cli import main
    from lorafair.models.tiny import tiny_config

    folder = tmp_path / "model"
    tiny_config("llama")[0].save_pretrained(folder)
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "slurm", "--executor-opt",
                 "cluster=local", "--set", f"model.source=hf:{folder}", "--set", "variants.lora.ranks=[40]"])
    assert "rank 40 exceeds module" in one_error_line(code, capsys.readouterr().err)


def test_model_skeleton_has_the_loaded_models_modules_and_shapes(monkeypatch):
    from lorafair.models.sources import load_model, model_skeleton

    for source in ("tiny:llama", "tiny:gpt2"):
        model, _ = load_model(source)
        skeleton = model_skeleton(source)
        assert {n: tuple(p.shape) for n, p in skeleton.named_parameters()} == {n: tuple(p.shape) for n, p in model.named_parameters()}
        assert all(p.device.type == "meta" for p in skeleton.parameters())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id that is not cached: the jobs check it
    assert model_skeleton("hf:no-such-org/no-such-model-lorafair") is None


def test_bad_on_interrupt(submitit, recipe, tmp_path, capsys):
    from lorafair.cli import main

    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "slurm", "--executor-opt", "cluster=local",
                 "--executor-opt", "on_interrupt=ignore"])
    assert one_error_line(code, capsys.readouterr().err) == (
        "error: --executor-opt on_interrupt='ignore': expected cancel (Ctrl-C or SIGTERM cancels the submitted jobs) or "
        "detach (leaves them running)")
    assert not (tmp_path / "run").exists()


def test_ray_refuses_detach_before_starting_ray(recipe, tmp_path, capsys, monkeypatch):
    """Ray ends the tasks of a driver that exits: on_interrupt=detach is refused, before ray.init."""
    from lorafair.cli import main

    fake = types.ModuleType("ray")
    fake.is_initialized = lambda: pytest.fail("ray must not be started")
    monkeypatch.setitem(sys.modules, "ray", fake)
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "ray", "--executor-opt", "on_interrupt=detach"])
    assert one_error_line(code, capsys.readouterr().err) == (
        "error: --executor-opt on_interrupt='detach': expected cancel: Ray ends the tasks of a driver that exits, so they "
        "cannot be left running (--executor slurm can)")
    assert not (tmp_path / "run").exists()


def test_slurm_cluster_without_slurm_refused(submitit, recipe, tmp_path, capsys, monkeypatch):
    from lorafair.cli import main

    monkeypatch.setenv("PATH", str(tmp_path))  # no srun
    code = main(["run", str(recipe), "--out", str(tmp_path / "run"), "--executor", "slurm", "--executor-opt", "cluster=slurm"])
    line = one_error_line(code, capsys.readouterr().err)
    assert line.startswith("error: --executor-opt cluster='slurm': expected a machine with Slurm's commands") and "cluster=local" in line


def test_driver_does_not_need_the_jobs_device(recipe, tmp_path):
    """model.device is where the jobs compute: a driver on a machine without it (a login node) checks the model
    and plans the jobs all the same."""
    import torch

    from lorafair.config.load import load_config
    from lorafair.errors import UserError
    from lorafair.run.executors.base import Executor, Options
    from lorafair.run.runner import Runner
    from lorafair.run.sweep import Sweep, check_model

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = load_config(str(recipe), ["model.device=cuda"])
    with pytest.raises(UserError, match="no CUDA here"):
        Runner(cfg, tmp_path / "run")  # the local runner needs it
    assert check_model(cfg, tmp_path / "run")
    jobs, done = Sweep(cfg, tmp_path / "run", Executor(Options({}, "x"), tmp_path), quiet=True).plan()
    assert (len(jobs), done) == (3, 0)


def test_external_checkpoint_missing_a_tensor_refused_before_any_job(recipe, tmp_path, capsys):
    """The driver's check runs on the model built on the meta device, where every tensor's data_ptr() is 0: tied
    weights must be told apart by the parameter itself, or any missing tensor would pass as "tied" to another."""
    from safetensors.torch import load_file, save_file

    from lorafair.cli import main
    from lorafair.config.load import load_config
    from lorafair.models.tiny import build_tiny
    from lorafair.run.sweep import check_model

    folder = tmp_path / "ckpt"
    build_tiny("llama")[0].save_pretrained(folder, safe_serialization=True)  # lm_head tied to embed_tokens: not saved
    r = tmp_path / "r.yaml"
    r.write_text(yaml.safe_dump(deep_update(RECIPE, {"variants": {"external": [{"name": "mine", "source": f"hf:{folder}"}]}})))
    assert check_model(load_config(str(r)), tmp_path / "ok")  # the whole checkpoint fits (its tied lm_head left out)
    weights = folder / "model.safetensors"
    tensors = load_file(weights)
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, weights, metadata={"format": "pt"})
    capsys.readouterr()  # save_pretrained's progress bar
    out = tmp_path / "run"
    code = main(["run", str(r), "--out", str(out), "--executor", "slurm", "--executor-opt", "cluster=local"])
    line = one_error_line(code, capsys.readouterr().err)
    assert line == (f"error: variants.external[0].source='hf:{folder}': expected a checkpoint of the base model tiny:llama "
                    "(it has no tensor model.layers.1.mlp.down_proj.weight, which the base model has)"), line
    assert not out.exists()
