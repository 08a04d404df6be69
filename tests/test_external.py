"""External variants (variants.external, `lorafair eval`): fine-tunes made elsewhere are evaluated exactly like the
variants lorafair trains, never trained; a finished run gains studies and external variants without training."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers_lf import hash_scorer
from lorafair.cli import main

# toxicity samples continuations: equal metrics mean the same items and the same random numbers
TOXICITY = {"prompts": {"source": "honest", "options": {"axis": "race", "split": "eval"}, "limit": 4},
            "scorer": hash_scorer("test-external-hash"), "k": 2, "max_new_tokens": 4, "batch_size": 8, "n_boot": 100,
            "perplexity_data": {"source": "bold-wiki", "options": {"split": "eval"}, "limit": 3},
            "perplexity_max_length": 32}
STUDIES = {"heldout": {"max_length": 32, "batch_size": 4, "n_boot": 100},
           "stereotypes": {"benchmarks": ["crows"], "limit": {"crows": 12}, "n_boot": 100, "batch_size": 8}}


def recipe(**variants) -> dict:
    return {"name": "ext", "model": {"source": "tiny:llama"}, "seeds": [0],
            "variants": variants or {"full": {"enabled": True, "lr": 1e-3}, "lora": {"ranks": [2], "lr": 1e-2}},
            "train": {"max_steps": 3, "batch_size": 4, "max_length": 32},
            "data": {"train": {"source": "bold-wiki", "limit": 24}, "holdout": 0.25},
            "studies": {"heldout": STUDIES["heldout"], "toxicity": TOXICITY},
            "output": {"save_full_weights": True, "report": False}}


def run(tmp: Path, rec: dict, out: Path) -> int:
    path = tmp / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(rec))
    return main(["run", str(path), "--out", str(out), "--quiet"])


def rows(out: Path) -> dict:
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        return {(r["variant"], r["study"], r["metric"], r["group"]): r for r in csv.DictReader(f)}


def metrics(out: Path, variant: str, study: str) -> list:
    return json.loads((out / f"{variant}-s0" / "results" / f"{study}.json").read_text())["metrics"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished run that trained full and lora-r2 (full also exported with save_pretrained)."""
    tmp = tmp_path_factory.mktemp("ext")
    out = tmp / "trained"
    assert run(tmp, recipe(), out) == 0
    assert (out / "full-s0" / "model" / "config.json").is_file() and (out / "lora-r2-s0" / "adapter").is_dir()
    return out


def no_training(monkeypatch):
    import lorafair.run.runner as R

    def refuse(*a, **k):
        raise AssertionError("a variant was trained")

    monkeypatch.setattr(R, "train_variant", refuse)


def test_external_adapter_and_full_equal_the_same_weights_trained_inside(trained, tmp_path, monkeypatch):
    """A run of base + the trained run's adapter and full checkpoint as external variants trains nothing and gets
    exactly the trained run's metrics, paired capture rows included."""
    no_training(monkeypatch)
    rec = recipe(external=[{"name": "lora-r2", "source": str(trained / "lora-r2-s0" / "adapter")},
                           {"name": "my-full", "source": f"hf:{trained / 'full-s0' / 'model'}", "role": "full"}])
    out = tmp_path / "audit"
    assert run(tmp_path, rec, out) == 0
    assert not list(out.glob("*/train.json"))
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["variants"]["full"]["enabled"] is False and cfg["variants"]["lora"]["ranks"] == []
    for v in ("base", "full", "lora-r2"):
        for study in ("heldout", "toxicity"):
            assert metrics(out, v, study) == metrics(trained, v, study), (v, study)
        assert (out / f"{v}-s0" / "samples.jsonl").read_text() == (trained / f"{v}-s0" / "samples.jsonl").read_text()
    res = json.loads((out / "lora-r2-s0" / "results" / "heldout.json").read_text())["variant"]
    assert res["method"] == "lora" and res["rank"] == 2 and len(res["digest"]) == 16  # read from adapter_config.json
    ours, theirs = rows(out), rows(trained)
    cap = ("lora-r2", "heldout", "capture_loss", "")
    assert ours[cap]["value"] == theirs[cap]["value"] != "" and ours[cap]["ci_low"] == theirs[cap]["ci_low"]


