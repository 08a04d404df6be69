"""Divergence is caught: a loss that is not finite fails that variant (that lr of a grid) with a clear
message and a `"status": "failed"` marker; its studies are skipped, the other variants go on; no NaN or
Infinity is ever written to JSON; a huge but finite loss does not crash the heldout study."""

import csv
import json
import math

import pytest

from helpers_lf import TINY, deep_update

# lr 1e30 without clipping: the tiny model's loss is nan at step 3 (full) / step 2 (lora), deterministically on CPU
HUGE = 1e30
NO_CLIP = {"train": {"grad_clip": None}}


def strict_json(path):
    """Parse a JSON file, refusing the NaN / Infinity / -Infinity literals that are not JSON."""

    def refuse(const):
        raise ValueError(f"{path}: literal {const} in JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def all_json_is_strict(run):
    files = list(run.rglob("*.json"))
    assert files
    for f in files:
        strict_json(f)


def rows(run):
    return list(csv.DictReader((run / "metrics.csv").open(encoding="utf-8")))


def test_nan_loss_fails_that_variant_and_the_others_go_on(cli, recipe, tmp_path):
    r = recipe(deep_update(NO_CLIP, {"variants": {"full": {"lr": HUGE}, "lora": {"ranks": [1]}}}))
    out = tmp_path / "run"
    code, _, err = cli("run", r, "--out", out, "--quiet")
    assert code == 0, err  # base and lora-r1 are evaluated: their results are kept
    # a clear message naming the variant, the step and the lr
    assert "full seed 0 failed: loss not finite at step 3 (lr 1e+30)" in err
    assert "training failed for 1 of 2 variant(s)" in err
    marker = strict_json(out / "full-s0" / "train.json")
    assert marker["status"] == "failed" and marker["step"] == 3 and marker["lr"] == HUGE
    assert marker["reason"] == "loss not finite at step 3 (lr 1e+30)" and marker["loss"] == "nan"
    assert marker["fingerprint"] and marker["variant"]["name"] == "full"
    # no weights, no studies for the failed variant
    assert not (out / "full-s0" / "model.safetensors").exists() and not (out / "full-s0" / "results").exists()
    assert strict_json(out / "lora-r1-s0" / "train.json")["status"] == "ok"
    got = rows(out)
    failed = [x for x in got if x["variant"] == "full"]
    assert failed == [{**failed[0], "study": "train", "metric": "status", "value": "",
                       "note": "failed: loss not finite at step 3 (lr 1e+30)"}]
    assert {x["variant"] for x in got if x["study"] == "heldout" and x["metric"] == "loss"} == {"base", "lora-r1"}
    assert "failed: loss not finite at step 3 (lr 1e+30)" in (out / "summary.md").read_text()
    assert "full seed 0: training failed" in (out / "run.log").read_text()
    all_json_is_strict(out)


def test_failed_variant_is_not_retried_until_its_settings_change(cli, recipe, tmp_path):
    spec = deep_update(NO_CLIP, {"variants": {"full": {"lr": HUGE}, "lora": {"ranks": [1]}}})
    out = tmp_path / "run"
    assert cli("run", recipe(spec), "--out", out, "--quiet")[0] == 0
    before = (out / "full-s0" / "train.json").read_text()
    # resume: training is a pure function of (config, seed), the same settings would diverge again
    code, _, err = cli("run", recipe(spec), "--out", out, "--quiet")
    assert code == 0, err
    assert "full seed 0: failed before (loss not finite at step 3 (lr 1e+30)), skipping" in err
    assert (out / "full-s0" / "train.json").read_text() == before
    # a new lr: retrained, now fine, the failed row is gone
    code, _, err = cli("run", recipe(deep_update(spec, {"variants": {"full": {"lr": 1e-3}}})), "--out", out, "--quiet")
    assert code == 0, err
    assert strict_json(out / "full-s0" / "train.json")["status"] == "ok"
    assert (out / "full-s0" / "model.safetensors").is_file()
    got = rows(out)
    assert not [x for x in got if x["study"] == "train"]
    assert {x["variant"] for x in got if x["metric"] == "loss"} == {"base", "full", "lora-r1"}
    all_json_is_strict(out)


def test_lr_grid_never_picks_a_diverged_lr(cli, recipe, tmp_path):
    spec = deep_update(NO_CLIP, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]},
                                              "lr_grid": {"lora": [1e-2, HUGE]}}})
    out = tmp_path / "run"
    code, _, err = cli("run", recipe(spec), "--out", out, "--quiet")
    assert code == 0, err
    assert "lora-r1: loss not finite at step 2 (lr 1e+30); this lr is not used" in err
    tj = strict_json(out / "lora-r1-s0" / "train.json")  # today: NaN in lr_search
    assert tj["status"] == "ok" and tj["lr"] == 1e-2 and math.isfinite(tj["eval_loss"])
    search = {s["lr"]: s for s in tj["lr_search"]}
    assert search[HUGE]["status"] == "failed" and search[HUGE]["step"] == 2 and search[HUGE]["eval_loss"] is None
    assert math.isfinite(search[1e-2]["eval_loss"])
    all_json_is_strict(out)


