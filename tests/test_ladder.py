"""The variant ladder end to end on a tiny model: every PEFT method, lr grid, run directory, resume."""

import csv
import json

import pytest
import torch

from lorafair.adapt.tokenize import IGNORE, encode_record
from lorafair.config.load import validate_config
from lorafair.models.tiny import build_tiny
from lorafair.run.runner import Runner
from helpers_lf import TINY, deep_update


def test_completion_only_labels():
    _, tok = build_tiny("llama")
    e = encode_record({"prompt": "Q: hi", "completion": " yes"}, tok, 64)
    n_prompt = len(tok("Q: hi")["input_ids"])
    assert e["labels"][:n_prompt] == [IGNORE] * n_prompt
    assert e["labels"][n_prompt:] == e["input_ids"][n_prompt:]
    assert e["input_ids"][-1] == tok.eos_token_id
    t = encode_record({"text": "abc"}, tok, 64)
    assert t["labels"] == t["input_ids"]
    assert len(encode_record({"text": "x" * 500}, tok, 16)["input_ids"]) == 16
    long = encode_record({"prompt": "p" * 100, "completion": " yes"}, tok, 16)
    assert len(long["input_ids"]) == 16 and tok.decode(long["input_ids"][-5:-1]) == " yes"
    assert long["labels"][-5:] == long["input_ids"][-5:] and long["labels"][0] == IGNORE


def test_ladder_all_methods(tmp_path):
    cfg = validate_config(deep_update(TINY, {
        "variants": {"lora": {"ranks": [1, 2]}, "dora": {"ranks": [2]}, "rslora": {"ranks": [2]}, "pissa": {"ranks": [2]}},
        "output": {"save_full_weights": True},
        # fp32 training, so the eval loss recorded at training time is the held-out study's (which scores in fp32);
        # under bf16 autocast (precision auto on hardware with native bf16) they differ by bf16 rounding
        "train": {"precision": "fp32"},
    }))
    out = Runner(cfg, tmp_path / "run", quiet=True).run()
    names = sorted(p.name for p in out.glob("*-s0"))
    assert names == ["base-s0", "dora-r2-s0", "full-s0", "lora-r1-s0", "lora-r2-s0", "pissa-r2-s0", "rslora-r2-s0"]
    for n in names:
        if n not in ("base-s0", "full-s0"):
            assert (out / n / "adapter" / "adapter_model.safetensors").is_file()
            ac = json.loads((out / n / "adapter" / "adapter_config.json").read_text())
            m = n.split("-")[0]
            assert ac["use_dora"] == (m == "dora") and ac["use_rslora"] == (m == "rslora")
            assert (ac["init_lora_weights"] == "pissa") == (m == "pissa")
            assert ac["lora_alpha"] == 2 * ac["r"]
    assert (out / "full-s0" / "model.safetensors").is_file()
    from lorafair.models.sources import load_model

    exported, _ = load_model(f"hf:{out / 'full-s0' / 'model'}")  # save_full_weights: a folder loadable as hf:
    assert exported.config.num_hidden_layers == 2
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert set(rows[0]) >= {"variant", "method", "rank", "seed", "study", "metric", "value", "ci_low", "ci_high", "n"}
    loss = {r["variant"]: float(r["value"]) for r in rows if r["metric"] == "loss"}
    assert len(loss) == 7
    # training on the data lowers the held-out loss of every trained variant below the base model's
    assert all(loss[v] < loss["base"] for v in loss if v != "base"), loss
    for r in rows:
        if r["metric"] == "loss":
            assert float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"])
            assert int(r["n"]) == 6
    # the trained model's eval loss recorded at training time equals the study's held-out loss (same data, same code)
    tj = json.loads((out / "lora-r2-s0" / "train.json").read_text())
    assert abs(tj["eval_loss"] - loss["lora-r2"]) < 1e-4
    assert (out / "summary.md").read_text().count("| lora-r") == 2
    cfg_back = validate_config(__import__("yaml").safe_load((out / "config.yaml").read_text()))
    assert cfg_back.variants.dora.ranks == [2]
    info = json.loads((out / "run_info.json").read_text())
    assert info["versions"]["torch"] and info["training"]["full-s0"]["tokens_per_s"] > 0
    assert info["training"]["full-s0"]["precision"] == "fp32"  # as asked (auto's choice: test_train_speed_levers)
    phases = info["phases"]
    assert list(phases) == ["load", "start", "train", "evaluate", "summarise"]
    assert all(p["wall_s"] >= 0 and p["peak_rss_mb"] > 0 for p in phases.values())
    assert phases["train"]["wall_s"] > phases["start"]["wall_s"]  # no start stage in this recipe


