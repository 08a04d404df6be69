"""Read a run directory into plain Python objects, tolerating whatever is missing.

The run directory format is fixed in ``docs/architecture.md``: ``metrics.csv`` (one row per
variant × seed × study × metric × group), ``config.yaml``, ``run_info.json`` and one folder
per variant and seed (``<variant>-s<seed>/``) holding study artifacts. Every file except
``metrics.csv`` is optional; a malformed optional file is skipped with a note in
:attr:`RunData.notes` rather than breaking the report. The names (metrics.csv columns, variant and
folder names, the ``train`` status rows) are those of :mod:`lorafair.run.layout`.

Several seeds of one variant are pooled into one :class:`Estimate` by :func:`pool_seeds`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from lorafair.errors import UserError
from lorafair.methods import peft_methods
from lorafair.run.layout import (COLUMNS, METRIC_ROLES, STUDY_KEY, TRAIN_STATUS, parse_folder, parse_variant,
                                 split_strategy)

__all__ = ["Estimate", "MetricRecord", "RunData", "VariantArtifacts", "load_run", "parse_variant", "pool_seeds",
           "read_metrics_csv", "sort_variants"]

Z95 = 1.959963984540054  # two-sided 95% normal quantile



def _float(s: Any) -> float:
    if s is None:
        return float("nan")
    s = str(s).strip()
    if s == "" or s.lower() in ("nan", "none", "null"):
        return float("nan")
    try:
        return float(s)
    except ValueError:
        return float("nan")


def _int_or_none(s: Any) -> Optional[int]:
    v = _float(s)
    return int(v) if math.isfinite(v) else None


@dataclass(frozen=True)
class Estimate:
    """A point value with its 95% interval (``nan`` when unknown) and the number of items behind it."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n: Optional[int] = None
    seeds: int = 1

    @property
    def has_ci(self) -> bool:
        return not (math.isnan(self.ci_low) or math.isnan(self.ci_high))

    @property
    def se(self) -> float:
        """Standard error implied by the interval, assuming it is a normal 95% interval (nan without one)."""
        if not self.has_ci:
            return float("nan")
        return max(self.ci_high - self.ci_low, 0.0) / (2 * Z95)


@dataclass(frozen=True)
class MetricRecord:
    variant: str
    method: str
    rank: Optional[int]
    seed: int
    study: str
    metric: str
    group: str
    est: Estimate
    note: str = ""


def pool_seeds(ests: list[Estimate]) -> Estimate:
    """Pool one variant's estimates over seeds into one estimate of the mean over seeds.

    One seed: returned unchanged. ``k`` seeds with values ``v_i``: value = mean(v_i). Each seed's
    value already varies by its own within-seed noise (its sampled continuations, its training
    order, its held-out split), so the sample variance ``s²`` of the k values estimates the *whole*
    variance of one seed's value, and the variance of the mean is ``s² / k``; adding the within-seed
    variances on top would count them twice. The interval uses Student's t with k − 1 degrees of
    freedom, value ± t_{0.975, k−1} · s / sqrt(k), exact for normal seed values: two seeds give a wide
    interval (t = 12.7), which is what two seeds can say. When the k values are identical (s = 0) the
    within-seed part ``sum(se_i²) / k²`` (se_i from each seed's 95% interval) is used instead.
    """
    ests = [e for e in ests if not math.isnan(e.value)]
    if not ests:
        return Estimate(float("nan"), seeds=0)
    if len(ests) == 1:
        return ests[0]
    k = len(ests)
    vals = [e.value for e in ests]
    mean = sum(vals) / k
    between = sum((v - mean) ** 2 for v in vals) / (k - 1) / k
    ses = [e.se for e in ests]
    within = sum(s * s for s in ses) / k**2 if all(not math.isnan(s) for s in ses) else 0.0
    half = t_quantile(0.975, k - 1) * math.sqrt(between if between > 0 else within)
    ns = [e.n for e in ests if e.n is not None]
    return Estimate(mean, mean - half, mean + half, sum(ns) if ns else None, seeds=k)


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (scipy)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


