"""Mixed-adapter evaluation (``lorafair.lm.group``, ``eval.mixed_adapters``): several LoRA variants and the base model
answered in one pass give each variant the numbers it gets alone; the runner routes the studies that declare
``co_evaluate`` through the group and nothing else."""

import copy
import json
import logging

import numpy as np
import pytest
import torch

from helpers_lf import TINY, deep_update, hash_scorer, one_error_line, run_cli_subprocess
from lorafair.config.load import validate_config
from lorafair.errors import UserError
from lorafair.lm import LM
from lorafair.lm.group import BASE, AdapterGroup, active_group, call_key
from lorafair.lm.nucleus import NucleusSampler
from lorafair.methods import mixes_adapters
from lorafair.models.tiny import build_tiny
from lorafair.run.runner import Runner

REQS = [("The nurse was", " tired."), ("hi", " there"), ("A much longer sentence, so that the batch is", " padded a lot"),
        ("x", " y"), ("Q:", " no")]
TEXTS = ["The nurse was tired.", "hi", "A much longer sentence, so that the batch is padded.", "x y z"]


@pytest.fixture(scope="module")
def models():
    """tiny:llama, and a PEFT copy holding a LoRA adapter "one" and an rsLoRA adapter "two" (random, not zero, B)."""
    from peft import LoraConfig, get_peft_model

    model, tok = build_tiny("llama", seed=3)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(10.0)  # sharp: a row read through the wrong adapter is far off
    model.eval()
    torch.manual_seed(0)
    pm = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, init_lora_weights=False), adapter_name="one")
    pm.add_adapter("two", LoraConfig(r=8, lora_alpha=8, init_lora_weights=False, use_rslora=True))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.mul_(20.0)
    return model, pm.eval(), tok


MEMBERS = ["one", BASE, "two"]


def alone(models, adapter, call, batch_size=3):
    """``call(lm)`` on one variant: the base model itself, or the PEFT model with only ``adapter`` active."""
    model, pm, tok = models
    if adapter == BASE:
        return call(LM(model, tok, batch_size=batch_size))
    pm.set_adapter(adapter)
    return call(LM(pm, tok, batch_size=batch_size))


def mixed(models, batch_size=3):
    _, pm, tok = models
    return LM(pm, tok, batch_size=batch_size).with_adapters(pm, MEMBERS)


def close(x, y, tol=1e-5):
    np.testing.assert_allclose(np.asarray(x, dtype=float), np.asarray(y, dtype=float), rtol=0, atol=tol)


def test_loglikelihood_of_each_member_is_its_own(models):
    got = mixed(models)._loglikelihood_members(REQS)
    totals = []
    for adapter, mine in zip(MEMBERS, got):
        ref = alone(models, adapter, lambda lm: lm.loglikelihood(REQS))
        for x, y in zip(mine, ref):
            close(x.token_logprobs, y.token_logprobs)
            assert x.token_ids == y.token_ids and x.greedy == y.greedy
        totals.append([x.total for x in mine])
    # the members differ (so a row read through another member's adapter would fail above)
    assert min(np.abs(np.subtract(totals[0], totals[1])).max(), np.abs(np.subtract(totals[2], totals[1])).max()) > 0.1


def test_rolling_and_sequence_nll_of_each_member(models):
    from lorafair.lm import encode_records

    tok = models[2]
    enc = encode_records([{"text": t} for t in TEXTS], tok, 32)
    rolling = mixed(models)._rolling_nll_members(TEXTS, max_length=32)
    seq = mixed(models)._sequence_nll_members(enc)
    for adapter, r, s in zip(MEMBERS, rolling, seq):
        ref_r = alone(models, adapter, lambda lm: lm.rolling_nll(TEXTS, max_length=32))
        ref_s = alone(models, adapter, lambda lm: lm.sequence_nll(enc))
        close([x for x, _ in r], [x for x, _ in ref_r])
        assert [n for _, n in r] == [n for _, n in ref_r]
        close(s[0], ref_s[0])
        assert s[1] == ref_s[1]


@pytest.mark.parametrize("answers", [["yes", "no"], [" maybe", " no way"]])
@pytest.mark.parametrize("padding", ["left", "right"])
def test_answer_logprobs_of_each_member(models, answers, padding):
    got = mixed(models)._answer_logprobs_members(TEXTS, answers, padding=padding)
    assert got.shape == (3, len(TEXTS), len(answers))
    for adapter, mine in zip(MEMBERS, got):
        close(mine, alone(models, adapter, lambda lm: lm.answer_logprobs(TEXTS, answers, padding=padding)))