def test_adding_a_study_and_an_external_full_copy_to_a_finished_run_trains_nothing(trained, tmp_path, monkeypatch):
    """The finished run gains a study and an external copy of its own full weights: no training (the training
    function is refused and every train.json is untouched), and the copy's capture is exactly 1 [1, 1] on every
    defined target metric."""
    out = tmp_path / "grown"
    shutil.copytree(trained, out)
    markers = {p: p.stat().st_mtime_ns for p in out.glob("*/train.json")}
    assert len(markers) == 2
    no_training(monkeypatch)
    rec = recipe()
    rec["variants"]["external"] = [{"name": "full-copy", "source": f"hf:{trained / 'full-s0' / 'model'}"}]
    rec["variants"]["lora"] = {"ranks": [2], "lr": 1e-2}
    rec["studies"] = dict(STUDIES, toxicity=TOXICITY)
    assert run(tmp_path, rec, out) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/train.json")} == markers
    assert not (out / "full-copy-s0" / "train.json").exists()
    r = rows(out)
    caps = [x for k, x in r.items() if k[0] == "full-copy" and k[2].startswith("capture_") and not k[3]]
    defined = [x for x in caps if x["value"] != ""]
    assert ("full-copy", "heldout", "capture_loss", "") in r and r[("full-copy", "heldout", "capture_loss", "")]["value"]
    for x in defined:
        assert (float(x["value"]), float(x["ci_low"]), float(x["ci_high"])) == (1.0, 1.0, 1.0), x
    assert ("lora-r2", "stereotypes", "crows_stereotype_pct", "") in r  # the new study on a trained variant


