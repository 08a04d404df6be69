"""run/layout.py owns the run directory: every file a run writes is a RunLayout path; studies reach other
variants' artifacts and run-level files through EvalContext (never by joining paths), and the runner makes
one instance of each study per run."""

import logging
from pathlib import Path

import pytest

from lorafair.run.layout import RunLayout, parse_folder, parse_variant, variant_folder, variant_name
from lorafair.studies.base import EvalContext, VariantInfo, metric_specs

from helpers_lf import TINY, deep_update


def test_paths(tmp_path):
    lay = RunLayout(tmp_path)
    assert RunLayout.of(lay) is lay and RunLayout.of(tmp_path) == lay
    assert lay.config_yaml == tmp_path / "config.yaml" and lay.run_log == tmp_path / "run.log"
    assert lay.lock == tmp_path / ".lock" and lay.metrics_csv == tmp_path / "metrics.csv"
    assert lay.summary_md == tmp_path / "summary.md" and lay.run_info_json == tmp_path / "run_info.json"
    assert lay.metric_roles_json == tmp_path / "metric_roles.json" and lay.spectrum_json == tmp_path / "spectrum.json"
    assert lay.extra_metrics("decisions") == tmp_path / "extra_metrics" / "decisions.json"
    assert lay.paired_metrics("shift") == tmp_path / "extra_metrics" / "paired-shift.json"
    assert lay.train_data(3) == tmp_path / "data" / "train-s3.jsonl"
    assert lay.heldout_data(3) == tmp_path / "data" / "heldout-s3.jsonl"
    assert lay.data_marker(3) == tmp_path / "data" / "data-s3.json"
    assert lay.start_marker == tmp_path / "start" / "train.json" and lay.start_weights == tmp_path / "start" / "model.safetensors"
    d = tmp_path / "lora-r8-s1"
    assert lay.variant_dir("lora-r8", 1) == d
    assert lay.train_json("lora-r8", 1) == d / "train.json" and lay.checkpoint_dir("lora-r8", 1) == d / "checkpoint"
    assert lay.adapter_dir("lora-r8", 1) == d / "adapter" and lay.full_weights("full", 0) == tmp_path / "full-s0" / "model.safetensors"
    assert lay.hf_export_dir("full", 0) == tmp_path / "full-s0" / "model"
    assert lay.result_json("lora-r8", 1, "toxicity") == d / "results" / "toxicity.json"
    assert lay.items_npz("lora-r8", 1, "toxicity") == d / "results" / "toxicity.items.npz"
    assert lay.samples_jsonl("base", 0) == tmp_path / "base-s0" / "samples.jsonl"


def test_names_round_trip():
    for method, rank in (("lora", 8), ("pissa", 1), ("base", None), ("full", None)):
        name = variant_name(method, rank)
        assert parse_variant(name) == (method, rank)
        assert parse_folder(variant_folder(name, 12)) == (name, 12)
    assert parse_folder("extra_metrics") is None and parse_folder("data") is None


def test_finished_pieces_and_variant_folders(tmp_path):
    lay = RunLayout(tmp_path)
    for p in (lay.train_json("lora-r2", 0), lay.result_json("base", 0, "heldout"), lay.start_marker,
              lay.extra_metrics("x"), lay.train_data(0)):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("{}")
    assert lay.finished_pieces() == [lay.train_json("lora-r2", 0), lay.result_json("base", 0, "heldout"), lay.start_marker]
    assert [(v, s) for v, s, _ in lay.variant_folders()] == [("base", 0), ("lora-r2", 0)]
    from lorafair.run.rundir import finished_pieces

    assert finished_pieces(tmp_path) == lay.finished_pieces()


def _ctx(out_dir, variant, layout=None, seed=0):
    return EvalContext(model=None, tokenizer=None, device="cpu", variant=variant, seed=seed, out_dir=out_dir, config=None,
                       study_config=None, log=logging.getLogger("t"), layout=layout)


