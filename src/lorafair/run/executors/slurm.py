"""``--executor slurm``: each job a Slurm job through ``submitit`` (``pip install 'lorafair[slurm]'``); the
jobs submitted together (those whose dependencies are done) go as one array job.

Options (``--executor-opt key=value``): ``partition``, ``time`` (minutes, or ``H:MM:SS``), ``num_gpus``
(GPUs per job), ``num_cpus`` (CPUs per job), ``mem_gb``, ``account``, ``qos``, ``max_jobs`` (array
parallelism), ``accelerate_config`` / ``num_processes`` (multi-GPU training jobs), ``python`` (the
interpreter the jobs run), ``cluster`` (``slurm``; ``local`` runs the jobs as processes of this machine with
submitit's local executor, no scheduler needed; default: Slurm where ``sbatch`` exists, else local).
submitit keeps its own files (batch scripts, pickled calls, Slurm's output) under ``RUN/jobs/submitit/``.
"""

from __future__ import annotations

from lorafair.errors import UserError
from lorafair.run.executors.base import EXECUTORS, Executor, Job, Options, require, run_job


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
        self.executor = submitit.AutoExecutor(folder=self.folder / "submitit", cluster=cluster)
        self.executor.update_parameters(**params)
        self.cluster = self.executor.cluster

    def submit(self, jobs: list[Job]):
        with self.executor.batch():
            handles = [self.executor.submit(run_job, j.argv, str(j.log), j.env) for j in jobs]
        return handles

    def poll(self, job) -> tuple[str, int | None]:
        if not job.done():
            return "pending", None
        try:
            return "finished", int(job.result())
        except Exception:  # cancelled, timed out, node failure: submitit's own log says why
            return "finished", None

    def cancel(self, handles) -> None:
        for job in handles:
            try:
                job.cancel(check=False)
            except Exception:
                pass

    def describe(self) -> str:
        return f"slurm via submitit ({self.cluster})"
