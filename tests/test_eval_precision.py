"""Evaluation precision (``eval.precision``): what ``auto`` resolves to, that the LM engine runs bf16 autocast
only for the operations set, that fp32 is the exact path, and that the runner records the precision, keys
each study's fingerprint on it, and refuses a bad value with one line."""

import json

import pytest
import torch

from helpers_lf import TINY, deep_update, one_error_line
from lorafair.lm import LM
from lorafair.lm import precision as P
from lorafair.models.sources import load_model


@pytest.mark.parametrize("native", [False, True])
def test_auto_uses_bf16_only_for_declared_operations_on_native_hardware(monkeypatch, native):
    monkeypatch.setattr(P, "native_bf16_cpu", lambda: native)
    want = "bf16" if native else "fp32"
    assert P.resolve("auto", "cpu", ("sample",)) == {"score": "fp32", "sample": want}
    assert P.resolve("auto", "cpu", ("score", "sample")) == {"score": want, "sample": want}
    assert P.resolve("auto", "cpu", ()) == {"score": "fp32", "sample": "fp32"}
    # explicit settings do not depend on the hardware or the study
    assert P.resolve("bf16", "cpu", ()) == {"score": "bf16", "sample": "bf16"}
    assert P.resolve("fp32", "cpu", ("score", "sample")) == {"score": "fp32", "sample": "fp32"}
    with pytest.raises(ValueError):
        P.resolve("fp16", "cpu")


def test_native_probe_answers_a_bool_and_meta_devices_are_never_native():
    assert isinstance(P.native_bf16("cpu"), bool)
    assert P.native_bf16("meta") is False


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model("tiny:llama")
    model.eval()
    return model, tok


def _scores(tiny, **kw):
    model, tok = tiny
    reqs = [("The nurse said", " that she was tired."), ("", "A plain sentence of text."), ("x", " y z")]
    return [s.token_logprobs for s in LM(model, tok, batch_size=2, **kw).loglikelihood(reqs)]


def test_engine_scores_under_bf16_only_inside_a_bf16_score_setting(tiny, monkeypatch):
    seen = []
    orig = LM._forward

    def spy(self, *a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return orig(self, *a, **k)

    monkeypatch.setattr(LM, "_forward", spy)
    plain = _scores(tiny)
    assert seen and not any(seen)
    seen.clear()
    with P.use({"score": "fp32", "sample": "bf16"}):  # sampling in bf16 does not touch scoring
        same = _scores(tiny)
    assert not any(seen)
    for a, b in zip(plain, same):
        assert (a == b).all()  # fp32 is the exact path: bit-identical
    seen.clear()
    with P.use({"score": "bf16"}):
        low = _scores(tiny)
    assert seen and all(seen)
    diffs = [abs(a - b).max() for a, b in zip(plain, low)]
    assert max(diffs) > 0  # bf16 really ran (it rounds) …
    assert max(diffs) < 0.5  # … and stays close on a tiny model (log-probs read in float32)
    assert P.active("score") == "fp32"  # the setting ends with its context
    # an explicit precision on the engine overrides the context
    seen.clear()
    with P.use({"score": "bf16"}):
        _scores(tiny, precision="fp32")
    assert not any(seen)


def _linear_weight_dtypes(model) -> set:
    """The dtypes of the plain linear layers' weights, but for the LM head tied to the embeddings (left as it is)."""
    head = model.get_output_embeddings()
    assert head.weight is model.get_input_embeddings().weight  # tiny:llama ties them
    return {m.weight.dtype for m in model.modules() if type(m) is torch.nn.Linear and m is not head}


def _spy_weight_dtypes(monkeypatch) -> list:
    """The list that every LM-engine forward pass appends its model's linear weight dtypes to."""
    seen = []
    orig = LM._forward

    def spy(self, *a, **k):
        seen.append(_linear_weight_dtypes(self.model))
        return orig(self, *a, **k)

    monkeypatch.setattr(LM, "_forward", spy)
    return seen


@pytest.mark.parametrize("adapter", [False, True])
def test_bf16_scoring_holds_bf16_weights_for_the_call_with_the_same_numbers(tiny, monkeypatch, adapter):
    """Under bf16 autocast the engine stores the linear weights in bf16 for a whole scoring call (autocast would
    recast each at every forward pass): bit-identical log-probs, and the model's own fp32 tensors back after."""
    import contextlib
    import lorafair.lm.engine as E
    from peft import LoraConfig, get_peft_model

    base, tok = load_model("tiny:llama")
    model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)) \
        if adapter else base
    model.eval()
    before = {n: p for n, p in model.named_parameters()}
    seen = _spy_weight_dtypes(monkeypatch)
    with P.use({"score": "bf16"}):
        held = _scores((model, tok))
    assert seen and all(d == {torch.bfloat16} for d in seen)  # every plain linear weight was bf16 in the passes
    assert {n: p for n, p in model.named_parameters()} == before  # the same tensors afterwards …
    assert all(p.dtype == torch.float32 for p in before.values())  # … in fp32
    seen.clear()
    monkeypatch.setattr(E, "bf16_linear_weights", lambda *a, **k: contextlib.nullcontext(0))
    with P.use({"score": "bf16"}):
        recast = _scores((model, tok))
    assert seen and all(torch.float32 in d for d in seen)  # autocast's per-pass casts
    for a, b in zip(held, recast):
        assert (a == b).all()