def test_eval_context_reaches_other_variants_through_the_layout(tmp_path):
    lay = RunLayout(tmp_path / "run")
    ctx = _ctx(lay.variant_dir("dora-r4", 2), VariantInfo("dora-r4", "dora", 4), lay, seed=2)
    assert ctx.reference_file("base", "samples.jsonl") == lay.samples_jsonl("base", 2)
    assert ctx.run_file("spectrum.json") == lay.spectrum_json and ctx.run_dir == lay.root
    # a context built by hand (no layout): out_dir's parent is the run, folders are named like out_dir
    bare = _ctx(tmp_path / "r" / "lora-r1-s0", VariantInfo("lora-r1", "lora", 1))
    assert bare.reference_file("base", "samples.jsonl") == tmp_path / "r" / "base-s0" / "samples.jsonl"
    assert bare.run_file("spectrum.json") == tmp_path / "r" / "spectrum.json" and bare.run_dir == tmp_path / "r"


def _lower(cls) -> set[str]:
    return {m for m, s in metric_specs(cls).items() if s.direction == "lower"}


def test_directions_are_declared_once_in_the_metric_specs():
    from lorafair.studies.heldout import HeldoutStudy
    from lorafair.studies.shift import ShiftStudy

    assert _lower(HeldoutStudy) == {"loss", "perplexity"}
    assert {"kl_full_v", "kl_v_full", "js_full_v"} <= _lower(ShiftStudy)
    assert "kl_v_base" not in _lower(ShiftStudy)


def test_shift_keeps_its_run_state_on_the_instance():
    import lorafair.studies.shift.study as S

    assert not hasattr(S, "_SPECTRUM_CACHE") and not hasattr(S, "_TOXIC_IDS")
    a, b = S.ShiftStudy(), S.ShiftStudy()
    a._spectrum_cache["k"] = 1
    assert b._spectrum_cache == {}


def test_no_study_imports_the_runner_package():
    src = Path(__file__).resolve().parents[1] / "src" / "lorafair" / "studies"
    bad = [str(p) for p in src.rglob("*.py")
           if any(line.strip().startswith(("import lorafair.run", "from lorafair.run"))
                  for line in p.read_text(encoding="utf-8").splitlines())]
    assert not bad


def test_a_run_writes_only_layout_paths_and_makes_each_study_once(tmp_path, monkeypatch):
    """Two seeds, three variants: one study instance; every context carries the run's layout; every file of
    the run directory is a path of the layout (adapter folders: their contents)."""
    import lorafair.run.runner as runner
    from lorafair.config.load import validate_config
    from lorafair.studies.heldout import HeldoutStudy

    made, seen = [], []

    class Counting(HeldoutStudy):
        def __init__(self):
            made.append(self)

        def evaluate(self, ctx):
            seen.append((ctx.layout, ctx.out_dir, ctx.variant.name, ctx.seed))
            return super().evaluate(ctx)

    monkeypatch.setattr(runner, "study_class", lambda name: Counting)
    cfg = validate_config(deep_update(TINY, {"seeds": [0, 1], "variants": {"full": {"enabled": False}, "lora": {"ranks": [1, 2]}},
                                             "train": {"max_steps": 2}, "output": {"report": False}}))
    out = runner.Runner(cfg, tmp_path / "run", quiet=True).run()
    assert len(made) == 1
    lay = RunLayout(out)
    assert len(seen) == 6 and all(l == lay and d == lay.variant_dir(v, s) for l, d, v, s in seen)
    known = {lay.config_yaml, lay.run_log, lay.lock, lay.metrics_csv, lay.summary_md, lay.run_info_json,
             lay.metric_roles_json, lay.paired_metrics("heldout")}
    for seed in (0, 1):
        known |= {lay.train_data(seed), lay.heldout_data(seed), lay.data_marker(seed)}
        for v in ("base", "lora-r1", "lora-r2"):
            known |= {lay.result_json(v, seed, "heldout"), lay.items_npz(v, seed, "heldout")}
            if v != "base":
                known.add(lay.train_json(v, seed))
    files = {p for p in out.rglob("*") if p.is_file()}
    adapters = {p for p in files if any(lay.adapter_dir(v, s) in p.parents for v in ("lora-r1", "lora-r2") for s in (0, 1))}
    assert files - adapters == known
    assert all((lay.adapter_dir(v, s) / "adapter_model.safetensors") in adapters for v in ("lora-r1", "lora-r2") for s in (0, 1))