def test_samples_of_each_member_are_its_own_draws(models):
    """Every member's rows get the random keys they get alone: the same texts, member by member."""
    kw = dict(k=3, max_new_tokens=10, temperature=1.0, top_p=0.9, seed=4)
    got = mixed(models, batch_size=6)._sample_members(TEXTS, **kw)
    refs = [alone(models, a, lambda lm: lm.sample(TEXTS, **kw), batch_size=6) for a in MEMBERS]
    assert got == refs
    assert refs[0] != refs[1] and refs[2] != refs[1]


def test_nucleus_sampler_shares_keys_across_blocks():
    torch.manual_seed(0)
    one = NucleusSampler(1.0, 0.9)(None, torch.randn(4, 50))
    torch.manual_seed(0)
    logits = torch.randn(4, 50)
    torch.manual_seed(1)
    a = NucleusSampler(1.0, 0.9)(None, logits)
    torch.manual_seed(1)
    b = NucleusSampler(1.0, 0.9, copies=3)(None, logits.repeat(3, 1))
    assert torch.equal(b, a.repeat(3, 1)) and one.shape == (4, 50)
    with pytest.raises(ValueError, match="blocks"):
        NucleusSampler(1.0, 0.9, copies=3)(None, torch.randn(4, 50))
    with pytest.raises(ValueError, match="copies"):
        NucleusSampler(1.0, 0.9, copies=0)


def test_group_answers_each_member_once_and_only_on_its_own_model(models):
    model, pm, tok = models
    group = AdapterGroup(pm, {"lora-a": "one", "base": BASE, "lora-b": "two"}, {"s": ["base", "lora-a", "lora-b"]}, per_pass=2)
    assert group.studies == ["s"] and group.co_evaluates("s", "lora-b") and not group.co_evaluates("t", "base")
    refs = {m: alone(models, a, lambda lm: lm.loglikelihood(REQS)) for m, a in
            (("base", BASE), ("lora-a", "one"), ("lora-b", "two"))}
    computed = []
    real = LM._loglikelihood_members

    def spy(self, *args, **kwargs):
        computed.append(list(self._adapters or ["own"]))
        return real(self, *args, **kwargs)

    LM._loglikelihood_members = spy
    try:
        for member in ("base", "lora-a", "lora-b"):
            view = model if member == "base" else group.view(member)
            with group.evaluating("s", member, view):
                assert active_group(view) is group and active_group(model if view is pm else pm) is None
                got = LM(view, tok, batch_size=3).loglikelihood(REQS, desc=f"{member} crows")  # desc is not the call
                with group.suspended():
                    assert active_group(view) is None
            close([x.total for x in got], [x.total for x in refs[member]])
    finally:
        LM._loglikelihood_members = real
    # one call for all three members, in passes of at most two (per_pass), none afterwards
    assert computed == [[BASE, "one"], ["two"]]
    assert (group.calls, group.hits, group.leftover()) == (3, 2, 0)
    assert active_group(pm) is None and group.todo["s"] == []


def test_out_of_memory_halves_the_variants_per_pass(models, monkeypatch):
    model, pm, tok = models
    group = AdapterGroup(pm, {"base": BASE, "lora-a": "one", "lora-b": "two"}, {"s": ["base", "lora-a", "lora-b"]})
    real, passes = LM._rolling_nll_members, []

    def tight(self, *args, **kwargs):  # a device that holds one variant's batch, not two
        passes.append(len(self._adapters))
        if len(self._adapters) > 1:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(LM, "_rolling_nll_members", tight)
    got, warned = {}, []
    monkeypatch.setattr(logging.getLogger("lorafair"), "warning", lambda msg, *a: warned.append(msg % a))
    for member in ("base", "lora-a", "lora-b"):
        view = model if member == "base" else group.view(member)
        with group.evaluating("s", member, view):
            got[member] = LM(view, tok, batch_size=3).rolling_nll(TEXTS, max_length=16)
    assert passes == [3, 1, 1, 1] and group.per_pass == 1  # 8 -> 3 members -> 1
    assert len(warned) == 1 and "at most 1 variant(s) per pass" in warned[0]
    monkeypatch.setattr(LM, "_rolling_nll_members", real)
    for member, adapter in (("base", BASE), ("lora-a", "one"), ("lora-b", "two")):
        close([x for x, _ in got[member]], [x for x, _ in alone(models, adapter, lambda lm: lm.rolling_nll(TEXTS, max_length=16))])


def test_group_keeps_answers_nobody_asked_for_as_leftover(models):
    model, pm, tok = models
    group = AdapterGroup(pm, {"base": BASE, "lora-a": "one"}, {"s": ["base", "lora-a"]})
    with group.evaluating("s", "base", model):
        LM(model, tok, batch_size=3).rolling_nll(TEXTS, max_length=16)
    with group.evaluating("s", "lora-a", group.view("lora-a")):
        LM(pm, tok, batch_size=3).rolling_nll(TEXTS[:2], max_length=16)  # another call: computed alone
    assert (group.calls, group.hits, group.leftover()) == (2, 0, 1)