@dataclass
class VariantArtifacts:
    """Files of one ``<variant>-s<seed>/`` folder that the report draws (each may be absent)."""

    variant: str
    seed: int
    folder: Path
    samples: list[dict] = field(default_factory=list)  # toxicity samples.jsonl
    shift_layers: Any = None  # shift_layers.json, structure owned by the shift study
    trajectory: Optional[dict] = None  # decisions_trajectory.json
    train: Optional[dict] = None  # train.json
    results_info: dict[str, dict] = field(default_factory=dict)  # study -> results/<study>.json "info"


@dataclass
class RunData:
    """Everything the report needs from one run directory."""

    run_dir: Path
    name: str
    records: list[MetricRecord]
    config_text: str = ""
    config: dict = field(default_factory=dict)
    run_info: dict = field(default_factory=dict)
    artifacts: dict[tuple[str, int], VariantArtifacts] = field(default_factory=dict)
    spectrum: Any = None
    notes: list[str] = field(default_factory=list)
    roles: dict = field(default_factory=dict)  # metric_roles.json: study -> metric -> role/direction/ideal/…
    study_decl: dict = field(default_factory=dict)  # metric_roles.json: study -> its "_study" entry (checked)

    # -- views ---------------------------------------------------------------------------
    def studies(self) -> list[str]:
        """Studies in the order they first appear in metrics.csv (not the runner's ``train`` status rows)."""
        return list(dict.fromkeys(r.study for r in self.records if r.study != TRAIN_STATUS))

    def failed(self) -> list[tuple[str, int, str]]:
        """(variant, seed, note) of every variant whose training failed (metrics.csv ``train``/``status`` rows)."""
        return [(r.variant, r.seed, r.note) for r in self.records if r.study == TRAIN_STATUS and r.metric == "status"]

    def variants(self) -> list[str]:
        """Variant names sorted base, then each method by rank, then full."""
        return sort_variants({r.variant for r in self.records} | {v for v, _ in self.artifacts})

    def seeds(self) -> list[int]:
        return sorted({r.seed for r in self.records} | {s for _, s in self.artifacts})

    def metrics(self, study: str) -> list[str]:
        return list(dict.fromkeys(r.metric for r in self.records if r.study == study))

    def groups(self, study: str, metric: str) -> list[str]:
        return list(dict.fromkeys(r.group for r in self.records if r.study == study and r.metric == metric and r.group))

    def estimate(self, study: str, metric: str, variant: str, group: str = "") -> Optional[Estimate]:
        """The seed-pooled estimate of one metric of one variant, or None when not measured."""
        ests = [r.est for r in self.records
                if r.study == study and r.metric == metric and r.variant == variant and r.group == group]
        if not ests:
            return None
        e = pool_seeds(ests)
        return None if math.isnan(e.value) else e

    def note(self, study: str, metric: str, variant: str, group: str = "") -> str:
        """Why a metric is missing for a variant (the ``note`` of its rows), "" when it has none."""
        notes = [r.note for r in self.records if r.study == study and r.metric == metric and r.variant == variant
                 and r.group == group and r.note]
        return "; ".join(dict.fromkeys(notes))

    def ranked_methods(self) -> list[str]:
        """Methods that come with a rank (the first registered method, LoRA, first; then the others alphabetically)."""
        ms = {parse_variant(v)[0] for v in self.variants() if parse_variant(v)[1] is not None}
        return sorted(ms, key=lambda m: (m != _PRIMARY, m))

    def strategies(self) -> list[str]:
        """The strategies of the run's strategy variants (``lora-r8+cfreg`` -> ``cfreg``), in variant order."""
        return list(dict.fromkeys(s for v in self.variants() if (s := split_strategy(v)[1])))

    def ranks(self, method: str) -> list[int]:
        return sorted({r for v in self.variants() for m, r in [parse_variant(v)] if m == method and r is not None})

    def artifact(self, variant: str) -> Optional[VariantArtifacts]:
        """The artifacts of a variant at its smallest seed."""
        seeds = sorted(s for v, s in self.artifacts if v == variant)
        return self.artifacts[(variant, seeds[0])] if seeds else None

    def study_info(self, study: str) -> dict:
        """The ``info`` dict of results/<study>.json of the first variant that has one."""
        for v in self.variants():
            a = self.artifact(v)
            if a and study in a.results_info:
                return a.results_info[study]
        return {}