def _peft_adapter(folder: Path, *, hidden: int = 64, use_dora: bool = False, rank: int = 3) -> Path:
    """A LoRA adapter saved with peft on a tiny llama of the given hidden size (64: tiny:llama's)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from lorafair.models.tiny import build_tiny

    if hidden == 64:
        model, _ = build_tiny("llama")
    else:
        model = LlamaForCausalLM(LlamaConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2, vocab_size=259))
    peft_model = get_peft_model(model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "v_proj"],
                                                  use_dora=use_dora))
    torch.manual_seed(1)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    peft_model.save_pretrained(folder)
    return folder


def _full_checkpoint(folder: Path) -> Path:
    """A full fine-tune of tiny:llama saved with transformers (its weights moved a little)."""
    import torch

    from lorafair.models.tiny import build_tiny

    model, _ = build_tiny("llama")
    torch.manual_seed(2)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def test_lorafair_eval_reads_method_and_rank_and_writes_a_resumable_recipe(tmp_path, monkeypatch, capsys):
    """base + an external full + external adapters, nothing trained: capture ratios and a recommendation."""
    no_training(monkeypatch)
    ad = _peft_adapter(tmp_path / "my-dora", use_dora=True)
    full = _full_checkpoint(tmp_path / "my-full")
    out = tmp_path / "eval"
    assert main(["eval", "tiny:llama", "--full", str(full), "--adapter", str(ad), "--adapter", f"dora-r3={ad}",
                 "--studies", "stereotypes", "--set", "studies.stereotypes.benchmarks=[crows]",
                 "--set", "studies.stereotypes.limit.crows=6", "--set", "studies.stereotypes.n_boot=100",
                 "--out", str(out), "--quiet"]) == 0
    assert "lorafair run" in capsys.readouterr().out
    assert not list(out.glob("*/train.json"))
    r = rows(out)
    assert ("dora-r3", "stereotypes", "capture_crows_stereotype_pct", "") in r
    assert ("full", "stereotypes", "delta_crows_stereotype_pct", "") in r
    assert "Rank recommendation" in (out / "report.md").read_text()
    for v in ("my-dora", "dora-r3"):
        res = json.loads((out / f"{v}-s0" / "results" / "stereotypes.json").read_text())
        assert (res["variant"]["method"], res["variant"]["rank"]) == ("dora", 3)
    a, b = metrics(out, "my-dora", "stereotypes"), metrics(out, "dora-r3", "stereotypes")
    assert a == b
    # the written recipe runs again into the directory: everything is reused
    res = {v: out / f"{v}-s0" / "results" / "stereotypes.json" for v in ("base", "my-dora")}
    mtimes = {v: p.stat().st_mtime_ns for v, p in res.items()}
    assert main(["run", str(out / "config.yaml"), "--out", str(out), "--quiet"]) == 0
    assert {v: p.stat().st_mtime_ns for v, p in res.items()} == mtimes
    # a changed adapter file is noticed (its fingerprint is a hash of its files)
    before = (out / "my-dora-s0" / "results" / "stereotypes.json").stat().st_mtime_ns
    digest = json.loads(res["my-dora"].read_text())["variant"]["digest"]
    cfg = json.loads((ad / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 12
    (ad / "adapter_config.json").write_text(json.dumps(cfg))
    assert main(["run", str(out / "config.yaml"), "--out", str(out), "--quiet"]) == 0
    assert (out / "my-dora-s0" / "results" / "stereotypes.json").stat().st_mtime_ns != before
    assert json.loads(res["my-dora"].read_text())["variant"]["digest"] != digest
    assert res["base"].stat().st_mtime_ns == mtimes["base"]


def _err(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_a_mismatched_adapter_is_refused_naming_both(tmp_path, capsys):
    ad = _peft_adapter(tmp_path / "wide", hidden=32)
    out = tmp_path / "out"
    line = _err(capsys, ["eval", "tiny:llama", "--adapter", f"lora-r3={ad}", "--studies", "stereotypes", "--out", str(out), "--quiet"])
    assert "variants.external[0].source=" in line and "tiny:llama" in line and "base_model_name_or_path" in line
    assert "q_proj" in line and "needs" in line
    assert not out.exists()  # refused before anything is written


@pytest.mark.parametrize("case,expect", [
    ("pickle", "set model.allow_pickle: true"),
    ("missing", "no such folder"),
    ("rank", "variants.external[0].rank=5: expected 3"),
    ("name", "variants.external[0].name='lora-r8': expected lora-r3 or a name not of the form"),
    ("method", "variants.external[0].method='dora': expected lora"),
    ("notlora", "peft_type LORA"),
])
def test_bad_external_sources(tmp_path, capsys, case, expect):
    ad = _peft_adapter(tmp_path / "ad")
    entry = {"name": "ext", "source": str(ad)}
    if case == "pickle":
        (ad / "adapter_model.safetensors").rename(ad / "adapter_model.bin")
    elif case == "missing":
        entry["source"] = str(tmp_path / "nope")
    elif case == "rank":
        entry["rank"] = 5
    elif case == "name":
        entry["name"] = "lora-r8"
    elif case == "method":
        entry["method"] = "dora"
    elif case == "notlora":
        cfg = json.loads((ad / "adapter_config.json").read_text())
        (ad / "adapter_config.json").write_text(json.dumps(cfg | {"peft_type": "IA3"}))
    rec = {"model": {"source": "tiny:llama"}, "variants": {"external": [entry]}, "studies": {"stereotypes": {}}}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(rec))
    assert expect in _err(capsys, ["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o")])


def test_eval_adapter_names_must_differ(tmp_path, capsys):
    a, b = tmp_path / "x" / "adapter", tmp_path / "y" / "adapter"
    line = _err(capsys, ["eval", "tiny:llama", "--adapter", str(a), "--adapter", str(b), "--studies", "stereotypes",
                         "--out", str(tmp_path / "o"), "--quiet"])
    assert line == f"error: --adapter='{b}': expected distinct adapter names other than base and full ('adapter' is " \
                   "taken: give NAME=SRC)"


@pytest.mark.parametrize("variants,studies,expect", [
    ({"external": [{"name": "full", "source": "x"}]}, {"stereotypes": {}}, "which another variant of the run has"),
    ({"full": {"enabled": True}, "external": [{"name": "f", "source": "hf:x", "role": "full"}]}, {"stereotypes": {}},
     "set variants.full.enabled: false"),
    ({"external": [{"name": "a", "source": "x"}]}, {"heldout": {}}, "studies.heldout: expected a data section"),
    ({"external": [{"name": "a", "source": "x"}]}, {"shift": {}}, "studies.shift.data: expected a data spec"),
    ({"lora": {"ranks": [2]}}, {"stereotypes": {}}, "data: required field is missing (variants lora-r2 train on it"),
])
def test_recipe_checks(tmp_path, capsys, variants, studies, expect):
    rec = {"model": {"source": "tiny:llama"}, "variants": variants, "studies": studies}
    if "lora" in variants:
        rec["variants"]["full"] = {"enabled": False}
    (tmp_path / "r.yaml").write_text(yaml.safe_dump(rec))
    assert expect in _err(capsys, ["run", str(tmp_path / "r.yaml"), "--out", str(tmp_path / "o")])


def test_a_full_checkpoint_of_another_shape_is_refused_naming_both(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = tmp_path / "wide-full"
    LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                 num_key_value_heads=2, vocab_size=259)).save_pretrained(folder)
    capsys.readouterr()  # save_pretrained's progress bar
    line = _err(capsys, ["eval", "tiny:llama", "--full", str(folder), "--studies", "stereotypes",
                         "--out", str(tmp_path / "o"), "--quiet"])
    assert line.startswith(f"error: variants.external[0].source='hf:{folder}': expected a checkpoint of the base model "
                           "tiny:llama (its model.embed_tokens.weight has shape (259, 32), the base model's (259, 64))"), line


@pytest.mark.parametrize("method", ["lora", "dora", "rslora", "pissa"])
def test_the_method_of_a_saved_lora_config(method):
    """method_of_lora_config reads back every registered method from the LoraConfig peft saves for it."""
    from lorafair.adapt.peft_methods import peft_config
    from lorafair.methods import method_of_lora_config

    cfg = json.loads(json.dumps(peft_config(method, 4, 8.0, 0.0, ["q_proj"]).to_dict(), default=str))
    assert method_of_lora_config(cfg) == method
    assert method_of_lora_config({"init_lora_weights": "pissa_niter_16"}) == "pissa"