def test_every_lr_of_the_grid_diverges_the_variant_fails(cli, recipe, tmp_path):
    spec = deep_update(NO_CLIP, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]},
                                              "lr_grid": {"lora": [HUGE, 1e31]}}})
    out = tmp_path / "run"
    code, _, err = cli("run", recipe(spec), "--out", out, "--quiet")
    assert code == 0, err  # base is evaluated
    tj = strict_json(out / "lora-r1-s0" / "train.json")
    assert tj["status"] == "failed" and not (out / "lora-r1-s0" / "adapter").exists()
    assert tj["reason"].startswith("loss not finite at every lr (lr 1e+30: step ")
    assert [f["lr"] for f in tj["failures"]] == [HUGE, 1e31]
    note = [x["note"] for x in rows(out) if x["variant"] == "lora-r1"]
    assert note == [f"failed: {tj['reason']}"]
    all_json_is_strict(out)


def test_every_variant_fails_and_no_base_is_one_error_line(cli, recipe, tmp_path):
    spec = deep_update(NO_CLIP, {"variants": {"base": False, "full": {"enabled": False}, "lora": {"ranks": [1], "lr": HUGE}}})
    out = tmp_path / "run"
    code, _, err = cli("run", recipe(spec), "--out", out, "--quiet")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: variants.lora.lr=1e+30: expected learning rates at which some variant trains")
    assert "loss not finite at step 2 (lr 1e+30)" in last
    assert strict_json(out / "lora-r1-s0" / "train.json")["status"] == "failed"  # recorded, resumable


def test_train_command_exits_2_when_its_variant_diverges(cli, recipe, tmp_path):
    r = recipe(deep_update(NO_CLIP, {"variants": {"full": {"lr": HUGE}}}))
    out = tmp_path / "run"
    code, _, err = cli("train", r, "--variant", "full", "--out", out, "--quiet")
    assert code == 2
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: variants.full.lr=1e+30: expected a learning rate at which full trains "
                           "(loss not finite at step 3 (lr 1e+30); recorded as failed in ")
    assert strict_json(out / "full-s0" / "train.json")["status"] == "failed"


def test_start_stage_divergence_is_one_error_line(cli, recipe, tmp_path):
    r = recipe(deep_update(NO_CLIP, {"start": {"data": {"source": "bold-wiki", "limit": 8}, "max_steps": 3, "lr": HUGE}}))
    code, _, err = cli("run", r, "--out", tmp_path / "run", "--quiet")
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(
        "error: start.lr=1e+30: expected a learning rate at which the start stage trains (loss not finite at step ")


def test_a_study_that_needs_a_failed_reference_says_so(tmp_path):
    from lorafair.config.load import validate_config
    from lorafair.errors import UserError
    from lorafair.run.runner import Runner

    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"lr": HUGE}}}))
    run = Runner(cfg, tmp_path / "run", quiet=True)
    (tmp_path / "run" / "full-s0").mkdir(parents=True)
    (tmp_path / "run" / "full-s0" / "train.json").write_text(json.dumps(
        {"status": "failed", "reason": "loss not finite at step 3 (lr 1e+30)", "step": 3, "lr": HUGE}))
    with pytest.raises(UserError, match=r"variants.full.lr=1e\+30: expected a learning rate at which full trains: a study "
                                        r"needs full \(seed 0\) as a reference and its training failed"):
        run.reference(None, 0, "full")