_PRIMARY = peft_methods()[0]  # the method the report lists first (LoRA: registered first in lorafair.methods)


# an instance of a list lam: <key>_lam<λ> with "." -> "p", "-" -> "m" (lorafair.strategies.lam_suffix)
_LAM_RE = re.compile(r"(?P<key>[a-z0-9_]+)_lam(?P<lam>\d+(?:p\d+)?(?:em?\d+)?)")


def _strategy_key(strategy: str) -> tuple[str, float]:
    """Strategies by name, the instances of one list lam by their λ."""
    m = _LAM_RE.fullmatch(strategy)
    if not m:
        return (strategy, -1.0)
    return (m.group("key"), float(m.group("lam").replace("p", ".").replace("m", "-")))


def sort_variants(names: Iterable[str]) -> list[str]:
    """base first, full last, ranked variants grouped by method (lora first) and sorted by rank; a strategy variant
    (lora-r8+cfreg, full+cfreg) right after its plain one, the instances of a list lam by λ (lora-r8+cfreg_lam0p5
    before lora-r8+cfreg_lam2 and lora-r8+cfreg_lam10)."""

    def key(name: str):
        method, rank = parse_variant(name)
        plain, strategy = split_strategy(name)  # full+cfreg next to full
        s = _strategy_key(strategy)
        if plain == "base":
            return (0, "", 0, s, name)
        if plain == "full":
            return (3, "", 0, s, name)
        if rank is None:
            return (2, method, 0, s, name)
        return (1, "" if method == _PRIMARY else method, rank, s, name)

    return sorted(set(names), key=key)


# -- reading ---------------------------------------------------------------------------------

