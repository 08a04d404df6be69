"""The sweep driver of ``lorafair run --executor ray|slurm``: a run's variants as jobs on an existing engine.

The driver does no training and loads no model. It

1. checks the run directory and takes its lock (:class:`lorafair.run.rundir.RunLock`), removes the leftovers of
   interrupted writes, writes ``config.yaml`` — exactly as the local runner does;
2. plans the jobs: one **training** job per trainable variant × seed (``lorafair train RUN/config.yaml
   --variant V --seed S``; a variant's learning-rate grid is tried inside its job, as in a local run, because
   the grid keeps the lr with the lowest held-out loss) and one **evaluation** job per variant × seed
   (``lorafair evaluate …``: every study on that variant; ``eval_group=N``: up to N LoRA-family variants of a
   seed in one job, which loads the base model once for them). A job whose piece is finished — its ``train.json``
   or every ``results/<study>.json`` carries this config's fingerprint (:meth:`Runner.trained`,
   :meth:`Runner.studies_todo`) — is not submitted, so re-running the same command after the driver or some
   jobs died re-submits only what is missing;
3. submits each job once its dependencies are done (an evaluation waits for its variant's training and for
   the ``full`` reference; when the start stage or a seed's data are not built yet, the first job builds them
   alone before the others start), shows progress (queued / running / done / failed, ETA), and reports a
   failed job with its log (``RUN/jobs/<job>.log``) while the others go on;
4. writes metrics.csv, summary.md, run_info.json and the report from the run directory, as the local runner's
   last phase does (:meth:`Runner.finalize_studies`, :meth:`Runner.paired`, :meth:`Runner.write_tables`).

**The lock.** The driver holds ``RUN/.lock`` from start to end, so no second ``lorafair run`` (local or not)
works in the directory at the same time. Its jobs do not take it: ``lorafair train`` and ``lorafair evaluate``
never lock (``prepare_dir(lock=False)``) and never remove temporary files, they only write their own pieces,
each atomically (temporary name, fsync, rename) under a name no other job writes (``<variant>-s<seed>/``), and
the files that several jobs may write (``data/`` of a seed, ``config.yaml``) hold the same bytes whoever writes
them. Leftovers are removed only by the driver, at its start, before any job of its own runs, and not while
jobs of an earlier driver are still running.

**Stopping, and starting again.** Ctrl-C or SIGTERM cancels the jobs in flight (``on_interrupt=detach``: leaves
them running) and ends with one line (:class:`Interrupted`, exit 130 / 143). The engine's id of every job in
flight is kept in ``RUN/jobs/submitted.json`` with the executor and cluster that run it (atomically, after each
submission and each finished job), so a driver started again — after ``detach``, or after one killed with
SIGKILL, whose Slurm jobs outlive it — looks each missing piece's recorded job up on the engine
(:meth:`Executor.reattach`) and waits for one still queued or running instead of submitting it twice; one the
engine cannot tell about is submitted again with a warning naming its id (a piece written twice holds the same
bytes). A job recorded by another executor or cluster (a re-run with another ``cluster=``) is not looked up, its
id meaning nothing here: one warning names those jobs and where they ran, and they are submitted again. A signal
that arrives after every job finished, while the tables and report are written, ends the driver the same way.

**Checked first.** The ranks and target modules the local runner checks after loading the model are checked on
the model built from its config on the meta device (:func:`check_model`), before any engine starts.

**Multi-GPU jobs.** ``--executor-opt accelerate_config=ddp|fsdp|zero2|zero3|FILE`` runs each training job
under ``accelerate launch --config_file … --num_processes N`` (N: ``num_processes``, default ``num_gpus``),
with the configs shipped in :mod:`lorafair.accelerate_configs`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
import yaml

from lorafair.atomic import atomic_write_json, read_json
from lorafair.config.load import dump_config
from lorafair.config.schema import RunConfig
from lorafair.errors import UserError, signal_exit_code, signal_name
from lorafair.run.executors.base import EXECUTORS, Executor, Job, Options, forwarded_env
from lorafair.run.info import run_info
from lorafair.run.layout import variant_folder
from lorafair.run.rundir import check_out_dir
from lorafair.run.runner import Runner, run_experiment


@dataclass
class _State:
    job: Job
    status: str = "waiting"  # waiting | queued | running | done | failed | skipped
    handle: Any = None
    submitted: float = 0.0
    started: float = 0.0
    finished: float = 0.0
    exit_code: Optional[int] = None
    note: str = ""  # "recorded": a training that failed for good; "re-attached": a job of an earlier driver
    job_id: Optional[str] = None  # the engine's id of a re-attached job


class Sweep:
    """Run ``cfg`` into ``out`` with the jobs on ``executor`` (see the module doc)."""

    def __init__(self, cfg: RunConfig, out: Path, executor: Executor, *, quiet: bool = False,
                 report: Optional[Callable[[Path], dict]] = None):
        # model.device is the jobs' device: the driver (on a login node, say) need not have it
        self.runner = Runner(cfg, out, quiet=quiet, report=report, device=torch.device("cpu"))
        self.cfg = cfg
        self.out = Path(out).absolute()
        self.layout = self.runner.layout
        self.ex = executor
        self.log: logging.Logger = logging.getLogger("lorafair")
        self.model_checked = True  # False: the ranks could not be checked before submitting (see check_model)
        self.guard = _Deferred()
        self.locked = False  # this driver holds the run's lock: it may cancel jobs and write RUN/jobs/submitted.json

    # ------------------------------------------------------------------ plan
    def _argv(self, kind: str, variants: list[str], seed: int) -> list[str]:
        names = [a for v in variants for a in ("--variant", v)]
        tail = ["-m", "lorafair", kind, str(self.layout.config_yaml.absolute()), *names,
                "--seed", str(seed), "--out", str(self.out), "--quiet"]
        if kind == "train" and self.ex.accelerate_config:
            from lorafair.accelerate_configs import config_path

            n = self.ex.num_processes or int(self.ex.num_gpus) or 1
            port = ["--main_process_port", str(self.ex.main_process_port)] if self.ex.main_process_port else []
            return [self.ex.python, "-m", "accelerate.commands.launch", "--config_file",
                    str(config_path(self.ex.accelerate_config)), "--num_processes", str(n), *port, *tail]
        return [self.ex.python, *tail]

    def plan(self) -> tuple[list[Job], int]:
        """The jobs still to do (in the order a local run does them) and how many are done already."""
        r, lay = self.runner, self.layout
        env = forwarded_env()
        jobs: list[Job] = []
        done = 0
        full = next((v for v in r.variants if v.method == "full"), None)
        for seed in self.cfg.seeds:
            for v in r.variants:
                if not v.trains:
                    continue
                if r.trained(v, seed) is not None:
                    done += 1
                    continue
                jobs.append(Job(f"train {v.name} seed {seed}", "train", v.name, seed, self._argv("train", [v.name], seed),
                                lay.job_log("train", v.name, seed), env=env))
        pending = {j.key for j in jobs}
        for seed in self.cfg.seeds:
            todo = [v for v in r.variants if not self._evaluated(v, seed)]
            done += len(r.variants) - len(todo)
            for group in self._eval_groups(todo):
                deps = [k for v in group if (k := f"train {v.name} seed {seed}") in pending]
                if full is not None and full not in group and (k := f"train full seed {seed}") in pending:
                    deps.append(k)
                name = group[0].name if len(group) == 1 else f"{group[0].name}..{group[-1].name}"
                jobs.append(Job(f"evaluate {name} seed {seed}", "evaluate", name, seed,
                                self._argv("evaluate", [v.name for v in group], seed), lay.job_log("evaluate", name, seed),
                                deps=deps, env=env, variants=[v.name for v in group]))
        # what every job would build on first use (the start stage, a seed's data, which builders may make by
        # sampling the model) is built once, by the first job that needs it, before the others start
        if jobs and self.cfg.start is not None and not lay.start_marker.exists():
            for j in jobs[1:]:
                j.deps.append(jobs[0].key)
        for seed in self.cfg.seeds:
            if not lay.data_marker(seed).exists():
                of_seed = [j for j in jobs if j.seed == seed]
                for j in of_seed[1:]:
                    if of_seed[0].key not in j.deps:
                        j.deps.append(of_seed[0].key)
        return jobs, done

    def _evaluated(self, v, seed: int) -> bool:
        """Every study evaluated on ``v`` / ``seed``, or its training failed for good (nothing to evaluate)."""
        rec = self.runner.trained(v, seed) if v.trains else None
        if v.trains and rec is not None and rec.get("status") == "failed":
            return True
        return (rec is not None or not v.trains) and not self.runner.studies_todo(v, seed)

    def _eval_groups(self, todo: list) -> list[list]:
        """One evaluation job per variant, or with ``eval_group=N`` up to N LoRA-family variants per job
        (one base model loaded for them all); base and full always alone."""
        from lorafair.methods import is_peft_method

        n = max(1, self.ex.eval_group)
        alone = [[v] for v in todo if not is_peft_method(v.method)]
        peft = [v for v in todo if is_peft_method(v.method)]
        return alone + [peft[i:i + n] for i in range(0, len(peft), n)]

    # ------------------------------------------------------------------ run
    def run(self) -> Path:
        t0 = time.perf_counter()
        r = self.runner
        states: list[_State] = []
        try:
            jobs, done = self.plan()  # reads the markers only
            states = [_State(j) for j in jobs]
            notes = self._reattach(states)  # before the leftovers are removed: the jobs found running write there
            live = [s for s in states if s.handle is not None]
            # checks the directory (check_out_dir) and takes the run-wide lock: held by this driver until the end
            # (jobs do not take it); the temporaries of jobs still running are not leftovers
            r.prepare_dir(clean=not live)
            self.locked = True
            self.log = r.log
            self.log.info("run directory: %s", self.out)
            if not self.model_checked:
                self.log.warning("the LoRA ranks were not checked before submitting: the config of %s cannot be read "
                                 "without fetching the model here; each training job checks its rank%s", self.cfg.model.source,
                                 "; the external variants are checked by no job (an evaluation loads them as they are)"
                                 if self.cfg.variants.external else "")
            for level, msg in notes:
                self.log.log(level, "%s", msg)
            if live:
                self.log.info("kept the temporary files in the run directory: %d job(s) of an earlier driver are "
                              "still writing", len(live))
            self._write_submitted(states)
            self.log.info("executor: %s; %d job(s) to run, %d done already%s", self.ex.describe(), len(jobs), done,
                          f", {len(live)} of an earlier driver re-attached" if live else "")
            self._loop(states)
        except BaseException as e:
            self._stopped(states, e)  # raises
        # a training recorded as failed (loss not finite at every lr) is reported as in a local run, not as a crash
        failed = [s for s in states if s.status == "failed" and s.note != "recorded"]
        skipped = [s for s in states if s.status == "skipped"]
        jobs_s = time.perf_counter() - t0
        try:
            self.ex.close()
            t1 = time.perf_counter()
            r.finalize_studies()
            r.paired()
            md = r.write_tables()
            train_info = {variant_folder(v.name, s): rec for s in self.cfg.seeds for v in r.variants
                          if v.trains and (rec := r._read_marker(self.layout.train_json(v.name, s))) is not None}
            phases = {"jobs": {"wall_s": round(jobs_s, 3)}, "summarise": {"wall_s": round(time.perf_counter() - t1, 3)}}
            info = run_info(self.cfg, r.device, time.perf_counter() - t0, train_info, phases)
            info["executor"] = {"name": self.ex.name, "jobs": len(states), "failed": len(failed), "skipped": len(skipped)}
            atomic_write_json(self.layout.run_info_json, info)
            if self.cfg.output.report and r.report is not None:
                r.write_report()
        except KeyboardInterrupt as e:  # every job had finished: nothing to cancel, the tables are what is left
            raise Interrupted(getattr(e, "signum", signal.SIGINT), "every job had finished; the tables or the report "
                              "may be missing or stale: run the same command again to write them (no job is "
                              "submitted)") from None
        finally:
            r.release()
        print(md, end="")
        self.log.info("results: %s", self.layout.metrics_csv)
        if failed:
            raise JobsFailed([(s.job.key, s.exit_code, s.job.log) for s in failed], len(skipped))
        return self.out

    # ------------------------------------------------------------------ jobs of an earlier driver, interruption
    def _reattach(self, states: list[_State]) -> list[tuple[int, str]]:
        """Jobs a driver before this one submitted and that have not finished (``RUN/jobs/submitted.json``):
        one still queued or running on the engine is waited for, not submitted again; one the engine cannot
        tell about is submitted again with a warning naming its id. Returns the lines to log."""
        path = self.layout.jobs_submitted
        if not path.is_file():
            return []
        try:
            recorded = read_json(path).get("jobs", {})
        except (OSError, ValueError, AttributeError):
            return [(logging.WARNING, f"{path} is unreadable: jobs an earlier driver left running are not re-attached")]
        notes, elsewhere = [], []
        for s in states:
            rec = recorded.get(s.job.key)
            if not isinstance(rec, dict) or not rec.get("id"):
                continue
            job_id = str(rec["id"])
            # an id means something only to the engine and cluster that gave it (a pid of submitit's local
            # executor is no Slurm job); a record written before the cluster was recorded is taken as this one's
            engine, cluster = str(rec.get("engine") or self.ex.name), str(rec.get("cluster", self.ex.cluster))
            if (engine, cluster) != (self.ex.name, self.ex.cluster):
                elsewhere.append(f"{s.job.key} (job {job_id} on {self.ex.where(engine, cluster)})")
                continue
            try:
                what, handle = self.ex.reattach(job_id)
            except Exception as e:  # the engine's look-up itself failed
                what, handle = "unknown", f"looking it up failed: {type(e).__name__}: {e}"
            if what == "running":
                s.handle, s.status, s.note = handle, "running" if s.job.log.exists() else "queued", "re-attached"
                s.job_id = job_id
                s.submitted = time.time()
                notes.append((logging.INFO, f"{s.job.key}: job {job_id}, submitted by an earlier driver, is still "
                                            "queued or running: waiting for it (not submitted again)"))
            elif what == "unknown":
                notes.append((logging.WARNING, f"{s.job.key}: job {job_id}, submitted by an earlier driver, may still "
                                               f"be running ({handle}); submitting it again. If it is, cancel it"
                                               f"{': ' + self.ex.cancel_hint([job_id]) if self.ex.cancel_hint([job_id]) else ''}"))
            else:
                notes.append((logging.INFO, f"{s.job.key}: job {job_id} of an earlier driver ended without its result; "
                                            "submitting it again"))
        if elsewhere:
            notes.append((logging.WARNING, f"{len(elsewhere)} job(s) an earlier driver submitted on another executor or "
                                           f"cluster than this one ({self.ex.where()}) are not re-attached: "
                                           f"{', '.join(elsewhere)}; submitting them again here. If they still run "
                                           "there, cancel them there"))
        return notes

    def _write_submitted(self, states: list[_State]) -> None:
        """Record the engine's id of every job in flight (atomically), so that a driver started after this one
        dies re-attaches to them (:meth:`_reattach`); the file goes when none is left."""
        path = self.layout.jobs_submitted
        jobs = {}
        for s in states:
            if s.status in ("queued", "running") and (job_id := self.ex.job_id(s.handle) if s.note != "re-attached"
                                                      else s.job_id) is not None:
                jobs[s.job.key] = {"engine": self.ex.name, "cluster": self.ex.cluster, "id": job_id, "kind": s.job.kind,
                                   "variants": s.job.names, "seed": s.job.seed, "log": str(s.job.log)}
        if jobs:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"jobs": jobs})
        else:
            path.unlink(missing_ok=True)

    def _stopped(self, states: list[_State], e: BaseException) -> None:
        """The driver stops before its jobs finished: Ctrl-C or SIGTERM (:class:`Interrupted`), or a crash of the
        driver itself. Its jobs are cancelled, or with ``on_interrupt=detach`` left running (and recorded, for the
        next driver to wait for); the lock is released; one ``error:`` line says what happened and how to resume."""
        interrupted = isinstance(e, KeyboardInterrupt)
        old = {}
        if threading.current_thread() is threading.main_thread():  # a second Ctrl-C does not stop the clean-up
            old = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            # before the lock was taken, a job found running is an earlier driver's (perhaps a live one's): untouched
            live = [s for s in states if s.status in ("queued", "running")] if self.locked else []
            waiting = sum(s.status == "waiting" for s in states) if self.locked else 0
            ids = {s.job.key: (s.job_id if s.note == "re-attached" else self.ex.job_id(s.handle)) for s in live}
            named = ", ".join(f"{s.job.key}" + (f" (job {ids[s.job.key]})" if ids[s.job.key] else "") for s in live)
            detach = interrupted and self.ex.on_interrupt == "detach" and live
            if live and not detach:
                self.ex.cancel([s.handle for s in live])
                for s in live:
                    s.status = "cancelled"
                self.log.warning("cancelled %d job(s): %s", len(live), named)
            if self.locked:
                try:
                    self._write_submitted(states)  # detached jobs stay recorded, cancelled ones go
                except OSError:
                    pass
            self.runner.release()
            self.ex.close()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
        if not interrupted:
            raise e
        not_sub = f"; {waiting} job(s) not submitted" if waiting else ""
        if detach:
            hint = self.ex.cancel_hint([ids[s.job.key] for s in live if ids[s.job.key]])
            what = (f"left {len(live)} job(s) running as on_interrupt=detach asks: {named}{not_sub}; run the same "
                    f"command again to wait for them and submit the rest" + (f" (to stop them: {hint})" if hint else ""))
        elif live:
            what = (f"cancelled {len(live)} job(s): {named}{not_sub}; the finished pieces are kept: run the same "
                    "command again to resume (only the missing jobs are submitted)")
        else:
            what = f"no job was in flight{not_sub}; run the same command again to resume"
        raise Interrupted(getattr(e, "signum", signal.SIGINT), what) from None

    def _loop(self, states: list[_State]) -> None:
        by_key = {s.job.key: s for s in states}
        last = None
        finished = False
        while True:
            # submit what is ready (one batch: an array job on Slurm)
            in_flight = sum(s.status in ("queued", "running") for s in states)
            ready = []
            for s in states:
                if s.status != "waiting":
                    continue
                dep_states = [by_key[d].status for d in s.job.deps]
                if any(d in ("failed", "skipped") for d in dep_states) and not self._dep_optional(s, by_key):
                    s.status, s.note = "skipped", "a job it depends on failed"
                    self.log.warning("%s: skipped (%s)", s.job.key, ", ".join(
                        f"{d} {by_key[d].status}" for d in s.job.deps if by_key[d].status in ("failed", "skipped")))
                    continue
                if all(d in ("done", "failed", "skipped") for d in dep_states):
                    if self.ex.max_parallel and in_flight + len(ready) >= self.ex.max_parallel:
                        break
                    ready.append(s)
            if ready:
                for s in ready:
                    s.job.log.parent.mkdir(parents=True, exist_ok=True)
                    s.job.log.unlink(missing_ok=True)  # the log of this attempt: it appears when the job starts
                with self.guard:
                    handles = self.ex.submit([s.job for s in ready])
                    now = time.time()
                    for s, h in zip(ready, handles):
                        s.handle, s.status, s.submitted = h, "queued", now
                    self._write_submitted(states)
                for s, h in zip(ready, handles):
                    job_id = self.ex.job_id(h)
                    self.log.info("submitted %s%s (log: %s)", s.job.key, f" as job {job_id}" if job_id else "", s.job.log)
            # poll
            for s in states:
                if s.status not in ("queued", "running"):
                    continue
                what, code = self.ex.poll(s.handle)
                if what == "pending":
                    if s.status == "queued" and s.job.log.exists():
                        s.status, s.started = "running", time.time()
                    continue
                s.finished, s.exit_code = time.time(), code
                s.started = s.started or s.submitted
                self._finished(s)
                finished = True
            if finished:
                self._write_submitted(states)
                finished = False
            counts = {k: sum(s.status == k for s in states) for k in ("waiting", "queued", "running", "done", "failed", "skipped")}
            if counts != last:
                last = counts
                self.log.info("jobs: %s%s", ", ".join(f"{v} {k}" for k, v in counts.items() if v or k in ("done", "failed")),
                              self._eta(states))
            if not any(s.status in ("waiting", "queued", "running") for s in states):
                return
            time.sleep(self.ex.poll_s)

    def _dep_optional(self, s: _State, by_key) -> bool:
        """An evaluation may run when the trainings it waits for that failed, failed *for good* (their marker
        records it, as in a local run: the failed variant is skipped, a study that needs ``full`` says so) and
        some variant of the job trained; not when a job crashed."""
        lost = set()
        for d in s.job.deps:
            ds = by_key[d]
            if ds.status not in ("failed", "skipped"):
                continue
            if ds.job.kind != "train" or ds.note != "recorded":
                return False
            lost.add(ds.job.variant)
        return bool(set(s.job.names) - lost)

    def _finished(self, s: _State) -> None:
        j, r = s.job, self.runner
        if j.kind == "train":
            v = next(x for x in r.variants if x.name == j.variant)
            rec = r.trained(v, j.seed)
            ok = rec is not None and rec.get("status") != "failed"
            if rec is not None and rec.get("status") == "failed":
                # a variant whose loss is not finite at every lr: recorded in train.json, as in a local run
                s.status, s.note = "failed", "recorded"
                self.log.warning("%s: training failed (%s); its studies are skipped, the other variants go on; "
                                 "log: %s", j.key, rec.get("reason"), j.log)
                return
        else:
            ok = all(self._evaluated(v, j.seed) for v in r.variants if v.name in j.names)
        if ok and s.exit_code == 0:
            s.status = "done"
            self.log.info("%s: done in %s", j.key, _dur(s.finished - s.started))
            return
        s.status = "failed"
        self.log.error("%s: failed (exit code %s); log: %s%s", j.key, s.exit_code if s.exit_code is not None else "none",
                       j.log, _last_line(j.log))

    @staticmethod
    def _eta(states: list[_State]) -> str:
        finished = [s.finished - s.started for s in states if s.status == "done"]
        left = [s for s in states if s.status in ("waiting", "queued", "running")]
        if not finished or not left:
            return ""
        parallel = max(1, sum(s.status == "running" for s in states))
        return f"; ETA {_dur(sum(finished) / len(finished) * len(left) / parallel)}"


class Interrupted(UserError):
    """The driver was stopped by Ctrl-C or SIGTERM: one line saying what became of its jobs and how to resume;
    exit code 130 (Ctrl-C) or 143 (SIGTERM), as a shell reports a process stopped by that signal."""

    def __init__(self, signum: int, what: str):
        self.exit_code = signal_exit_code(signum)
        super().__init__(None, message=f"interrupted by {signal_name(signum)}: {what}")


class _Deferred:
    """Held while jobs are submitted and recorded: a Ctrl-C or SIGTERM arriving then is raised when it is released,
    so the driver never loses track of a job the engine accepted."""

    def __init__(self):
        self.depth = 0
        self.pending: Optional[int] = None

    def __enter__(self):
        self.depth += 1

    def __exit__(self, *exc):
        self.depth -= 1
        if not self.depth and self.pending is not None:
            signum, self.pending = self.pending, None
            if exc[0] is None:
                raise Stop(signum)


class Stop(KeyboardInterrupt):
    """Raised in the driver by a SIGTERM (a scheduler's or a user's), handled as Ctrl-C is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class JobsFailed(UserError):
    """Some jobs failed (not a bad input): exit code 1, one line naming them and their logs."""

    exit_code = 1

    def __init__(self, failed: list[tuple[str, Optional[int], Path]], skipped: int):
        self.failed = failed
        what = "; ".join(f"{k} (exit {c if c is not None else 'none'}, log {p})" for k, c, p in failed)
        more = f", {skipped} skipped" if skipped else ""
        super().__init__(None, message=f"{len(failed)} job(s) failed{more}: {what}; the other jobs finished and "
                         "their results are in metrics.csv; fix the cause and re-run the same command (only the "
                         "missing jobs are submitted)")


