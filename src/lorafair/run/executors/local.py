"""``--executor local`` (the default): the whole experiment in this process, one piece after another
(:func:`lorafair.run.runner.run_experiment`, unchanged)."""

from __future__ import annotations

from lorafair.run.executors.base import EXECUTORS, Executor, Options


@EXECUTORS.register("local", help="every variant in this process, one after another (the default)")
class LocalExecutor(Executor):
    name = "local"
    runs_jobs = False

    def __init__(self, opts: Options, folder):
        self.folder = folder
        opts.check()  # takes no options
