"""``--executor slurm``: each job a Slurm job through ``submitit`` (``pip install 'lorafair[slurm]'``); the
jobs submitted together (those whose dependencies are done) go as one array job.

Options (``--executor-opt key=value``): ``partition``, ``time`` (minutes, or ``H:MM:SS``), ``num_gpus``
(GPUs per job), ``num_cpus`` (CPUs per job), ``mem_gb``, ``account``, ``qos``, ``max_jobs`` (array
parallelism), ``on_interrupt`` (``cancel``: Ctrl-C or SIGTERM cancels the jobs, the default; ``detach``: leaves
them running, and the next driver re-attaches to them), ``accelerate_config`` / ``num_processes`` (multi-GPU
training jobs), ``python`` (the interpreter the jobs run), ``cluster`` (``slurm``; ``local`` runs the jobs as processes of this machine with
submitit's local executor, no scheduler needed; default: Slurm where ``sbatch`` exists, else local).
submitit keeps its own files (batch scripts, pickled calls, Slurm's output) under ``RUN/jobs/submitit/``.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lorafair.errors import UserError
from lorafair.run.executors.base import EXECUTORS, Executor, Job, Options, require, run_job

# Slurm job states of a job that is still queued or running (not finished: it may still write its piece)
SLURM_LIVE = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD",
                        "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "PREEMPTED", "READY"})


@dataclass
class _Adopted:
    """A job of submitit's local executor that an earlier driver started (its controller process is not a child
    of this one, so submitit's ``LocalJob`` cannot poll it)."""

    job: Any
    pid: str


@contextmanager
def _output_to(path: Path):
    """stdout and stderr (the file descriptors, inherited by processes started meanwhile) appended to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def _local_alive(pid: str, folder) -> Optional[bool]:
    """Whether process ``pid`` is a live submitit local job controller of ``folder``; None without /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    try:
        args = (proc / str(int(pid)) / "cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False
    return b"submitit.local._local" in args and str(folder).encode() in args  # a zombie has no command line


def minutes(text: str) -> int:
    """``90`` → 90; ``1:30:00`` → 90; ``2-00:00:00`` → 2880 (Slurm's day-hour form)."""
    days, _, rest = text.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if len(parts) == 1:
        m = parts[0]
    else:
        while len(parts) < 3:
            parts.append(0)
        h, mi, s = parts
        m = h * 60 + mi + (1 if s else 0)
    return m + int(days or 0) * 1440


@EXECUTORS.register("slurm", help="each job a Slurm job via submitit (partition=…, time=…, num_gpus=1); "
                    "pip install 'lorafair[slurm]'")
class SlurmExecutor(Executor):
    name = "slurm"

    def __init__(self, opts: Options, folder):
        submitit = require("submitit", "slurm", "slurm")
        super().__init__(opts, folder)
        time = opts.get("time", "60")
        try:
            timeout = minutes(time)
        except ValueError:
            raise UserError("--executor-opt time", time, "minutes or H:MM:SS (Slurm's --time)") from None
        cluster = opts.get("cluster", None)
        if cluster not in (None, "slurm", "local"):
            raise UserError("--executor-opt cluster", cluster, "slurm or local")
        params = {"timeout_min": timeout, "cpus_per_task": max(1, int(self.num_cpus)), "nodes": 1,
                  "tasks_per_node": 1, "name": "lorafair"}
        if self.num_gpus:
            params["gpus_per_node"] = int(self.num_gpus)
        if (mem := opts.get("mem_gb", 0, float)):
            params["mem_gb"] = mem
        for key in ("partition", "account", "qos"):
            if (value := opts.get(key, None)) is not None:
                params[f"slurm_{key}"] = value
        if self.max_parallel:
            params["slurm_array_parallelism"] = self.max_parallel
        opts.check()
        self.submitit = submitit
        try:
            self.executor = submitit.AutoExecutor(folder=self.folder / "submitit", cluster=cluster)
        except RuntimeError as e:  # cluster=slurm where srun is not found
            raise UserError("--executor-opt cluster", cluster, f"a machine with Slurm's commands (submitit: {e}), "
                            "or cluster=local to run the jobs here") from None
        self.executor.update_parameters(**params)
        self.cluster = self.executor.cluster

    def submit(self, jobs: list[Job]):
        # submitit's local jobs are processes started here that would write to this terminal (a cancelled one
        # prints a KeyboardInterrupt traceback): their output goes to RUN/jobs/submitit/local.log instead
        quiet = _output_to(self.executor.folder / "local.log") if self.cluster == "local" else nullcontext()
        with quiet, self.executor.batch():
            handles = [self.executor.submit(run_job, j.argv, str(j.log), j.env) for j in jobs]
        return handles

    def poll(self, job) -> tuple[str, int | None]:
        if isinstance(job, _Adopted):
            if _local_alive(job.pid, self.executor.folder):
                return "pending", None
            job = job.job
        elif not job.done():
            return "pending", None
        try:
            return "finished", int(job.result())
        except Exception:  # cancelled, timed out, node failure: submitit's own log says why
            return "finished", None

    def cancel(self, handles) -> None:
        for job in handles:
            try:
                if isinstance(job, _Adopted):  # submitit's LocalJob.cancel: SIGINT to the job's controller
                    os.kill(int(job.pid), signal.SIGINT)
                else:
                    job.cancel(check=False)
            except Exception:
                pass

    def job_id(self, job) -> str | None:
        return str(job.job_id)

    def reattach(self, job_id: str):
        """Slurm: the job's state from ``sacct`` (submitit's ``SlurmJob`` made from the id, its result read from
        ``RUN/jobs/submitit/`` when it ends). submitit's local executor: a job is a process of this machine (its
        id is the pid) that submitit cannot look up again, so it is found by its command line in ``/proc``."""
        folder = self.executor.folder
        if self.cluster == "local":
            alive = _local_alive(job_id, folder)
            if alive is None:
                return "unknown", "no /proc on this machine to look the local job's process up"
            return ("running", _Adopted(self.submitit.LocalJob(folder, job_id), job_id)) if alive else ("ended", None)
        if self.cluster != "slurm":
            return "unknown", f"lorafair does not look jobs of submitit's {self.cluster} executor up"
        job = self.submitit.SlurmJob(folder, job_id)
        state = job.watcher.get_state(job_id, mode="force").split()[0].upper()  # "CANCELLED by 123" -> CANCELLED
        if state == "UNKNOWN":
            return "unknown", "sacct does not know it (or cannot be run here)"
        return ("running", job) if state in SLURM_LIVE else ("ended", None)

    def cancel_hint(self, job_ids: list[str]) -> str:
        if self.cluster == "local":
            return f"kill -INT {' '.join(job_ids)}"
        return f"scancel {' '.join(job_ids)}"

    def describe(self) -> str:
        return f"slurm via submitit ({self.cluster})"