def test_train_model_raises_diverged_with_step_and_lr():
    import torch

    from lorafair.adapt.train import Diverged, build_variant_model, train_model
    from lorafair.adapt.tokenize import encode_records
    from lorafair.adapt.variants import Variant
    from lorafair.config.schema import TrainConfig
    from lorafair.models.tiny import build_tiny

    base, tok = build_tiny("llama")
    enc = encode_records([{"text": f"some words number {i} and more text"} for i in range(8)], tok, 32)
    model = build_variant_model(base, Variant("full", "full", lrs=(HUGE,)), 0)
    tcfg = TrainConfig(max_steps=6, batch_size=4, grad_clip=None, checkpoint_every=None)
    with pytest.raises(Diverged) as e:
        train_model(model, tok, enc, enc, tcfg, HUGE, 0, torch.device("cpu"), progress=False, desc="full")
    assert e.value.lr == HUGE and 1 <= e.value.step <= 6 and not math.isfinite(e.value.loss)
    assert str(e.value).startswith("full: loss not finite (nan) at step ")
    assert e.value.reason == f"loss not finite at step {e.value.step} (lr 1e+30)"


def test_heldout_huge_finite_loss_is_not_an_overflow(cli, recipe, tmp_path):
    # full at lr 1000 without clipping: held-out loss ~8e5, finite; exp() of it used to raise OverflowError
    # (a trajectory that stays finite: the plain shuffle's batch order)
    r = recipe(deep_update(NO_CLIP, {"train": {"group_by_length": False},
                                     "variants": {"full": {"lr": 1000.0}, "lora": {"ranks": [1]}}}))
    out = tmp_path / "run"
    code, _, err = cli("run", r, "--out", out, "--quiet")
    assert code == 0, err
    res = strict_json(out / "full-s0" / "results" / "heldout.json")
    m = {x["metric"]: x for x in res["metrics"]}
    assert m["loss"]["value"] > 710  # exp() of it overflows a float
    assert m["perplexity"]["value"] is None and m["perplexity"]["note"].startswith("undefined: perplexity is not finite (loss ")
    row = [x for x in rows(out) if x["variant"] == "full" and x["metric"] == "perplexity"][0]
    assert row["value"] == "" and row["note"].startswith("undefined: perplexity is not finite")
    all_json_is_strict(out)


def test_heldout_rows_never_hold_nan_or_inf():
    from lorafair.studies.heldout import _exp, _row

    ok = _row("perplexity", 2.0, 1.0, 800.0, 5, _exp)
    assert ok.value == pytest.approx(math.exp(2.0)) and ok.ci_low == pytest.approx(math.e) and ok.ci_high is None
    for loss in (1e6, math.inf, math.nan):
        for metric, f in (("loss", lambda x: x), ("perplexity", _exp)):
            r = _row(metric, loss, loss, loss, 5, f)
            if metric == "loss" and math.isfinite(loss):
                assert r.value == loss
                continue
            assert r.value is None and r.ci_low is None and r.ci_high is None and r.note.startswith("undefined: ")


def test_without_held_out_data_no_nan_is_written_and_the_grid_uses_the_training_loss():
    from lorafair.adapt.train import TrainResult, _better

    def res(lr, train, ev=math.nan):
        return TrainResult(lr=lr, steps=3, train_loss=train, eval_loss=ev, tokens=1, wall_s=1.0, tokens_per_s=1.0,
                           trainable_params=1)

    d = res(1e-3, 2.0).to_dict()
    assert d["eval_loss"] is None and d["train_loss"] == 2.0
    json.dumps(d, allow_nan=False)
    assert _better(res(1e-2, 1.5), res(1e-3, 2.0)) and not _better(res(1e-2, 2.5), res(1e-3, 2.0))
    # a finite held-out loss always beats none; the first of equals is kept
    assert _better(res(1e-2, 9.0, 3.0), res(1e-3, 1.0)) and not _better(res(1e-2, 1.0), res(1e-3, 9.0, 3.0))
    assert not _better(res(1e-2, 1.0, 3.0), res(1e-3, 1.0, 3.0))
