"""Checkpoints inside a variant (train.checkpoint_every): a training interrupted after a checkpoint
resumes from it and ends with exactly the numbers of an uninterrupted one (weights, losses, lr choice);
LoRA checkpoints hold the adapter, not the base; the setting changes no fingerprint."""

import json

import pytest
import torch
import yaml

from helpers_lf import TINY, deep_update

from lorafair.adapt import train as T
from lorafair.adapt.tokenize import encode_records
from lorafair.adapt.variants import Variant
from lorafair.config.schema import TrainConfig

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    from lorafair.models.tiny import build_tiny

    base, tok = build_tiny("llama")
    base.requires_grad_(False)
    texts = [{"text": f"record {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 3)} for i in range(24)]
    # 18 training records, batch 4: 5 micro-batches an epoch, so with grad_accum 2 the optimiser steps and the
    # epochs do not line up (accelerate syncs at each epoch's end): a checkpoint can fall between two micro-batches
    return base, tok, encode_records(texts[:18], tok, 32), encode_records(texts[18:], tok, 32)


class Killed(Exception):
    pass


def interrupted_then_resumed(monkeypatch, setup, variant, tcfg, ckdir, kill_at_save: int):
    """Train with checkpoints, stop right after the ``kill_at_save``-th checkpoint, then train again."""
    base, tok, tr, ev = setup
    save = T.StepCheckpoint.save
    calls = []

    def save_then_die(self, *a, **k):
        save(self, *a, **k)
        calls.append(1)
        if len(calls) == kill_at_save:
            raise Killed

    monkeypatch.setattr(T.StepCheckpoint, "save", save_then_die)
    with pytest.raises(Killed):
        T.train_variant(base, tok, variant, tr, ev, tcfg, 0, CPU, progress=False, checkpoint_dir=ckdir, key="fp")
    monkeypatch.setattr(T.StepCheckpoint, "save", save)
    snapshot = sorted(str(p.relative_to(ckdir)) for p in ckdir.rglob("*"))
    return T.train_variant(base, tok, variant, tr, ev, tcfg, 0, CPU, progress=False, checkpoint_dir=ckdir, key="fp"), snapshot


def trainable(model):
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def same_training(a, b):
    (ma, ra), (mb, rb) = a, b
    wa, wb = trainable(ma), trainable(mb)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert ra.history == rb.history and ra.train_loss == rb.train_loss and ra.eval_loss == rb.eval_loss
    assert ra.lr == rb.lr and ra.lr_search == rb.lr_search and ra.tokens == rb.tokens and ra.steps == rb.steps


@pytest.mark.parametrize("method,kill_at", [("lora", 2), ("full", 1), ("dora", 2)])
def test_resume_from_checkpoint_equals_uninterrupted(monkeypatch, setup, tmp_path, method, kill_at):
    base, tok, tr, ev = setup
    v = Variant("full", "full", lrs=(1e-2,)) if method == "full" else \
        Variant(f"{method}-r2", method, 2, (1e-2,), 4.0, 0.1)  # dropout: the RNG state matters
    tcfg = TrainConfig(max_steps=7, batch_size=4, max_length=32, grad_accum=2, checkpoint_every=2)
    clean = T.train_variant(base, tok, v, tr, ev, tcfg.model_copy(update={"checkpoint_every": None}), 0, CPU, progress=False)
    resumed, snap = interrupted_then_resumed(monkeypatch, setup, v, tcfg, tmp_path / "ck", kill_at)
    step = 2 * kill_at
    assert f"lr-0/step-{step:07d}/trainable.safetensors" in snap and "lr-0/latest.json" in snap
    same_training(clean, resumed)


def test_lora_checkpoint_holds_the_adapter_and_optimizer_not_the_base(monkeypatch, setup, tmp_path):
    from safetensors.torch import load_file

    base, tok, tr, ev = setup
    v = Variant("lora-r2", "lora", 2, (1e-2,), 4.0)
    tcfg = TrainConfig(max_steps=5, batch_size=4, max_length=32, checkpoint_every=2)
    save = T.StepCheckpoint.save

    def once(self, *a, **k):
        save(self, *a, **k)
        raise Killed

    monkeypatch.setattr(T.StepCheckpoint, "save", once)
    with pytest.raises(Killed):
        T.train_variant(base, tok, v, tr, ev, tcfg, 0, CPU, progress=False, checkpoint_dir=tmp_path / "ck", key="fp")
    latest = json.loads((tmp_path / "ck" / "lr-0" / "latest.json").read_text())
    assert latest["step"] == 2 and latest["key"] == "fp/lr0=0.01" and latest["world_size"] == 1
    d = tmp_path / "ck" / "lr-0" / latest["folder"]
    w = load_file(d / "trainable.safetensors")
    assert w and all("lora_" in k for k in w), sorted(w)
    n_adapter = sum(t.numel() for t in w.values())
    assert n_adapter < sum(p.numel() for p in base.parameters()) / 5
    opt = torch.load(d / "optimizer.pt", weights_only=True)  # no pickle needed to read it back
    assert len(opt["optimizer"]["state"]) == len(w) and "scheduler" in opt
    assert json.loads((d / "progress.json").read_text())["step"] == 2


def test_lr_grid_killed_in_its_last_lr_does_not_retrain_the_others(monkeypatch, setup, tmp_path):
    base, tok, tr, ev = setup
    v = Variant("full", "full", lrs=(1e-2, 3e-3))
    tcfg = TrainConfig(max_steps=7, batch_size=4, max_length=32, grad_accum=2, checkpoint_every=2)
    clean = T.train_variant(base, tok, v, tr, ev, tcfg.model_copy(update={"checkpoint_every": None}), 0, CPU, progress=False)
    assert clean[1].lr == 1e-2  # the best lr is the first: the resumed run must rebuild it from disk
    ran = []
    orig = T.train_model
    monkeypatch.setattr(T, "train_model", lambda *a, **k: ran.append(a[5]) or orig(*a, **k))
    # 3 checkpoints in the first lr (steps 2, 4, 6), killed after the 2nd of the second lr (step 4)
    resumed, snap = interrupted_then_resumed(monkeypatch, setup, v, tcfg, tmp_path / "ck", 5)
    assert "lr-0/result.json" in snap and "lr-0/final.safetensors" in snap and "lr-1/step-0000004" in snap
    assert ran == [1e-2, 3e-3, 3e-3]  # the resumed run trained only the second lr, from its step 4
    same_training(clean, resumed)


def test_a_diverged_lr_in_a_grid_is_remembered_across_a_resume(monkeypatch, setup, tmp_path):
    base, tok, tr, ev = setup
    v = Variant("full", "full", lrs=(1e30, 1e-2))
    tcfg = TrainConfig(max_steps=5, batch_size=4, max_length=32, grad_clip=None, checkpoint_every=2)
    clean = T.train_variant(base, tok, v, tr, ev, tcfg.model_copy(update={"checkpoint_every": None}), 0, CPU, progress=False)
    resumed, snap = interrupted_then_resumed(monkeypatch, setup, v, tcfg, tmp_path / "ck", 1)
    assert json.loads((tmp_path / "ck" / "lr-0" / "result.json").read_text())["status"] == "failed"
    same_training(clean, resumed)
    assert resumed[1].lr == 1e-2 and resumed[1].lr_search[0]["status"] == "failed"


def test_a_checkpoint_of_another_training_is_not_resumed(monkeypatch, setup, tmp_path):
    base, tok, tr, ev = setup
    v = Variant("lora-r2", "lora", 2, (1e-2,), 4.0)
    tcfg = TrainConfig(max_steps=5, batch_size=4, max_length=32, checkpoint_every=2)
    interrupted_then_resumed(monkeypatch, setup, v, tcfg, tmp_path / "ck", 1)
    seen = []
    orig = T.StepCheckpoint.load
    monkeypatch.setattr(T.StepCheckpoint, "load", lambda self, acc: seen.append(r := orig(self, acc)) or r)
    # another fingerprint (the config changed): the old state is ignored, training starts from step 0
    m, res = T.train_variant(base, tok, v, tr, ev, tcfg, 0, CPU, progress=False, checkpoint_dir=tmp_path / "ck", key="other")
    assert seen == [None] and len(res.history) == 5
    clean = T.train_variant(base, tok, v, tr, ev, tcfg.model_copy(update={"checkpoint_every": None}), 0, CPU, progress=False)
    same_training(clean, (m, res))


def test_checkpoint_every_is_validated_and_changes_no_fingerprint(cli, recipe, tmp_path):
    from lorafair.config.load import dump_config, validate_config

    assert TrainConfig().checkpoint_every == 50
    with pytest.raises(Exception):
        TrainConfig(checkpoint_every=0)
    cfg = validate_config(deep_update(TINY, {"train": {"checkpoint_every": 7}}))
    assert cfg.train.checkpoint_every == 7 and "checkpoint_every" not in dump_config(cfg)
    out = tmp_path / "run"
    spec = {"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}}
    assert cli("run", recipe(deep_update(spec, {"train": {"checkpoint_every": 1}})), "--out", out, "--quiet")[0] == 0
    assert not (out / "lora-r1-s0" / "checkpoint").exists()  # removed once the variant is saved
    assert yaml.safe_load((out / "config.yaml").read_text())["train"].get("checkpoint_every") is None
    code, _, err = cli("run", recipe(deep_update(spec, {"train": {"checkpoint_every": None}})), "--out", out)
    assert code == 0, err
    log = (out / "run.log").read_text()
    assert "lora-r1 seed 0: trained already, skipping" in log and "lora-r1 seed 0: evaluated already, skipping" in log