def test_call_keys():
    assert call_key("f", ([("a", "b")],), {"k": 1}) == call_key("f", ([("a", "b")],), {"k": 1})
    assert call_key("f", ([("a", "b")],)) != call_key("f", ([("a", "c")],))
    assert call_key(np.arange(3)) != call_key(np.arange(3.0)) and call_key(torch.arange(3)) == call_key(np.arange(3))
    assert call_key([1]) != call_key((1,)) and call_key("1") != call_key(1)
    with pytest.raises(TypeError):
        call_key(object())


def test_methods_that_mix():
    assert mixes_adapters("lora") and mixes_adapters("rslora")
    assert not mixes_adapters("dora")  # PEFT refuses adapter_names with DoRA
    assert not mixes_adapters("pissa")  # its base layers are not the base model's
    assert not mixes_adapters("base") and not mixes_adapters("full")


def test_config_takes_yaml_on_off_and_refuses_others():
    assert validate_config(deep_update(TINY, {"eval": {"mixed_adapters": True}})).eval.mixed_adapters == "on"
    assert validate_config(deep_update(TINY, {"eval": {"mixed_adapters": False}})).eval.mixed_adapters == "off"
    assert validate_config(TINY).eval.mixed_adapters == "auto"
    with pytest.raises(UserError, match="eval.mixed_adapters"):
        validate_config(deep_update(TINY, {"eval": {"mixed_adapters": "always"}}))
    with pytest.raises(UserError, match="eval.mixed_adapters_per_pass"):
        validate_config(deep_update(TINY, {"eval": {"mixed_adapters_per_pass": 0}}))


RECIPE = deep_update(TINY, {
    "variants": {"lora": {"ranks": [1, 4]}, "rslora": {"ranks": [2]}, "dora": {"ranks": [2]}},
    "train": {"max_steps": 2},
    "studies": {
        "forgetting": {"max_length": 32, "data": {"source": "bold-wiki", "options": {"split": "eval"}, "limit": 6}},
        "stereotypes": {"benchmarks": ["crows", "bbq"], "limit": {"crows": 6, "bbq": 6}, "batch_size": 4},
        "toxicity": {"k": 2, "max_new_tokens": 6, "scorer": "test-hash-mixed", "prompts": {"source": "honest", "limit": 4},
                     "perplexity_data": {"source": "bold-wiki", "options": {"split": "eval"}, "limit": 4}},
        "shift": {"max_length": 32},
    },
    "output": {"report": False},
})


def test_runner_evaluates_lora_variants_together_with_the_same_numbers(tmp_path):
    """``eval.mixed_adapters: on`` gives the metrics of a run without it; the base model and the LoRA and rsLoRA
    variants go through the group for the studies that declare co_evaluate, DoRA, full fine-tuning and the shift
    study do not; a resumed run with one member left evaluates it alone, to the same numbers."""
    hash_scorer("test-hash-mixed")
    off = Runner(validate_config(deep_update(RECIPE, {"eval": {"mixed_adapters": "off"}})), tmp_path / "off", quiet=True).run()
    on_cfg = validate_config(deep_update(RECIPE, {"eval": {"mixed_adapters": "on", "mixed_adapters_per_pass": 3}}))
    on = Runner(on_cfg, tmp_path / "on", quiet=True).run()
    assert (on / "metrics.csv").read_text() == (off / "metrics.csv").read_text()
    for v in ("base", "lora-r1", "rslora-r2"):
        assert (on / f"{v}-s0" / "samples.jsonl").read_text() == (off / f"{v}-s0" / "samples.jsonl").read_text()
    together = {(p.parent.parent.name, p.stem) for p in on.glob("*-s0/results/*.json")
                if json.loads(p.read_text())["info"].get("mixed_adapters")}
    members = ("base-s0", "lora-r1-s0", "lora-r4-s0", "rslora-r2-s0")
    assert together == {(v, s) for v in members for s in ("heldout", "forgetting", "stereotypes", "toxicity")}
    assert not any(json.loads(p.read_text())["info"].get("mixed_adapters") for p in off.glob("*-s0/results/*.json"))
    log = (on / "run.log").read_text()
    assert "base, lora-r1, lora-r4, rslora-r2 evaluated together in mixed-adapter batches" in log
    assert "never asked for" not in log and "answered from the mixed-adapter batches" in log
    info = json.loads((on / "run_info.json").read_text())
    assert info["mixed_adapters"] == {"0": {"variants": ["base", "lora-r1", "lora-r4", "rslora-r2"],
                                            "studies": ["heldout", "forgetting", "stereotypes", "toxicity"]}}
    assert json.loads((off / "run_info.json").read_text())["mixed_adapters"] == {}
    from lorafair.report.front import mixed_batches

    assert mixed_batches(info["mixed_adapters"]) == (
        "seed 0: base, lora-r1, lora-r4, rslora-r2 (heldout, forgetting, stereotypes, toxicity)")
    assert mixed_batches({}) == "" and mixed_batches(None) == "" and mixed_batches({"0": "junk"}) == ""
    # a run resumed with one member's stereotypes to redo: computed alone, the same numbers
    (on / "lora-r4-s0" / "results" / "stereotypes.json").unlink()
    Runner(on_cfg, on, quiet=True).run()
    assert (on / "metrics.csv").read_text() == (off / "metrics.csv").read_text()
    resumed = (on / "run.log").read_text()[len(log):]
    assert "lora-r4 seed 0: study stereotypes" in resumed and "evaluated together" not in resumed
    # run_info.json says what the results on disk say: lora-r4's stereotypes now evaluated alone, the rest together
    assert json.loads((on / "run_info.json").read_text())["mixed_adapters"] == info["mixed_adapters"]