def test_fp32_scoring_and_sampling_keep_fp32_weights(tiny, monkeypatch):
    model, tok = tiny
    seen = _spy_weight_dtypes(monkeypatch)
    with P.use({"score": "fp32", "sample": "bf16"}):
        _scores(tiny)
    assert seen and all(d == {torch.float32} for d in seen)


def test_sampling_follows_the_sample_setting(tiny, monkeypatch):
    model, tok = tiny
    seen = []
    orig = model.generate

    def spy(*a, **k):
        seen.append(torch.is_autocast_enabled("cpu"))
        return orig(*a, **k)

    monkeypatch.setattr(model, "generate", spy)
    lm = LM(model, tok, batch_size=4)
    kw = dict(k=2, max_new_tokens=3, temperature=1.0, top_p=0.9, seed=0)
    a = lm.sample(["hello", "world"], **kw)
    with P.use({"score": "bf16", "sample": "fp32"}):
        b = lm.sample(["hello", "world"], **kw)
    assert a == b and not any(seen)
    with P.use({"sample": "bf16"}):
        lm.sample(["hello", "world"], **kw)
    assert seen[-1] is True


def test_runner_records_precision_and_reevaluates_when_it_changes(tmp_path, cli, recipe):
    out = tmp_path / "r"
    code, _, err = cli("run", recipe({"eval": {"precision": "bf16"}}), "--out", out, "--quiet")
    assert code == 0, err
    res = json.loads((out / "lora-r1-s0" / "results" / "heldout.json").read_text())
    assert res["info"]["precision"] == {"score": "bf16", "sample": "bf16"}
    info = json.loads((out / "run_info.json").read_text())
    assert info["eval_precision"]["heldout"] == {"score": "bf16", "sample": "bf16"}
    trained = {p: p.stat().st_mtime_ns for p in out.glob("*-s0/train.json")}
    fp_bf16 = res["fingerprint"]
    code, _, err = cli("run", recipe({"eval": {"precision": "fp32"}}), "--out", out, "--quiet")
    assert code == 0, err
    res = json.loads((out / "lora-r1-s0" / "results" / "heldout.json").read_text())
    assert res["info"]["precision"] == {"score": "fp32", "sample": "fp32"}
    assert res["fingerprint"] != fp_bf16  # evaluated again, in fp32 …
    assert {p: p.stat().st_mtime_ns for p in out.glob("*-s0/train.json")} == trained  # … without retraining


def test_fp32_keeps_the_fingerprints_of_runs_made_before_the_setting(tmp_path):
    """An all-fp32 evaluation adds nothing to a study's fingerprint (old run directories stay reusable)."""
    from lorafair.config.load import validate_config
    from lorafair.run.runner import Runner

    r = Runner(validate_config(deep_update(TINY, {"eval": {"precision": "fp32"}})), tmp_path / "r", quiet=True)
    assert r._precision_key("heldout") == []
    r = Runner(validate_config(deep_update(TINY, {"eval": {"precision": "bf16"}})), tmp_path / "r2", quiet=True)
    assert r._precision_key("heldout") == [{"precision": {"score": "bf16", "sample": "bf16"}}]


def test_bad_precision_is_one_error_line(cli, recipe, tmp_path):
    line = one_error_line(*cli("run", recipe(), "--out", tmp_path / "r", "--set", "eval.precision=fp16")[::2])
    assert "eval.precision" in line and "fp16" in line
