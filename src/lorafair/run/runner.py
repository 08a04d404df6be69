"""The runner: plan variants × seeds, train each once (cached), evaluate every study (cached), tables.

Phase 1 trains every variant and saves it (adapter as PEFT safetensors, full weights as safetensors);
phase 2 evaluates every study on every variant (saving its per-item values); phase 3 writes the
cross-variant rows: studies' ``finalize`` rows and the paired ``capture_<m>`` / ``delta_<m>`` rows
(:mod:`lorafair.run.paired`), then metrics.csv, summary.md and the report. Each finished piece is
marked by a file written atomically (``train.json``, ``results/<study>.json``) carrying its own
fingerprint, so a killed run resumes where it stopped and gives the same numbers as an
uninterrupted one (training and evaluation are pure functions of (config, seed)), and a recipe can
gain studies or variants without redoing what is unchanged. The run directory itself is checked,
locked and cleaned by :mod:`lorafair.run.rundir`; every path in it is one of :class:`lorafair.run.layout.RunLayout`
(which the studies get as ``EvalContext.layout``); weights and training checkpoints are written and read by
:mod:`lorafair.adapt.checkpoint`. Each study is instantiated once per run (:meth:`Runner.study`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import shutil
import tempfile
import time
from dataclasses import asdict
from typing import Callable, Optional
from pathlib import Path

import torch
import yaml

from lorafair.adapt import checkpoint
from lorafair.adapt.external import ExternalVariant, check_against_base, load_external
from lorafair.adapt.peft_methods import check_ranks
from lorafair.adapt.shared_copy import variant_copy
from lorafair.adapt.tokenize import encode_records
from lorafair.adapt.train import Diverged, VariantFailed, seed_everything, train_model, train_variant
from lorafair.adapt.variants import Variant
from lorafair.config.load import dump_config
from lorafair.config.schema import RunConfig
from lorafair.data.files import read_jsonl
from lorafair.data.load import load_records, split_holdout
from lorafair.data.registry import DataContext
from lorafair.errors import UserError
from lorafair.lm import precision as lm_precision
from lorafair.lm.group import BASE, AdapterGroup
from lorafair.models.sources import load_model, resolve_device
from lorafair.atomic import atomic_write_json, atomic_write_jsonl, atomic_write_text, read_json
from lorafair.methods import adapters_off_is_base, is_peft_method, mixes_adapters
from lorafair.run.info import PhaseMeter, run_info
from lorafair.run.ladder import plan_variants
from lorafair.run.layout import RunLayout, fingerprint, variant_folder
from lorafair.run.logs import setup_logging, show_progress
from lorafair.run.paired import save_items, write_paired_rows, write_roles
from lorafair.run.strategies import StrategyInputs
from lorafair.run.rundir import (EXPERIMENT_FIELDS, PROBE_PREFIX, RunLock, check_out_dir, clean_stale_temporaries,
                                 finished_pieces)
from lorafair.run.tables import collect_rows, summary_markdown, write_metrics_csv
from lorafair.studies.base import EvalContext, VariantInfo, headline_metrics
from lorafair.strategies import variant_key
from lorafair.studies.loader import study_class


def is_main_process() -> bool:
    """True unless running as a non-zero rank under ``accelerate launch`` / torchrun."""
    return int(os.environ.get("RANK", "0")) == 0


def check_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise UserError("--out", str(out), f"a writable directory ({e.strerror})") from None


class Runner:
    def __init__(self, cfg: RunConfig, out: Path, *, quiet: bool = False,
                 report: Optional[Callable[[Path], dict]] = None, device: Optional[torch.device] = None):
        self.cfg = cfg
        # Builds the report of a finished run (``lorafair.report.write_report``, passed in by the CLI: the
        # report reads the run directory that this package owns, so the runner does not import it).
        self.report = report
        self.out = Path(out)
        self.layout = RunLayout(self.out)
        self.quiet = quiet
        self.progress = show_progress(quiet)
        self.log: logging.Logger = logging.getLogger("lorafair")
        # the sweep driver passes its own (cpu): it computes nothing on model.device, which its jobs' machines have
        self.device = device if device is not None else resolve_device(cfg.model.device)
        self.variants = plan_variants(cfg)
        self._refs: dict[tuple[int, str], object] = {}
        self._studies: dict[str, object] = {}
        self._lock: RunLock | None = None

    # ------------------------------------------------------------------ set-up
    def prepare_dir(self, lock: bool = True, clean: bool = True) -> None:
        """Check that ``--out`` can hold this run (nothing written if not), lock it, clean leftovers of
        interrupted writes (not with ``clean=False``: jobs of an earlier sweep still write there), write
        config.yaml and start run.log. See :mod:`lorafair.run.rundir`."""
        text = dump_config(self.cfg)
        check_out_dir(self.out, yaml.safe_load(text))
        check_writable(self.out)
        if lock and self._lock is None:
            self._lock = RunLock(self.out).acquire()
        # only a locking run may remove leftovers: `lorafair train` jobs sharing the directory may be writing
        stale = clean_stale_temporaries(self.out) if self._lock is not None and clean else []
        atomic_write_text(self.layout.config_yaml, text)
        self.log = setup_logging(self.layout.run_log, self.quiet)
        if stale:
            self.log.info("removed %d leftover temporary file(s) of an interrupted run", len(stale))

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def data_for_seed(self, seed: int, base_model_fn) -> tuple[list[dict], list[dict]]:
        """Train/held-out records for ``seed``; built once, cached in the run dir (builders may sample the model)."""
        if self.cfg.data is None:  # a run whose variants are all external: nothing to train on
            return [], []
        lay = self.layout
        tr, ho, mark = lay.train_data(seed), lay.heldout_data(seed), lay.data_marker(seed)
        dump = self.cfg.model_dump(mode="json")
        fp = fingerprint([{k: dump[k] for k in ("model", "data", "start")}, seed])
        if tr.exists() and ho.exists() and (not mark.exists() or read_json(mark).get("fingerprint") == fp):
            return read_jsonl(str(tr)), read_jsonl(str(ho))
        dc = self.cfg.data
        ctx = DataContext(seed=seed, log=self.log, progress=self.progress, cache_dir=lay.data_dir,
                          base_model=base_model_fn, field_name="data.train")
        rows = load_records(dc.train, ctx)
        if dc.eval is not None:
            ctx.field_name = "data.eval"
            heldout = load_records(dc.eval, ctx)
            train = rows
        else:
            train, heldout = split_holdout(rows, dc.holdout, seed)
        atomic_write_jsonl(ho, heldout)
        atomic_write_jsonl(tr, train)
        atomic_write_json(mark, {"fingerprint": fp, "train_records": len(train), "heldout_records": len(heldout)})
        self.log.info("data (seed %d): %d training records, %d held out", seed, len(train), len(heldout))
        return train, heldout

    # ------------------------------------------------------------------ models
    def load_base(self):
        m = self.cfg.model
        t0 = time.perf_counter()
        model, tok = load_model(m.source, device=self.device, dtype=m.dtype, trust_remote_code=m.trust_remote_code,
                                allow_pickle=m.allow_pickle, seed=self.cfg.seeds[0], log=self.log)
        self.log.info("loaded %s in %.1fs (%d parameters) on %s", m.source, time.perf_counter() - t0,
                      sum(p.numel() for p in model.parameters()), self.device)
        return model, tok

    def apply_start(self, model, tok):
        """Optional first stage: full fine-tune on ``start.data`` to make the ladder's starting model."""
        st = self.cfg.start
        if st is None:
            return model
        folder = self.layout.start_dir
        if self.layout.start_marker.exists():
            checkpoint.load_full_weights(model, self.layout.start_weights)
            self.log.info("start model: loaded from %s", folder)
            return model
        seed = self.cfg.seeds[0]
        ctx = DataContext(seed=seed, log=self.log, progress=self.progress, field_name="start.data",
                          base_model=lambda: (model, tok))
        rows = load_records(st.data, ctx)
        enc = encode_records(rows, tok, self.cfg.train.max_length)
        tcfg = self.cfg.train.model_copy(update={"max_steps": st.max_steps, "epochs": None})
        seed_everything(seed)
        work = copy.deepcopy(model)
        for p in work.parameters():
            p.requires_grad_(True)
        try:
            res = train_model(work, tok, enc, [], tcfg, st.lr, seed, self.device, progress=self.progress, log=self.log,
                              desc="start")
        except Diverged as e:
            raise UserError("start.lr", st.lr, f"a learning rate at which the start stage trains ({e.reason})") from None
        if is_main_process():
            checkpoint.save_full_weights(work, self.layout.start_weights)
            checkpoint.write_marker(self.layout.start_marker, res.to_dict() | {"records": len(rows)})
        work.requires_grad_(False)
        return work.eval()

    def load_variant(self, base_model, variant: Variant, seed: int):
        if isinstance(variant, ExternalVariant):  # made elsewhere: its own files, never trained
            return load_external(base_model, variant, self.device)
        if variant.method == "base":
            return base_model
        if variant.method == "full":
            m = checkpoint.load_full_weights(copy.deepcopy(base_model), self.layout.full_weights(variant.name, seed))
            return m.eval()
        m = checkpoint.load_adapter(variant_copy(base_model, variant.method), self.layout.adapter_dir(variant.name, seed))
        return m.to(self.device).eval()

    def check_model(self, base_model) -> None:
        """Refuse, before any work, what ``base_model`` cannot take: target modules and ranks of the LoRA-family
        methods (:func:`check_ranks`), external variants that do not fit it. Reads only module names and shapes,
        so a model built on the meta device from its config (:func:`lorafair.models.sources.model_skeleton`)
        does: the sweep driver checks that way before submitting any job."""
        for v in self.variants:
            if is_peft_method(v.method):
                m = getattr(self.cfg.variants, v.method)
                check_ranks(base_model, v.method, m.ranks, m.target_modules, f"variants.{v.method}")
        self.check_external(base_model)

    def check_external(self, base_model) -> None:
        """Refuse, before any work, an external variant that does not fit the base model (:mod:`lorafair.adapt.external`)."""
        entries = {e.name if e.role != "full" else "full": i for i, e in enumerate(self.cfg.variants.external)}
        for v in self.variants:
            if isinstance(v, ExternalVariant):
                check_against_base(base_model, v, entries[v.name], self.cfg.model.source, log=self.log)

    def save_variant(self, model, tok, variant: Variant, seed: int) -> None:
        """Keep a trained variant: the full model's weights (and, with ``output.save_full_weights``, a
        ``save_pretrained`` folder), or a PEFT variant's adapter (:mod:`lorafair.adapt.checkpoint`)."""
        if variant.method == "full":
            checkpoint.save_full_weights(model, self.layout.full_weights(variant.name, seed))
            if self.cfg.output.save_full_weights:
                checkpoint.export_pretrained(model, tok, self.layout.hf_export_dir(variant.name, seed))
        else:
            checkpoint.save_adapter(model, self.layout.adapter_dir(variant.name, seed))

    # ------------------------------------------------------------------ fingerprints (what is done)
    def _fp_common(self) -> dict:
        """The config sections every trained variant and evaluation depends on (rundir.EXPERIMENT_FIELDS)."""
        dump = self.cfg.model_dump(mode="json")
        return {k: dump[k] for k in EXPERIMENT_FIELDS}

    def train_fingerprint(self, v: Variant, seed: int) -> str:
        """The fingerprint in ``train.json`` of ``v`` trained with ``seed`` under this config."""
        return fingerprint([self._fp_common(), variant_key(v, self.cfg.strategies), seed])

    def trained(self, v: Variant, seed: int) -> dict | None:
        """``train.json`` of ``v`` when it holds this config's fingerprint (trained, or failed for good), else None."""
        rec = self._read_marker(self.layout.train_json(v.name, seed))
        return rec if rec is not None and rec.get("fingerprint") == self.train_fingerprint(v, seed) else None

    def studies_todo(self, v: Variant, seed: int) -> list[tuple]:
        """(study, its config, fingerprint, results path) of each study not yet evaluated on ``v`` / ``seed``."""
        # an evaluation depends on its own variant and on the references (base, full), not on the rest of the
        # ladder: adding a rank or a method to a finished run evaluates only the new variants
        fp_common = self._fp_common()
        fp_common["references"] = [variant_key(x) for x in self.variants if x.name in ("base", "full")]
        todo = []
        for name, scfg in self.cfg.studies.items():
            fp = fingerprint([fp_common, name, scfg.model_dump(mode="json"), variant_key(v, self.cfg.strategies), seed]
                              + self._precision_key(name) + self._revision_key(name))
            res_path = self.layout.result_json(v.name, seed, name)
            if res_path.exists() and read_json(res_path).get("fingerprint") == fp:
                continue
            todo.append((name, scfg, fp, res_path))
        return todo

    # ------------------------------------------------------------------ phases
    def train_all(self, base_model, tok, only: str | None = None, seeds: list[int] | None = None) -> dict:
        """Train every variant (``only``: one) for every seed, skipping those whose ``train.json`` marker has
        the same fingerprint. A variant whose loss is not finite at every lr of its grid fails: its marker
        records ``"status": "failed"`` with the reason, step and lr (:meth:`_failed_marker`), its studies
        are skipped and the other variants go on. A failed variant is retried only when its fingerprint
        changes (training is a pure function of config and seed: the same settings diverge again); to
        retry it anyway delete its ``train.json``. ``train.checkpoint_every`` makes a training resumable
        inside a variant (``<variant>-s<seed>/checkpoint/``, removed once the variant is saved)."""
        info = {}
        failed = []
        trainable = [v for v in self.variants if v.trains and (only is None or v.name == only)]
        strategy_inputs = StrategyInputs(self.cfg, self.layout, tok, self.device, self.log, is_main_process(),
                                         base_model=lambda: (base_model, tok))
        for seed in (seeds or self.cfg.seeds) if trainable else ():
            train_rows, heldout = self.data_for_seed(seed, lambda: (base_model, tok))
            enc_train = encode_records(train_rows, tok, self.cfg.train.max_length)
            enc_eval = encode_records(heldout, tok, self.cfg.train.max_length)
            if not enc_train:
                raise UserError("data.train", self.cfg.data.train.source, "records with at least one token to learn from")
            for v in trainable:  # the strategies' records and loss terms first: a refusal comes before any training
                strategy_inputs.inputs(v, seed, train_rows, enc_train)
            for i, v in enumerate(trainable, 1):
                folder = self.layout.variant_dir(v.name, seed)
                marker = self.layout.train_json(v.name, seed)
                ck = checkpoint.TrainingCheckpoint(self.layout.checkpoint_dir(v.name, seed))
                fp = self.train_fingerprint(v, seed)
                prev = self._read_marker(marker)
                if prev is not None and prev.get("fingerprint") == fp:
                    info[variant_folder(v.name, seed)] = prev
                    if is_main_process():
                        ck.clear()  # left by a run killed after the marker was written
                    if prev.get("status") == "failed":
                        failed.append((v, seed, prev.get("reason", "failed")))
                        self.log.warning("[%d/%d] %s seed %d: failed before (%s), skipping; change its settings (lr) "
                                         "to retry, or delete %s", i, len(trainable), v.name, seed, prev.get("reason"), marker)
                    else:
                        self.log.info("[%d/%d] %s seed %d: trained already, skipping", i, len(trainable), v.name, seed)
                    continue
                self.log.info("[%d/%d] training %s (seed %d, %s steps, lr %s)", i, len(trainable), v.name, seed,
                              self.cfg.train.max_steps or f"{self.cfg.train.epochs} epochs", ",".join(f"{x:g}" for x in v.lrs))
                folder.mkdir(parents=True, exist_ok=True)
                v_train, objective = strategy_inputs.inputs(v, seed, train_rows, enc_train)  # plain: enc_train, None
                try:
                    model, res = train_variant(base_model, tok, v, v_train, enc_eval, self.cfg.train, seed, self.device,
                                               progress=self.progress, log=self.log, checkpoint_dir=ck.root,
                                               key=fp, is_main=is_main_process(), objective=objective)
                except VariantFailed as e:
                    self.log.error("%s seed %d failed: %s; its studies are skipped, the other variants go on",
                                   v.name, seed, e.note)
                    failed.append((v, seed, e.note))
                    rec = e.to_dict() | {"fingerprint": fp, "variant": asdict(v), "seed": seed,
                                         "train_records": len(enc_train), "heldout_records": len(enc_eval)}
                    if is_main_process():
                        # what an earlier config of this variant left would be shown as this one's results
                        for p in self.layout.trained_artifacts(v.name, seed):
                            if p.is_dir():
                                shutil.rmtree(p)
                            elif p.exists():
                                p.unlink()
                        checkpoint.write_marker(marker, rec)
                        ck.clear()
                    info[variant_folder(v.name, seed)] = rec
                    continue
                if not is_main_process():
                    continue
                self.save_variant(model, tok, v, seed)
                rec = {"status": "ok"} | res.to_dict() | {"fingerprint": fp, "variant": asdict(v), "seed": seed,
                                                          "train_records": len(v_train), "heldout_records": len(enc_eval)}
                checkpoint.write_marker(marker, rec)
                ck.clear()
                info[variant_folder(v.name, seed)] = rec
                del model
        if failed:
            self.log.warning("training failed for %d of %d variant(s), their studies are skipped: %s", len(failed),
                             len(trainable) * len(seeds or self.cfg.seeds),
                             "; ".join(f"{v.name} (seed {s}): {why}" for v, s, why in failed))
            if only is None and not any(not v.trains for v in self.variants) and len(failed) == len(trainable) * len(seeds or self.cfg.seeds):
                v, s, why = failed[0]
                raise UserError(self._lr_field(v), v.lrs[0] if len(v.lrs) == 1 else list(v.lrs),
                                f"learning rates at which some variant trains (every variant failed and base is off: {why})")
        return info

    @staticmethod
    def _read_marker(marker: Path) -> dict | None:
        try:
            rec = read_json(marker)
        except (OSError, ValueError):
            return None
        return rec if isinstance(rec, dict) else None

    def _failed_marker(self, v: Variant, seed: int) -> dict | None:
        """The ``train.json`` of ``v`` when its training failed (``"status": "failed"``, ``reason``, ``step``,
        ``lr``, ``failures`` per lr), else None."""
        if not v.trains:
            return None
        rec = self._read_marker(self.layout.train_json(v.name, seed))
        return rec if rec is not None and rec.get("status") == "failed" else None

    def _lr_field(self, v: Variant) -> str:
        grid = self.cfg.variants.lr_grid or {}
        return f"variants.lr_grid.{v.method}" if v.method in grid else f"variants.{v.method}.lr"

    def train_one(self, name: str, seed: int | None = None) -> None:
        """Train a single variant (``lorafair train``); safe under ``accelerate launch``: only the main
        process writes files."""
        v = next((x for x in self.variants if x.name == name), None)
        trainable = [x.name for x in self.variants if x.trains]
        if v is None or not v.trains:
            raise UserError("--variant", name, f"one of {', '.join(trainable)}")
        if seed is not None and seed not in self.cfg.seeds:
            raise UserError("--seed", seed, f"one of the recipe's seeds {self.cfg.seeds}")
        if is_main_process():
            # no run-wide lock: `lorafair train` jobs of one run may train different variants at once
            self.prepare_dir(lock=False)
        else:
            self.log = setup_logging(None, True)
        base_model, tok = self.load_base()
        if is_peft_method(v.method):
            m = getattr(self.cfg.variants, v.method)
            check_ranks(base_model, v.method, [v.rank], m.target_modules, f"variants.{v.method}")
        base_model = self.apply_start(base_model, tok)
        base_model.requires_grad_(False)
        seed = seed if seed is not None else self.cfg.seeds[0]
        self.train_all(base_model, tok, only=name, seeds=[seed])
        if (rec := self._failed_marker(v, seed)) is not None:  # the one job of this command failed
            raise UserError(self._lr_field(v), rec.get("lr") if len(v.lrs) == 1 else list(v.lrs),
                            f"a learning rate at which {v.name} trains ({rec.get('reason')}; recorded as failed in "
                            f"{self.layout.train_json(v.name, seed)})")

    def evaluate_one(self, names: list[str], seed: int | None = None) -> None:
        """Evaluate every study on some variants (one base model loaded for them) and one seed (``lorafair
        evaluate``: the evaluation job of ``lorafair run --executor``). Like :meth:`train_one` it takes no
        run-wide lock (the driver that launched it holds that) and leaves the run's tables to the driver."""
        if seed is not None and seed not in self.cfg.seeds:
            raise UserError("--seed", seed, f"one of the recipe's seeds {self.cfg.seeds}")
        seed = seed if seed is not None else self.cfg.seeds[0]
        for name in names:
            v = next((x for x in self.variants if x.name == name), None)
            if v is None:
                raise UserError("--variant", name, f"one of {', '.join(x.name for x in self.variants)}")
            if v.trains and self.trained(v, seed) is None:
                raise UserError("--variant", name, f"a trained variant (train it first: `lorafair train RECIPE "
                                f"--variant {name} --seed {seed} --out {self.out}`)")
        self.prepare_dir(lock=False)
        base_model, tok = self.load_base()
        base_model = self.apply_start(base_model, tok)
        base_model.requires_grad_(False)
        self.evaluate_all(base_model, tok, only=set(names), seeds=[seed])

    def reference(self, base_model, seed: int, name: str):
        if name == "base":
            return base_model
        key = (seed, name)
        if key not in self._refs:
            v = next((x for x in self.variants if x.name == name), None)
            if v is None:
                raise UserError("variants", name, f"the '{name}' variant enabled (a study needs it as a reference)")
            if (rec := self._failed_marker(v, seed)) is not None:
                raise UserError(self._lr_field(v), rec.get("lr") if len(v.lrs) == 1 else list(v.lrs),
                                f"a learning rate at which {name} trains: a study needs {name} (seed {seed}) as a "
                                f"reference and its training failed ({rec.get('reason')})")
            self._refs[key] = self.load_variant(base_model, v, seed)
        return self._refs[key]

    def study(self, name: str):
        """The run's one instance of study ``name`` (made on first use): every variant and seed is evaluated by
        it, so what a study keeps across variants (e.g. the shift study's ΔW_full spectrum) lives on it."""
        if name not in self._studies:
            self._studies[name] = study_class(name)()
        return self._studies[name]

    def mixed_adapters(self) -> bool:
        """Whether this run evaluates its LoRA variants in mixed-adapter batches (``eval.mixed_adapters``; ``auto``:
        on a GPU)."""
        setting = self.cfg.eval.mixed_adapters
        return setting == "on" or (setting == "auto" and torch.device(self.device).type == "cuda")

    def adapter_group(self, base_model, seed: int, only: set[str] | None = None) -> AdapterGroup | None:
        """The variants of ``seed`` evaluated together (:mod:`lorafair.lm.group`): the base model and the LoRA-family
        variants that mix in one batch (:func:`lorafair.methods.mixes_adapters`), for each study that declares
        ``co_evaluate`` and that at least two of them still have to evaluate; None when there is no such study, or
        when ``eval.mixed_adapters`` is off here. One PEFT model on the base model's weights holds their adapters."""
        if not self.mixed_adapters():
            return None
        members: dict[str, str] = {}
        for v in self.variants:
            if (only is not None and v.name not in only) or isinstance(v, ExternalVariant):
                continue
            if v.method == "base":
                members[v.name] = BASE
            elif mixes_adapters(v.method) and (rec := self.trained(v, seed)) is not None and rec.get("status") != "failed":
                members[v.name] = f"v{len(members)}"  # a plain adapter name (PEFT keys modules by it)
        by_name = {v.name: v for v in self.variants}
        pending = {m: {t[0] for t in self.studies_todo(by_name[m], seed)} for m in members}
        todo = {study: [m for m in members if study in pending[m]] for study in self.cfg.studies
                if getattr(study_class(study), "co_evaluate", False)}
        shared = {m for ms in todo.values() if len(ms) >= 2 for m in ms}
        adapters = [m for m in members if m in shared and members[m] != BASE]
        if not adapters:
            return None
        model = checkpoint.load_adapters(variant_copy(base_model, by_name[adapters[0]].method),
                                         {members[m]: self.layout.adapter_dir(m, seed) for m in adapters})
        group = AdapterGroup(model.to(self.device).eval(), {m: a for m, a in members.items() if m in shared}, todo,
                             per_pass=self.cfg.eval.mixed_adapters_per_pass)
        self.log.info("seed %d: %s evaluated together in mixed-adapter batches (%s)", seed,
                      ", ".join(m for m in members if m in shared), ", ".join(group.studies))
        return group

    def evaluate_all(self, base_model, tok, only: set[str] | None = None, seeds: list[int] | None = None) -> None:
        """Evaluate every study on every variant (``only``: those) and seed (``seeds``: those), skipping the
        evaluations whose ``results/<study>.json`` has the same fingerprint (:meth:`studies_todo`). With
        mixed-adapter batches (:meth:`adapter_group`) the studies that declare ``co_evaluate`` are answered for the
        base model and the LoRA variants together; every other study gets the variant's own model."""
        for seed in seeds or self.cfg.seeds:
            _, heldout = self.data_for_seed(seed, lambda: (base_model, tok))
            group = self.adapter_group(base_model, seed, only)
            for i, v in enumerate(self.variants, 1):
                if only is not None and v.name not in only:
                    continue
                folder = self.layout.variant_dir(v.name, seed)
                if (failed := self._failed_marker(v, seed)) is not None:
                    self.log.warning("[%d/%d] %s seed %d: training failed (%s), studies skipped", i, len(self.variants),
                                     v.name, seed, failed.get("reason"))
                    continue
                todo = self.studies_todo(v, seed)
                if not todo:
                    self.log.info("[%d/%d] %s seed %d: evaluated already, skipping", i, len(self.variants), v.name, seed)
                    continue
                own = None  # the variant's own model, loaded when a study needs it
                for name, scfg, fp, res_path in todo:
                    t0 = time.perf_counter()
                    self.log.info("[%d/%d] %s seed %d: study %s", i, len(self.variants), v.name, seed, name)
                    together = group is not None and group.co_evaluates(name, v.name)
                    if together:
                        model = base_model if v.name == "base" else group.view(v.name)
                        scope = group.evaluating(name, v.name, model)
                    else:
                        if own is None:
                            # the full variant is also a reference of other variants: load it once per seed
                            own = (self.reference(base_model, seed, "full") if v.name == "full"
                                   else self.load_variant(base_model, v, seed))
                        model, scope = own, contextlib.nullcontext()
                    base_view = None
                    if hasattr(model, "disable_adapter") and adapters_off_is_base(v.method):
                        # e.g. PiSSA's base layers hold the residual W - BA: disabling its adapter is not the base model
                        base_view = model.disable_adapter if not together else self._unshared(group, model)
                    seed_everything(seed)
                    ctx = EvalContext(
                        model=model, tokenizer=tok, device=self.device, variant=VariantInfo(v.name, v.method, v.rank),
                        seed=seed, out_dir=folder, config=self.cfg, study_config=scfg, log=self.log, progress=self.progress,
                        reference=lambda n, s=seed: self.reference(base_model, s, n), base_view=base_view,
                        heldout_data=heldout, layout=self.layout,
                    )
                    folder.mkdir(parents=True, exist_ok=True)
                    prec = self.eval_precision(name)
                    with torch.no_grad(), lm_precision.use(prec), scope:
                        result = self.study(name).evaluate(ctx)
                    result.info.setdefault("precision", prec)
                    if together:
                        result.info.setdefault("mixed_adapters", True)
                    wall = time.perf_counter() - t0
                    # per-item values first: the results file is the marker that the evaluation is complete
                    items = save_items(self.layout.results_dir(v.name, seed), name, result.items)
                    if items is None and (p := self.layout.items_npz(v.name, seed, name)).exists():
                        p.unlink()
                    atomic_write_json(res_path, {
                        "study": name, "seed": seed, "fingerprint": fp, "wall_s": wall,
                        "variant": {"name": v.name, "method": v.method, "rank": v.rank} | (
                            {"source": v.source, "digest": v.digest} if isinstance(v, ExternalVariant) else {}),
                        "metrics": [asdict(m) for m in result.metrics], "info": result.info,
                    })
                    self.log.info("    %s done in %.1fs", name, wall)
            if group is not None:
                self.log.info("seed %d: %d of %d engine calls answered from the mixed-adapter batches of an earlier "
                              "variant", seed, group.hits, group.calls)
                if (unused := group.leftover()):
                    self.log.warning("seed %d: %d answers computed in mixed-adapter batches were never asked for (a "
                                     "study declaring co_evaluate made a call that depends on the variant)", seed, unused)

    def mixed_record(self) -> dict[str, dict]:
        """Per seed, the variants and studies whose results were evaluated in mixed-adapter batches (their
        ``info.mixed_adapters``), as the results on disk say, whichever run made them (``run_info.json``)."""
        out: dict[str, dict] = {}
        for seed in self.cfg.seeds:
            variants, studies = [], []
            for v in self.variants:
                for study in self.cfg.studies:
                    rec = self._read_marker(self.layout.result_json(v.name, seed, study))
                    if rec is not None and isinstance(rec.get("info"), dict) and rec["info"].get("mixed_adapters"):
                        variants += [v.name] if v.name not in variants else []
                        studies += [study] if study not in studies else []
            if variants:
                out[str(seed)] = {"variants": variants, "studies": [s for s in self.cfg.studies if s in studies]}
        return out

    @staticmethod
    def _unshared(group: AdapterGroup, model):
        """``model.disable_adapter`` for a study evaluated through ``group``: its calls inside are the base model's,
        not the variant's, so none goes through the group."""
        @contextlib.contextmanager
        def base_view():
            with group.suspended(), model.disable_adapter():
                yield
        return base_view

    def eval_precision(self, name: str) -> dict[str, str]:
        """The precision of each LM-engine operation (score, sample) for study ``name`` on this run's device."""
        return lm_precision.resolve(self.cfg.eval.precision, self.device, getattr(self.study(name), "bf16_auto", ()))

    @staticmethod
    def _revision_key(name: str) -> list:
        """A study's ``revision`` as part of its fingerprint: nothing at 0, so studies never revised keep theirs."""
        rev = getattr(study_class(name), "revision", 0)
        return [{"revision": rev}] if rev else []

    def _precision_key(self, name: str) -> list:
        """The evaluation precision as part of a study's fingerprint: nothing when every operation is fp32 (so
        runs made before the setting existed, and on machines without native bf16, keep their fingerprints)."""
        prec = self.eval_precision(name)
        return [] if set(prec.values()) == {"fp32"} else [{"precision": prec}]

    def finalize_studies(self) -> None:
        """Cross-variant rows of studies with ``finalize`` (e.g. the decisions study's reference policies),
        stored in ``RUN/extra_metrics/<study>.json`` (cached like evaluations) and merged into metrics.csv."""
        for name, scfg in self.cfg.studies.items():
            cls = study_class(name)
            if not hasattr(cls, "finalize"):
                continue
            path = self.layout.extra_metrics(name)
            fp = fingerprint([name, scfg.model_dump(mode="json"), self.cfg.seeds])
            if path.exists() and read_json(path).get("fingerprint") == fp:
                continue
            self.log.info("study %s: cross-variant rows", name)
            rows = cls.finalize(self.out, self.cfg, collect_rows(self.layout))
            atomic_write_json(path, {"study": name, "fingerprint": fp, "rows": rows})

    def paired(self) -> None:
        """Paired capture ratios and differences from base (``extra_metrics/paired-<study>.json``) and the
        studies' declared metric roles (``metric_roles.json``); recomputed from the saved per-item values."""
        write_roles(self.layout, {n: study_class(n) for n in self.cfg.studies}, self.cfg.studies)
        variants = [{"name": v.name, "method": v.method, "rank": v.rank} for v in self.variants]
        for name, scfg in self.cfg.studies.items():
            t0 = time.perf_counter()
            n_boot = max(1000, int(getattr(scfg, "n_boot", 2000) or 2000))
            path = write_paired_rows(self.layout, name, study_class(name), variants, list(self.cfg.seeds), n_boot=n_boot,
                                     config=scfg)
            if path is not None:
                self.log.info("study %s: paired capture ratios (%.1fs)", name, time.perf_counter() - t0)

    def headline(self) -> dict[str, tuple[str, ...]]:
        return {n: headline_metrics(study_class(n), c) for n, c in self.cfg.studies.items()}

    def write_tables(self) -> str:
        rows = collect_rows(self.layout)
        write_metrics_csv(self.layout, rows)
        md = summary_markdown(rows, self.headline())
        text = f"# {self.cfg.name}: summary\n\nValues are point estimates with 95% bootstrap intervals.\n\n{md}"
        atomic_write_text(self.layout.summary_md, text)
        return md

    def run(self) -> Path:
        """The whole experiment. Inputs that can be checked before any work (the run directory, the
        model, the ranks) are checked before anything is written; a bad input found later in a run
        directory this call created, before any piece finished, removes that directory again."""
        t0 = time.perf_counter()
        meter = PhaseMeter(self.device)
        created = not self.out.exists()
        try:
            check_out_dir(self.out, yaml.safe_load(dump_config(self.cfg)))
            self.log = setup_logging(None, self.quiet)
            with meter.phase("load"):
                base_model, tok = self.load_base()
                self.check_model(base_model)
            self.prepare_dir()
            self.log.info("run directory: %s", self.out)
            with meter.phase("start"):
                base_model = self.apply_start(base_model, tok)
            base_model.requires_grad_(False)
            with meter.phase("train"):  # the data (built once per seed, cached) and every training
                train_info = self.train_all(base_model, tok)
            with meter.phase("evaluate"):
                self.evaluate_all(base_model, tok)
        except UserError:
            self.release()
            if created and self.out.is_dir() and not finished_pieces(self.out):
                shutil.rmtree(self.out, ignore_errors=True)
            raise
        except BaseException:
            self.release()
            raise
        try:
            with meter.phase("summarise"):
                self.finalize_studies()
                self.paired()
                md = self.write_tables()
            atomic_write_json(self.layout.run_info_json, run_info(self.cfg, self.device, time.perf_counter() - t0, train_info,
                                                                  meter.phases, {n: self.eval_precision(n) for n in self.cfg.studies},
                                                                  self.mixed_record()))
            if self.cfg.output.report and self.report is not None:
                self.write_report()
        finally:
            self.release()
        for name, rec in meter.phases.items():
            self.log.info("phase %s: %.1fs, peak memory %s", name, rec["wall_s"],
                          ", ".join(f"{k.removeprefix('peak_').removesuffix('_mb')} {v:.0f} MB" for k, v in rec.items()
                                    if k.startswith("peak_")) or "not measured")
        print(md, end="")
        self.log.info("results: %s", self.layout.metrics_csv)
        return self.out

    def write_report(self) -> None:
        try:
            paths = self.report(self.out)
        except Exception as e:  # a plotting failure must not fail a finished run: the numbers are written
            self.log.warning("report failed (%s: %s); the metrics are in %s; retry with `lorafair report %s`",
                             type(e).__name__, e, self.layout.metrics_csv, self.out)
            return
        self.log.info("report: %s (%.1fs)", paths.get("html"), paths.get("seconds", 0))
        for line in paths.get("recommendation", []):
            self.log.info("recommendation (all studies) %s", line)


def run_experiment(cfg: RunConfig, out: Path, *, quiet: bool = False,
                   report: Optional[Callable[[Path], dict]] = None) -> Path:
    """Run (or resume) ``cfg`` into ``out``; ``report(run_dir)`` builds the report at the end when
    ``output.report`` is on (the CLI passes :func:`lorafair.report.write_report`)."""
    return Runner(cfg, out, quiet=quiet, report=report).run()
