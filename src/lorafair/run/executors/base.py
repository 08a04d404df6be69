"""The executor contract: a registry of engines that run a sweep's jobs, and the one function a job runs.

A **job** (:class:`Job`) is one command line of lorafair's own entry points (``lorafair train … --variant V
--seed S`` or ``lorafair evaluate …``, optionally under ``accelerate launch``) with a log file; the driver
(:mod:`lorafair.run.sweep`) plans them, and an **executor** only runs them: ``submit`` a batch, ``poll`` a
handle (``queued`` / ``running`` / ``done`` / ``failed``), ``cancel`` what is left. Every engine runs the same
worker, :func:`run_job`, a subprocess whose output goes to the job's log, so a job behaves the same on the
local machine, on a Ray cluster and under Slurm. Executors are plug-ins found like the other registries
(:mod:`lorafair.registry`): a module in this package registers one with ``@EXECUTORS.register(name)``. An
engine's library is imported only when its executor is made, and a missing one is refused there, before any
work, with the pip command that installs it (:func:`require`).
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lorafair.errors import UserError
from lorafair.registry import Registry

EXECUTORS: Registry[type] = Registry("executor", "--executor", plugins=("lorafair.run.executors",))

# environment a job takes from the driver (the engine's own — CUDA_VISIBLE_DEVICES, OMP_NUM_THREADS set by
# Ray or Slurm for the job's resources — is kept)
FORWARD_ENV = ("PYTHONPATH", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "XDG_CACHE_HOME")
FORWARD_PREFIX = "LORAFAIR_"


@dataclass
class Job:
    """One unit of a sweep: ``argv`` run once, its output appended to ``log``."""

    key: str  # "train lora-r8 seed 0", "evaluate base seed 1"
    kind: str  # "train" | "evaluate"
    variant: str
    seed: int
    argv: list[str]
    log: Path
    deps: list[str] = field(default_factory=list)  # keys of jobs that must finish first
    env: dict[str, str] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)  # an evaluation job of several variants (eval_group)

    @property
    def names(self) -> list[str]:
        """The variants this job trains or evaluates."""
        return self.variants or [self.variant]


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in FORWARD_ENV or k.startswith(FORWARD_PREFIX)}


def run_job(argv: list[str], log: str, env: dict[str, str]) -> int:
    """The worker every engine runs: ``argv`` as a subprocess, stdout and stderr appended to ``log``; its exit code.

    The job runs in a process group of its own, ended whole (SIGKILL) when the worker is stopped — the
    KeyboardInterrupt of a cancelled Ray task or of a cancelled submitit job — so no process of it (``accelerate
    launch`` starts several) outlives a cancellation and writes afterwards."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, **env)
    with open(log, "ab") as fh:
        fh.write(("$ " + " ".join(argv) + "\n").encode())
        fh.flush()
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=full_env, stdin=subprocess.DEVNULL,
                                start_new_session=os.name == "posix")
        try:
            return proc.wait()
        except BaseException:
            if os.name == "posix":
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
            else:  # pragma: no cover
                proc.kill()
            proc.wait()
            raise


def require(module: str, extra: str, executor: str) -> Any:
    """Import an engine's library or refuse (one ``error:`` line, exit 2) naming the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError("--executor", executor, f"an installed engine: {module} is not installed "
                        f"(pip install 'lorafair[{extra}]')") from None


class Options:
    """``--executor-opt key=value`` pairs, read with a type each; unknown keys are refused (:meth:`check`)."""

    def __init__(self, pairs: dict[str, str], executor: str):
        self.pairs = dict(pairs)
        self.executor = executor
        self.used: set[str] = set()

    def get(self, key: str, default=None, kind=str):
        self.used.add(key)
        if key not in self.pairs:
            return default
        raw = self.pairs[key]
        try:
            if kind is bool:
                if raw.lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(raw)
                return raw.lower() in ("1", "true", "yes")
            value = kind(raw)
        except ValueError:
            raise UserError(f"--executor-opt {key}", raw, f"a {kind.__name__}") from None
        if kind in (int, float) and value < 0:
            raise UserError(f"--executor-opt {key}", raw, "a number >= 0")
        return value

    def check(self) -> None:
        unknown = sorted(set(self.pairs) - self.used)
        if unknown:
            allowed = (f"one of the {self.executor} executor's options: {', '.join(sorted(self.used))}" if self.used
                       else f"no option (the {self.executor} executor takes none)")
            raise UserError(f"--executor-opt {unknown[0]}", self.pairs[unknown[0]], allowed)


def parse_options(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError("--executor-opt", item, "key=value (e.g. num_gpus=1)")
        out[key.strip()] = value.strip()
    return out


class Executor:
    """Base of the engines. ``opts`` are read in ``__init__`` (subclasses call :meth:`read_common` first and
    ``opts.check()`` last); ``folder`` is where the engine keeps its own files (``RUN/jobs/``)."""

    name = ""
    cluster = ""  # the kind of cluster the jobs run on (submitit's local or slurm, a Ray address): a job id is its own
    runs_jobs = True  # False: the local executor runs the experiment in this process instead
    max_parallel = 0  # jobs in flight at once (0: as many as the engine takes)

    def __init__(self, opts: Options, folder: Path):
        self.folder = Path(folder)
        self.read_common(opts)

    def read_common(self, opts: Options) -> None:
        self.max_parallel = opts.get("max_jobs", 0, int)
        self.poll_s = opts.get("poll_s", 1.0, float)
        self.num_gpus = opts.get("num_gpus", 0, float)
        self.num_cpus = opts.get("num_cpus", 1, float)
        self.accelerate_config = opts.get("accelerate_config", None)
        self.num_processes = opts.get("num_processes", 0, int)
        self.main_process_port = opts.get("main_process_port", 0, int)
        self.eval_group = opts.get("eval_group", 1, int)
        self.python = opts.get("python", sys.executable)
        self.on_interrupt = opts.get("on_interrupt", "cancel")
        if self.on_interrupt not in ("cancel", "detach"):
            raise UserError("--executor-opt on_interrupt", self.on_interrupt,
                            "cancel (Ctrl-C or SIGTERM cancels the submitted jobs) or detach (leaves them running)")

    def submit(self, jobs: list[Job]) -> list[Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def poll(self, handle) -> tuple[str, int | None]:  # pragma: no cover - interface
        """(``queued`` | ``running`` | ``done`` | ``failed``, exit code when finished)."""
        raise NotImplementedError

    def cancel(self, handles: list[Any]) -> None:
        pass

    def job_id(self, handle) -> str | None:
        """The engine's id of a submitted job (recorded in ``RUN/jobs/submitted.json``: a re-run re-attaches to it)."""
        return None

    def reattach(self, job_id: str) -> tuple[str, Any]:
        """A job an earlier driver submitted, by its recorded id: ``("running", handle)`` while the engine still
        queues or runs it (the handle is polled and cancelled like a submitted one), ``("ended", None)`` when it
        is over, ``("unknown", why)`` when the engine cannot tell."""
        return "unknown", "this engine cannot look a job up by its id"

    def cancel_hint(self, job_ids: list[str]) -> str:
        """How a user cancels jobs left running (``on_interrupt=detach``)."""
        return ""

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name

    def where(self, name: str | None = None, cluster: str | None = None) -> str:
        """Where jobs ran, as recorded with their ids (this executor's by default): ``slurm (local)``, ``ray (auto)``."""
        name, cluster = name or self.name, self.cluster if cluster is None else cluster
        return f"{name} ({cluster})" if cluster else name