def test_same_data_order_and_rerun_is_identical(tmp_path):
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [2]}}}))
    a = Runner(cfg, tmp_path / "a", quiet=True).run()
    b = Runner(cfg, tmp_path / "b", quiet=True).run()
    assert (a / "metrics.csv").read_text() == (b / "metrics.csv").read_text()
    from safetensors.torch import load_file

    wa = load_file(a / "lora-r2-s0" / "adapter" / "adapter_model.safetensors")
    wb = load_file(b / "lora-r2-s0" / "adapter" / "adapter_model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_lr_grid_picks_lowest_validation_loss(tmp_path):
    """The best lr sits in the middle of the grid: the first is too small to move the adapter, the last
    overshoots (ends worse than the middle one). The chosen adapter is the one a single-lr run at
    that lr saves, tensor for tensor."""
    from safetensors.torch import load_file

    grid = [1e-7, 3e-2, 1.0]
    lora = {"full": {"enabled": False}, "lora": {"ranks": [2], "lr": 3e-2}}
    cfg = validate_config(deep_update(TINY, {"variants": {**lora, "lr_grid": {"lora": grid}}}))
    out = Runner(cfg, tmp_path / "g", quiet=True).run()
    tj = json.loads((out / "lora-r2-s0" / "train.json").read_text())
    search = {s["lr"]: s["eval_loss"] for s in tj["lr_search"]}
    assert list(search) == grid
    base_loss = next(float(r["value"]) for r in csv.DictReader((out / "metrics.csv").open())
                     if r["variant"] == "base" and r["metric"] == "loss")
    assert search[1e-7] == pytest.approx(base_loss, abs=1e-3)  # too small to move
    # too large: worse than the middle lr (or NaN); not necessarily worse than not moving, since on the random
    # tiny model an overshooting adapter collapses towards the uniform distribution, which beats the base
    assert not search[1.0] <= search[3e-2]
    assert search[3e-2] < search[1e-7] - 0.05
    assert tj["lr"] == 3e-2 and tj["eval_loss"] == search[3e-2]
    # the saved adapter is exactly the one a run with only lr=3e-2 trains
    single = Runner(validate_config(deep_update(TINY, {"variants": lora})), tmp_path / "one", quiet=True).run()
    t1 = json.loads((single / "lora-r2-s0" / "train.json").read_text())
    assert t1["lr"] == 3e-2 and len(t1["lr_search"]) == 1 and t1["eval_loss"] == tj["eval_loss"]
    wg = load_file(out / "lora-r2-s0" / "adapter" / "adapter_model.safetensors")
    w1 = load_file(single / "lora-r2-s0" / "adapter" / "adapter_model.safetensors")
    assert set(wg) == set(w1) and wg
    assert all(torch.equal(wg[k], w1[k]) for k in wg)


def test_rerun_skips_finished_work(tmp_path):
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}}))
    out = Runner(cfg, tmp_path / "r", quiet=True).run()
    before = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/**/*") if p.is_file()}
    Runner(cfg, out, quiet=True).run()
    after = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/**/*") if p.is_file()}
    assert before == after, "nothing retrained or re-evaluated"
    log = (out / "run.log").read_text()
    assert "trained already, skipping" in log and "evaluated already, skipping" in log


def test_a_revised_study_is_evaluated_again_on_resume(tmp_path, monkeypatch):
    """A study whose numbers changed for the same config (its ``revision`` raised) is re-evaluated when a run made
    before is resumed, without retraining; revision 0 adds nothing to the fingerprint (old runs stay reusable)."""
    from lorafair.studies.loader import study_class

    assert Runner._revision_key("heldout") == []
    assert Runner._revision_key("toxicity") == [{"revision": 1}]  # the exponential-race draw (lorafair.lm.nucleus)
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}}))
    out = Runner(cfg, tmp_path / "r", quiet=True).run()
    res = out / "lora-r1-s0" / "results" / "heldout.json"
    fp, trained = json.loads(res.read_text())["fingerprint"], (out / "lora-r1-s0" / "train.json").stat().st_mtime_ns
    monkeypatch.setattr(study_class("heldout"), "revision", 2, raising=False)
    Runner(cfg, out, quiet=True).run()
    assert json.loads(res.read_text())["fingerprint"] != fp
    assert (out / "lora-r1-s0" / "train.json").stat().st_mtime_ns == trained


def test_two_seeds_and_epochs(tmp_path):
    cfg = validate_config(deep_update(TINY, {"seeds": [0, 1], "variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}},
                                             "train": {"max_steps": None, "epochs": 0.5}}))
    out = Runner(cfg, tmp_path / "s", quiet=True).run()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["seed"] for r in rows} == {"0", "1"}
    tj = json.loads((out / "lora-r1-s1" / "train.json").read_text())
    assert tj["steps"] == 3  # ceil(0.5 * 18 train records / 4 per step) = ceil(2.25)


def test_prompt_completion_jsonl_data(tmp_path):
    p = tmp_path / "pc.jsonl"
    p.write_text("".join(json.dumps({"q": f"Question {i}?", "a": f" answer {i % 3}"}) + "\n" for i in range(20)))
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}},
                                             "data": {"train": {"source": f"jsonl:{p}", "prompt_field": "q", "completion_field": "a"}}}))
    out = Runner(cfg, tmp_path / "pc", quiet=True).run()
    held = [json.loads(l) for l in (out / "data" / "heldout-s0.jsonl").read_text().splitlines()]
    train = [json.loads(l) for l in (out / "data" / "train-s0.jsonl").read_text().splitlines()]
    assert len(held) == 5 and len(train) == 15
    assert not {h["prompt"] for h in held} & {t["prompt"] for t in train}


def test_start_stage_makes_the_base(tmp_path):
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}},
                                             "start": {"data": {"source": "bold-wiki", "limit": 8}, "max_steps": 2, "lr": 1e-2}}))
    out = Runner(cfg, tmp_path / "st", quiet=True).run()
    assert (out / "start" / "model.safetensors").is_file()
    base_loss = next(r for r in csv.DictReader((out / "metrics.csv").open()) if r["variant"] == "base" and r["metric"] == "loss")
    # a fresh tiny:llama has loss ≈ ln(259) = 5.56; the start stage trained it on the same kind of text
    assert float(base_loss["value"]) < 5.5
