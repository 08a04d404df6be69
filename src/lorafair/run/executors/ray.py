"""``--executor ray``: each job a Ray task (``pip install 'lorafair[ray]'``).

Options (``--executor-opt key=value``): ``address`` (``auto``: the running cluster this machine belongs
to, or ``ray://host:port`` / ``host:port``; unset: a local instance started for the sweep and stopped after
it), ``local_cpus`` (CPUs of that local instance; default all), ``num_cpus`` / ``num_gpus`` per job (Ray's
resource request: a job waits until a node has them free, and Ray sets ``CUDA_VISIBLE_DEVICES`` for it),
``max_jobs`` (jobs in flight at once), ``on_interrupt`` (``cancel`` only: Ray ends the tasks of a driver that
exits), ``accelerate_config`` / ``num_processes`` (multi-GPU training jobs,
see :mod:`lorafair.run.sweep`), ``python`` (the interpreter the jobs run, default this one).
"""

from __future__ import annotations

from lorafair.errors import UserError
from lorafair.run.executors.base import EXECUTORS, Executor, Job, Options, require, run_job


@EXECUTORS.register("ray", help="each job a Ray task (address=auto, num_gpus=1 …); pip install 'lorafair[ray]'")
class RayExecutor(Executor):
    name = "ray"

    def __init__(self, opts: Options, folder):
        ray = require("ray", "ray", "ray")
        super().__init__(opts, folder)
        address = opts.get("address", None)
        local_cpus = opts.get("local_cpus", 0, int)
        opts.check()
        if self.on_interrupt == "detach":  # before Ray is started
            raise UserError("--executor-opt on_interrupt", "detach", "cancel: Ray ends the tasks of a driver that "
                            "exits, so they cannot be left running (--executor slurm can)")
        self.ray = ray
        self._own = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=local_cpus or None, include_dashboard=False, log_to_driver=False)
                self._own = True
        self._task = ray.remote(run_job)
        self.cluster = address or "local"
        self.instance = address or f"a local Ray instance ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"

    def submit(self, jobs: list[Job]):
        return [self._task.options(num_cpus=self.num_cpus, num_gpus=self.num_gpus, name=j.key, max_retries=0)
                .remote(j.argv, str(j.log), j.env) for j in jobs]

    def poll(self, ref) -> tuple[str, int | None]:
        ready, _ = self.ray.wait([ref], timeout=0)
        if not ready:
            return "pending", None
        try:
            return "finished", int(self.ray.get(ref))
        except Exception:  # the worker itself died (node lost, out of memory): no exit code
            return "finished", None

    def cancel(self, handles) -> None:
        # not force=True, which kills the worker at once: the KeyboardInterrupt that Ray raises in a running task
        # lets run_job end the job's whole process group first; then wait (a little) for that to happen
        for ref in handles:
            try:
                self.ray.cancel(ref)
            except Exception:
                pass
        try:
            self.ray.wait(list(handles), num_returns=len(handles), timeout=10)
        except Exception:
            pass

    def job_id(self, ref) -> str | None:
        return ref.task_id().hex()

    def reattach(self, job_id: str):
        """Nothing to re-attach to: a task's result belongs to the driver that submitted it (Ray does not recover
        from an owner's failure) and Ray ends the workers of a driver's job when the driver exits."""
        return "ended", None

    def close(self) -> None:
        if self._own and self.ray.is_initialized():
            self.ray.shutdown()

    def describe(self) -> str:
        return f"ray on {self.instance}"