def _dur(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def _last_line(log: Path) -> str:
    try:
        lines = [l for l in log.read_text(encoding="utf-8", errors="replace").splitlines() if l.strip()]
    except OSError:
        return ""
    return f" ({lines[-1].strip()[:300]})" if lines else ""


def check_model(cfg: RunConfig, out: Path) -> bool:
    """What the local runner refuses once it has loaded the model (LoRA target modules and ranks the model cannot
    take, external variants that do not fit it: :meth:`Runner.check_model`), refused by the driver before any job
    is submitted, on the model built from its config alone on the meta device (no weights read). False when that
    config is not at hand (a hub id offline, an embedded model not yet unpacked): the jobs then check."""
    from lorafair.models.sources import model_skeleton

    skeleton = model_skeleton(cfg.model.source, trust_remote_code=cfg.model.trust_remote_code)
    if skeleton is None:
        return False
    Runner(cfg, out, quiet=True, device=torch.device("cpu")).check_model(skeleton)
    return True


def run_sweep(cfg: RunConfig, out: Path, executor: str, options: dict[str, str], *, quiet: bool = False,
              report: Optional[Callable[[Path], dict]] = None) -> Path:
    """``lorafair run --executor``: the local runner for ``local``, else the sweep driver."""
    cls = EXECUTORS.get(executor)
    model_checked = True
    if getattr(cls, "runs_jobs", True):  # before an engine is started or a job submitted
        check_out_dir(Path(out), yaml.safe_load(dump_config(cfg)))
        model_checked = check_model(cfg, Path(out))
    ex = cls(Options(options, executor), Path(out).absolute() / "jobs")
    if not ex.runs_jobs:
        return run_experiment(cfg, out, quiet=quiet, report=report)
    try:
        sweep = Sweep(cfg, out, ex, quiet=quiet, report=report)
    except BaseException:
        ex.close()
        raise
    sweep.model_checked = model_checked
    guard = sweep.guard

    def stop(signum, frame):  # Ctrl-C, or a scheduler's or a user's SIGTERM
        if guard.depth:
            guard.pending = signum  # delivered once the submission in progress is recorded
            return
        raise Stop(signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return sweep.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