def read_metrics_csv(path: Path, notes: Optional[list[str]] = None) -> list[MetricRecord]:
    """Parse metrics.csv. Missing columns other than variant/study/metric/value are tolerated; a
    row without a variant, study or metric is skipped (counted in ``notes``). A file that cannot
    be read, is not UTF-8 text or is not CSV is a :class:`UserError` naming the file and the line."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserError("metrics.csv", str(path), f"a readable file ({e.strerror or type(e).__name__})") from None
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM (spreadsheet exports)
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise UserError("metrics.csv", str(path), f"UTF-8 text (byte {data[e.start]:#04x} on line {line} is "
                        "not UTF-8)") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return _metric_records(reader, path, notes)
    except csv.Error as e:
        raise UserError("metrics.csv", str(path), f"a valid CSV file ({e} on line {reader.line_num})") from None


def _metric_records(reader: csv.DictReader, path: Path, notes: Optional[list[str]]) -> list[MetricRecord]:
    cols = {c.strip() for c in (reader.fieldnames or []) if isinstance(c, str)}
    needed = {"variant", "study", "metric", "value"}
    if not needed <= cols:
        raise UserError("metrics.csv", str(path), f"a CSV with columns {', '.join(COLUMNS)} "
                        f"(missing {', '.join(sorted(needed - cols))})")
    out = []
    skipped = 0
    for row in reader:
        row = {(k.strip() if isinstance(k, str) else k): (v if isinstance(v, str) else None) for k, v in row.items()}
        variant = (row.get("variant") or "").strip()
        if not variant:
            continue
        if not (row.get("study") or "").strip() or not (row.get("metric") or "").strip():
            skipped += 1
            continue
        pm, pr = parse_variant(variant)
        method = (row.get("method") or "").strip() or pm
        rank = _int_or_none(row.get("rank"))
        rank = pr if rank is None else rank
        out.append(MetricRecord(
            variant=variant, method=method, rank=rank, seed=_int_or_none(row.get("seed")) or 0,
            study=(row.get("study") or "").strip(), metric=(row.get("metric") or "").strip(),
            group=(row.get("group") or "").strip(),
            est=Estimate(_float(row.get("value")), _float(row.get("ci_low")), _float(row.get("ci_high")),
                         _int_or_none(row.get("n"))),
            note=(row.get("note") or "").strip(),
        ))
    if skipped and notes is not None:
        notes.append(f"skipped {skipped} row(s) of metrics.csv without a study or metric")
    return out


def _read_json(path: Path, notes: list[str]) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        notes.append(f"skipped {path.name} in {path.parent.name}: {type(e).__name__}")
        return None


def _read_jsonl(path: Path, notes: list[str]) -> list[dict]:
    """The JSON objects of a jsonl file; a line that is not UTF-8 or not JSON is skipped with a note."""
    rows = []
    bad = 0
    try:
        with open(path, "rb") as f:
            for raw in f:
                try:
                    line = raw.decode("utf-8").strip()
                    if not line:
                        continue
                    obj = json.loads(line)
                except (ValueError, RecursionError):  # not UTF-8, not JSON, nested too deep
                    bad += 1
                    continue
                if isinstance(obj, dict):
                    rows.append(obj)
    except OSError as e:
        notes.append(f"skipped {path.parent.name}/{path.name}: {type(e).__name__}")
    if bad:
        notes.append(f"skipped {bad} malformed line(s) of {path.parent.name}/{path.name}")
    return rows


def _has_yaml_aliases(text: str) -> bool:
    """Whether YAML text uses aliases (``*name``): expanding them can blow up ("billion laughs"),
    and a resolved config.yaml written by lorafair has none."""
    import yaml

    return any(isinstance(ev, yaml.AliasEvent) for ev in yaml.parse(text, Loader=yaml.SafeLoader))


def _finite_duration(v: Any) -> Any:
    """A wall time as a finite number of seconds, or as text when it is not one (nan, inf, huge)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return v
    try:
        ok = math.isfinite(float(v)) and abs(v) < 1e12
    except OverflowError:
        ok = False
    return v if ok else str(v)


def read_roles(obj: Any, notes: list[str]) -> tuple[dict, dict]:
    """The metric entries (study -> metric -> dict) and the study entries (study -> ``_study`` dict) of a
    parsed metric_roles.json. Anything not of the documented shape is left out and named in ``notes``."""
    if not isinstance(obj, dict):
        notes.append(f"{METRIC_ROLES} is not a JSON object: ignored (roles and directions unknown)")
        return {}, {}
    roles: dict[str, dict] = {}
    decl: dict[str, dict] = {}
    for st, ms in obj.items():
        if not isinstance(ms, dict):
            notes.append(f"{METRIC_ROLES}: the entry of study {st} is not an object: ignored")
            continue
        roles[str(st)] = {}
        for m, r in ms.items():
            if m == STUDY_KEY:
                decl[str(st)] = _study_entry(str(st), r, notes)
            elif isinstance(r, dict):
                roles[str(st)][str(m)] = r
            else:
                notes.append(f"{METRIC_ROLES}: the entry of {st}/{m} is not an object: ignored")
    return roles, decl