def test_a_study_scoring_the_base_view_of_a_member_is_not_shared(tmp_path):
    """Without a base variant the toxicity study re-samples the base model under ``ctx.base_view()`` (the member's
    PEFT model with its adapter disabled): those calls are the base model's, not the member's, and must not be
    answered from (or for) the group; the numbers equal a run without mixed-adapter batches."""
    hash_scorer("test-hash-mixed")
    rec = deep_update(RECIPE, {"variants": {"base": False, "full": {"enabled": False}, "rslora": {"ranks": []},
                                            "dora": {"ranks": []}},
                               "studies": {"toxicity": RECIPE["studies"]["toxicity"]}})
    rec["studies"] = {"toxicity": RECIPE["studies"]["toxicity"]}
    off = Runner(validate_config(deep_update(rec, {"eval": {"mixed_adapters": "off"}})), tmp_path / "off", quiet=True).run()
    on = Runner(validate_config(deep_update(rec, {"eval": {"mixed_adapters": "on"}})), tmp_path / "on", quiet=True).run()
    assert (on / "metrics.csv").read_text() == (off / "metrics.csv").read_text()
    rose = [r for r in (on / "metrics.csv").read_text().splitlines() if ",toxicity_rose," in r]
    assert len(rose) >= 2  # measured against the re-sampled base, for both variants
    log = (on / "run.log").read_text()
    assert "lora-r1, lora-r4 evaluated together" in log and "never asked for" not in log


def test_auto_is_on_only_on_a_gpu(tmp_path):
    cfg = validate_config(TINY)
    assert not Runner(cfg, tmp_path / "a", quiet=True, device=torch.device("cpu")).mixed_adapters()
    assert Runner(cfg, tmp_path / "b", quiet=True, device=torch.device("cuda")).mixed_adapters()
    on = validate_config(deep_update(TINY, {"eval": {"mixed_adapters": "on"}}))
    assert Runner(on, tmp_path / "c", quiet=True, device=torch.device("cpu")).mixed_adapters()


def test_cli_run_with_mixed_adapters_and_a_bad_setting(tmp_path):
    """What a user types: the shipped tiny recipe with ``--set eval.mixed_adapters=on`` (YAML's bare on) evaluates
    base and the LoRA ladder together; a value that is not auto/on/off is one error line before any work."""
    out = tmp_path / "run"
    r = run_cli_subprocess("run", "tiny", "--out", out, "--quiet", "--set", "eval.mixed_adapters=on")
    assert r.returncode == 0, r.stderr
    log = (out / "run.log").read_text()
    assert "base, lora-r1, lora-r4 evaluated together in mixed-adapter batches (heldout, forgetting)" in log
    assert json.loads((out / "lora-r4-s0" / "results" / "heldout.json").read_text())["info"]["mixed_adapters"] is True
    assert "**mixed-adapter batches**: seed 0: base, lora-r1, lora-r4 \\(heldout, forgetting\\)" in (
        out / "report.md").read_text()
    bad = tmp_path / "bad"
    r = run_cli_subprocess("run", "tiny", "--out", bad, "--set", "eval.mixed_adapters=sometimes")
    line = one_error_line(r.returncode, r.stderr)
    assert line == "error: eval.mixed_adapters='sometimes': Input should be 'auto', 'on' or 'off'"
    assert not bad.exists()
