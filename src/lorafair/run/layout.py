"""The run directory: the one place that knows how variant folders are named and parsed, what columns
``metrics.csv`` has and where every file of a run lives (:class:`RunLayout`). (The runner, the tables, the
paired rows, the run-directory checks, the report and — through ``EvalContext.layout`` — the studies use
these; nothing else builds or parses a ``<variant>-s<seed>`` name or joins a run's file names.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

COLUMNS = ("variant", "method", "rank", "seed", "study", "metric", "group", "value", "ci_low", "ci_high", "n", "note",
           "strategy")  # strategy: "" for plain fine-tuning (a metrics.csv without the column reads as "")

TRAIN_STATUS = "train"  # the study of metrics.csv rows of variants whose training failed

_VARIANT_RE = re.compile(r"^(?P<method>[a-z0-9_]+)-r(?P<rank>\d{1,9})$")  # a rank fits a plot axis
STRATEGY_SEP = "+"  # lora-r8+cfreg: lora-r8 trained with the cfreg strategy (lorafair.strategies)
_STRATEGY_RE = re.compile(r"^(?P<plain>.+)\+(?P<strategy>[a-z0-9_]+)$")
_FOLDER_RE = re.compile(r"^(?P<variant>.+)-s(?P<seed>\d+)$")


def variant_name(method: str, rank: Optional[int] = None, strategy: str = "") -> str:
    """``lora-r8`` for a ranked method, the method itself (``base``, ``full``) otherwise; with a strategy,
    ``lora-r8+cfreg``, ``full+select``."""
    name = f"{method}-r{rank}" if rank is not None else method
    return f"{name}{STRATEGY_SEP}{strategy}" if strategy else name


def split_strategy(name: str) -> tuple[str, str]:
    """``"lora-r8+cfreg"`` -> ``("lora-r8", "cfreg")``; a plain variant -> ``(name, "")``."""
    m = _STRATEGY_RE.match(name)
    return (m.group("plain"), m.group("strategy")) if m else (name, "")


def variant_folder(variant: str, seed: int) -> str:
    """The folder of one variant and seed: ``lora-r8-s0``."""
    return f"{variant}-s{seed}"


def parse_variant(name: str) -> tuple[str, Optional[int]]:
    """Method and rank of a variant name: ``"lora-r8"`` -> ``("lora", 8)``, ``"base"`` -> ``("base", None)``;
    a strategy suffix is not part of either (``"lora-r8+cfreg"`` -> ``("lora", 8)``: :func:`split_strategy`)."""
    name = split_strategy(name)[0]
    m = _VARIANT_RE.match(name)
    if m:
        return m.group("method"), int(m.group("rank"))
    return name, None


def parse_folder(name: str) -> Optional[tuple[str, int]]:
    """``(variant, seed)`` of a variant folder name, or None for any other name."""
    m = _FOLDER_RE.match(name)
    return (m.group("variant"), int(m.group("seed"))) if m else None


# -- file names --------------------------------------------------------------------------------------------
CONFIG = "config.yaml"  # the resolved config
RUN_LOG = "run.log"
LOCK = ".lock"  # held (flock) while a run works in the directory
METRICS_CSV = "metrics.csv"
SUMMARY_MD = "summary.md"
RUN_INFO = "run_info.json"
METRIC_ROLES = "metric_roles.json"  # study -> metric -> role, direction, ideal, unit, doc; and STUDY_KEY
STUDY_KEY = "_study"  # a study's own entry in metric_roles.json: title, description, headline metrics
SPECTRUM = "spectrum.json"  # the shift study's ΔW_full spectrum, once per run
EXTRA_METRICS = "extra_metrics"  # finalize rows (<study>.json) and paired rows (paired-<study>.json)
DATA = "data"  # train-s<seed>.jsonl, heldout-s<seed>.jsonl, data-s<seed>.json; also the data builders' cache
START = "start"  # the optional start stage: train.json, model.safetensors
JOBS = "jobs"  # lorafair run --executor: one log per job, the engine's own files (submitit/)
SUBMITTED = "submitted.json"  # in jobs/: the engine's id (and executor, cluster) of every job in flight (a re-run re-attaches)
# inside a variant folder
TRAIN_JSON = "train.json"  # marker of a finished (or failed) training
CHECKPOINT = "checkpoint"  # resumable training state while the variant trains
ADAPTER = "adapter"  # a PEFT adapter (save_pretrained, safetensors)
FULL_WEIGHTS = "model.safetensors"  # the full variant's raw weights
HF_EXPORT = "model"  # output.save_full_weights: a save_pretrained folder
RESULTS = "results"  # <study>.json (metrics + info), <study>.items.npz (per-item values)
SAMPLES = "samples.jsonl"  # the toxicity study's generations

# what finished work looks like (globs relative to the run directory; a folder of a variant is <name>-s<seed>)
_VARIANT_GLOB = "*-s*"


def result_name(study: str) -> str:
    """The results file of a study inside ``results/``."""
    return f"{study}.json"


def items_name(study: str) -> str:
    """The per-item values file of a study inside ``results/``."""
    return f"{study}.items.npz"


class RunLayout:
    """Every path of one run directory (``RunLayout(root)``); the runner, the tables, the paired rows, the run
    directory's checks and (through :class:`lorafair.studies.base.EvalContext`) the studies use it instead of
    joining names themselves::

        RUN/config.yaml, run.log, .lock, metrics.csv, summary.md, run_info.json, metric_roles.json, spectrum.json
        RUN/extra_metrics/<study>.json, paired-<study>.json
        RUN/data/train-s<seed>.jsonl, heldout-s<seed>.jsonl, data-s<seed>.json,
                 train-s<seed>+<strategy>.jsonl, train-s<seed>+<strategy>.json (a data strategy's records)
        RUN/start/train.json, model.safetensors
        RUN/<variant>-s<seed>/train.json, checkpoint/, adapter/, model.safetensors, model/,
                              results/<study>.json, results/<study>.items.npz, samples.jsonl …
        RUN/jobs/<train|evaluate>-<variant>-s<seed>.log, submitted.json, submitit/   (``lorafair run --executor ray|slurm``)
    """

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @classmethod
    def of(cls, run: "RunLayout | Path | str") -> "RunLayout":
        """``run`` as a layout (a layout is returned as it is)."""
        return run if isinstance(run, RunLayout) else cls(run)

    def __repr__(self) -> str:
        return f"RunLayout({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunLayout) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ---- run-level files
    def run_file(self, name: str) -> Path:
        """A file directly in the run directory (e.g. a study's run-level artifact, ``spectrum.json``)."""
        return self.root / name

    @property
    def config_yaml(self) -> Path:
        return self.root / CONFIG

    @property
    def run_log(self) -> Path:
        return self.root / RUN_LOG

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    @property
    def metrics_csv(self) -> Path:
        return self.root / METRICS_CSV

    @property
    def summary_md(self) -> Path:
        return self.root / SUMMARY_MD

    @property
    def run_info_json(self) -> Path:
        return self.root / RUN_INFO

    @property
    def metric_roles_json(self) -> Path:
        return self.root / METRIC_ROLES

    @property
    def spectrum_json(self) -> Path:
        return self.root / SPECTRUM

    @property
    def extra_metrics_dir(self) -> Path:
        return self.root / EXTRA_METRICS

    def extra_metrics(self, study: str) -> Path:
        """A study's ``finalize`` rows."""
        return self.extra_metrics_dir / f"{study}.json"

    def paired_metrics(self, study: str) -> Path:
        """A study's paired ``capture_<m>`` / ``delta_<m>`` rows."""
        return self.extra_metrics_dir / f"paired-{study}.json"

    # ---- data
    @property
    def data_dir(self) -> Path:
        """The seeds' training and held-out records, and the cache of the data builders."""
        return self.root / DATA

    def train_data(self, seed: int) -> Path:
        return self.data_dir / f"train-s{seed}.jsonl"

    def heldout_data(self, seed: int) -> Path:
        return self.data_dir / f"heldout-s{seed}.jsonl"

    def data_marker(self, seed: int) -> Path:
        """The fingerprint of a seed's records (``data-s<seed>.json``)."""
        return self.data_dir / f"data-s{seed}.json"

    def strategy_data(self, strategy: str, seed: int) -> Path:
        """The training records a data strategy chose for a seed (``train-s<seed>+select.jsonl``)."""
        return self.data_dir / f"train-s{seed}{STRATEGY_SEP}{strategy}.jsonl"

    def strategy_marker(self, strategy: str, seed: int) -> Path:
        """Fingerprint and summary of those records (``train-s<seed>+select.json``)."""
        return self.data_dir / f"train-s{seed}{STRATEGY_SEP}{strategy}.json"

    # ---- the start stage
    @property
    def start_dir(self) -> Path:
        return self.root / START

    @property
    def start_marker(self) -> Path:
        return self.start_dir / TRAIN_JSON

    @property
    def start_weights(self) -> Path:
        return self.start_dir / FULL_WEIGHTS

    # ---- jobs of a sweep on an executor (lorafair.run.sweep)
    @property
    def jobs_dir(self) -> Path:
        return self.root / JOBS

    @property
    def jobs_submitted(self) -> Path:
        """The jobs a sweep's driver submitted and that have not finished: job key -> the engine's job id."""
        return self.jobs_dir / SUBMITTED

    def job_log(self, kind: str, variant: str, seed: int) -> Path:
        """The log of one job of ``lorafair run --executor``: ``RUN/jobs/train-lora-r8-s0.log``."""
        return self.jobs_dir / f"{kind}-{variant_folder(variant, seed)}.log"

    # ---- variants
    def variant_dir(self, variant: str, seed: int) -> Path:
        """The folder of one variant and seed: ``RUN/lora-r8-s0``."""
        return self.root / variant_folder(variant, seed)

    def artifact(self, variant: str, seed: int, name: str) -> Path:
        """A file a study wrote into a variant's folder (``samples.jsonl``, ``shift_layers.json`` …)."""
        return self.variant_dir(variant, seed) / name

    def train_json(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / TRAIN_JSON

    def checkpoint_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / CHECKPOINT

    def adapter_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / ADAPTER

    def full_weights(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / FULL_WEIGHTS

    def hf_export_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / HF_EXPORT

    def trained_artifacts(self, variant: str, seed: int) -> list[Path]:
        """What a training (and its evaluations) leaves in the variant folder besides ``train.json``: removed
        when a new config of the variant fails, so an earlier config's results are not shown as its own."""
        d = self.variant_dir(variant, seed)
        return [d / ADAPTER, d / HF_EXPORT, d / FULL_WEIGHTS, d / RESULTS]

    def results_dir(self, variant: str, seed: int) -> Path:
        return self.variant_dir(variant, seed) / RESULTS

    def result_json(self, variant: str, seed: int, study: str) -> Path:
        return self.results_dir(variant, seed) / result_name(study)

    def items_npz(self, variant: str, seed: int, study: str) -> Path:
        return self.results_dir(variant, seed) / items_name(study)

    def samples_jsonl(self, variant: str, seed: int) -> Path:
        return self.artifact(variant, seed, SAMPLES)

    # ---- finished work (sorted, as the tables and the run-directory checks read it)
    def result_files(self) -> list[Path]:
        """Every ``results/<study>.json`` of every variant folder."""
        return sorted(self.root.glob(f"{_VARIANT_GLOB}/{RESULTS}/*.json"))

    def train_markers(self) -> list[Path]:
        """Every variant folder's ``train.json``."""
        return sorted(self.root.glob(f"{_VARIANT_GLOB}/{TRAIN_JSON}"))

    def extra_metric_files(self) -> list[Path]:
        return sorted(self.root.glob(f"{EXTRA_METRICS}/*.json"))

    def finished_pieces(self) -> list[Path]:
        """Markers of finished work: trainings, evaluations, the start stage."""
        return self.train_markers() + self.result_files() + sorted(self.root.glob(f"{START}/{TRAIN_JSON}"))

    def variant_folders(self) -> list[tuple[str, int, Path]]:
        """``(variant, seed, folder)`` of every variant folder, sorted by folder name."""
        out = []
        for p in sorted(self.root.iterdir()) if self.root.is_dir() else []:
            vs = parse_folder(p.name)
            if vs is not None and p.is_dir():
                out.append((vs[0], vs[1], p))
        return out


def fingerprint(obj) -> str:
    """The 16-hex-digit fingerprint of a JSON-able object (keys sorted) that marks a finished piece of a run:
    train.json, results/<study>.json, a seed's data, a strategy's records."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]