def _study_entry(study: str, r: Any, notes: list[str]) -> dict:
    """A study's ``_study`` entry with only the keys of the documented types (the others named in ``notes``)."""
    if not isinstance(r, dict):
        notes.append(f"{METRIC_ROLES}: {study}/{STUDY_KEY} is not an object: ignored")
        return {}
    out: dict = {}
    for key in ("title", "description"):
        if key in r:
            if isinstance(r[key], str):
                out[key] = r[key]
            else:
                notes.append(f"{METRIC_ROLES}: {study}/{STUDY_KEY}/{key} is not a string: ignored")
    if "headline" in r:
        h = r["headline"]
        if isinstance(h, list) and all(isinstance(m, str) for m in h):
            out["headline"] = list(h)
        else:
            notes.append(f"{METRIC_ROLES}: {study}/{STUDY_KEY}/headline is not a list of metric names: ignored")
    return out


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory. Raises :class:`UserError` when it is not one (no metrics.csv)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError("run_dir", str(run_dir), "an existing run directory")
    mpath = run_dir / "metrics.csv"
    if not mpath.is_file():
        raise UserError("run_dir", str(run_dir), "a run directory containing metrics.csv (run `lorafair run` first)")
    notes: list[str] = []
    records = read_metrics_csv(mpath, notes)
    if not records:
        raise UserError("metrics.csv", str(mpath), "at least one metric row (it has a header only, or no row "
                        "names a variant, study and metric)")
    data = RunData(run_dir=run_dir, name=run_dir.resolve().name, records=records, notes=notes)

    cfg = run_dir / "config.yaml"
    if cfg.is_file():
        data.config_text = cfg.read_text(encoding="utf-8", errors="replace")
        import yaml

        try:
            if _has_yaml_aliases(data.config_text):
                data.notes.append("config.yaml uses YAML aliases: shown as text only")
            else:
                parsed = yaml.safe_load(data.config_text)
                data.config = parsed if isinstance(parsed, dict) else {}
                if parsed is not None and not isinstance(parsed, dict):
                    data.notes.append("config.yaml is not a mapping: shown as text only")
        except (yaml.YAMLError, ValueError, RecursionError) as e:  # malformed: shown as text, named in Notes
            data.notes.append(f"config.yaml could not be parsed: {type(e).__name__}")
    info = run_dir / "run_info.json"
    if info.is_file():
        obj = _read_json(info, data.notes)
        data.run_info = obj if isinstance(obj, dict) else {}
        if obj is not None and not isinstance(obj, dict):
            data.notes.append("run_info.json is not a JSON object: ignored")
        if "wall_time_s" in data.run_info:
            data.run_info["wall_time_s"] = _finite_duration(data.run_info["wall_time_s"])
    roles = run_dir / METRIC_ROLES
    if roles.is_file():
        obj = _read_json(roles, data.notes)
        if obj is not None:
            data.roles, data.study_decl = read_roles(obj, data.notes)
    spec = run_dir / "spectrum.json"
    if spec.is_file():
        data.spectrum = _read_json(spec, data.notes)

    for sub in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        parsed = parse_folder(sub.name)
        if parsed is None:
            continue
        art = VariantArtifacts(variant=parsed[0], seed=parsed[1], folder=sub)
        if (sub / "samples.jsonl").is_file():
            art.samples = _read_jsonl(sub / "samples.jsonl", data.notes)
        if (sub / "shift_layers.json").is_file():
            art.shift_layers = _read_json(sub / "shift_layers.json", data.notes)
        if (sub / "decisions_trajectory.json").is_file():
            t = _read_json(sub / "decisions_trajectory.json", data.notes)
            art.trajectory = t if isinstance(t, dict) else None
        if (sub / "train.json").is_file():
            t = _read_json(sub / "train.json", data.notes)
            art.train = t if isinstance(t, dict) else None
        rdir = sub / "results"
        if rdir.is_dir():
            for rp in sorted(rdir.glob("*.json")):
                obj = _read_json(rp, data.notes)
                if isinstance(obj, dict) and isinstance(obj.get("info"), dict):
                    art.results_info[rp.stem] = obj["info"]
        data.artifacts[(art.variant, art.seed)] = art
    return data
