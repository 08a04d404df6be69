"""The shift study's evaluate() on tiny llama models: base, a 'full' = base with perturbed weights,
and a PEFT LoRA variant, with an EvalContext built by hand (as the runner will)."""

import contextlib
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, VariantInfo
from lorafair.studies.shift import ShiftConfig, ShiftStudy
from lorafair.studies.shift import divergence as dv
from lorafair.studies.shift.posteriors import make_batches

from helpers_lf import eval_context

RECORDS = [{"text": "the cat sat on the mat"}, {"text": "hello world, again"},
           {"prompt": "Q: why? A:", "completion": " because"}, {"text": "a b c d e f g"}]


@pytest.fixture(scope="module")
def models():
    base, tok = build_tiny("llama")
    full, _ = build_tiny("llama")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in full.named_parameters():
            if name.endswith(("q_proj.weight", "o_proj.weight", "up_proj.weight")):
                p += 0.2 * torch.randn(p.shape[0], 2, generator=g) @ torch.randn(2, p.shape[1], generator=g)
    return base, full, tok


def make_ctx(tmp_path, model, tok, variant, refs, cfg, base_view=None):
    return eval_context(model=model, tokenizer=tok, variant=variant, out_dir=tmp_path / "run" / f"{variant.name}-s0",
                        config=SimpleNamespace(data=None), study_config=cfg, reference=refs, base_view=base_view)


def metrics(res):
    return {r.metric: r for r in res.metrics}


_METHOD = {"base": ("base", None), "full": ("full", None)}


def _paired(results: dict, n_boot=400):
    """The runner's paired rows (lorafair.run.paired) from the studies' per-item values, by (variant, metric)."""
    from lorafair.run.paired import paired_rows
    from lorafair.studies.base import metric_specs

    by_variant = {}
    for name, res in results.items():
        method, rank = _METHOD[name] if name in _METHOD else (name.split("-")[0], int(name.split("-r")[-1]))
        by_variant[name] = ({"name": name, "method": method, "rank": rank},
                            {u: (s.ids, s.columns) for u, s in res.items.items()})
    rows = paired_rows("shift", metric_specs(ShiftStudy).values(), by_variant, seed=0, n_boot=n_boot)
    return {(r["variant"], r["metric"]): r for r in rows}


def test_registered():
    assert STUDIES.get("shift") is ShiftStudy
    assert ShiftStudy.needs_references == ("base", "full")


def test_batches_mask_padding_and_prompt():
    _, tok = build_tiny("llama")
    b = make_batches(tok, RECORDS[1:3], max_length=64, batch_size=8)[0]
    n1 = len("hello world, again")
    assert b.attention_mask[0].sum() == n1 + 1  # bos + bytes
    assert b.score_mask[0].sum() == n1  # every real byte is predicted
    assert not b.score_mask[0, n1:].any()
    assert b.score_mask[1].sum() == len(" because")  # only the completion
    b2 = make_batches(tok, RECORDS[:1], max_length=5, batch_size=8)[0]
    assert b2.input_ids.shape[1] == 5 and b2.score_mask.sum() == 4


def test_evaluate_base_full_lora(tmp_path, models):
    from peft import LoraConfig, get_peft_model

    base, full, tok = models
    cfg = ShiftConfig(data=None, batch_size=2, max_length=32, logit_lens=True, lens_max_sequences=3,
                      toxic_vocab=None, ranks=[1, 2, 4], n_boot=200)
    refs = {"base": base, "full": full}
    study = ShiftStudy()

    def run(model, variant, base_view=None):
        ctx = make_ctx(tmp_path, model, tok, variant, refs, cfg, base_view)
        ctx.heldout_data = RECORDS
        return study.evaluate(ctx), ctx

    res_b, _ = run(base, VariantInfo("base", "base", None))
    mb = metrics(res_b)
    assert mb["kl_v_base"].value == 0 and mb["js_v_base"].value == 0
    assert mb["kl_full_v"].value == pytest.approx(mb["kl_full_base"].value)
    assert "capture_kl" not in mb  # the runner's paired capture_kl_full_v replaces it
    items_b = res_b.items["sequences"]
    assert items_b.ids == ["0", "1", "2", "3"]
    np.testing.assert_array_equal(items_b.columns["kl_full_v"], items_b.columns["kl_full_base"])

    res_f, ctx_f = run(full, VariantInfo("full", "full", None))
    mf = metrics(res_f)
    assert mf["kl_full_v"].value == 0 and mf["kl_v_base"].value > 0
    assert not res_f.items["sequences"].columns["kl_full_v"].any()
    assert mf["kl_v_base"].ci_low <= mf["kl_v_base"].value <= mf["kl_v_base"].ci_high
    assert mf["kl_v_base"].n == 4

    # kl_v_base equals a manual computation: Σ token KL / Σ tokens
    batches = make_batches(tok, RECORDS, max_length=32, batch_size=2)
    tot, n = 0.0, 0
    with torch.no_grad():
        for b in batches:
            kl = dv.kl_from_logits(full(b.input_ids, attention_mask=b.attention_mask).logits,
                                   base(b.input_ids, attention_mask=b.attention_mask).logits)
            tot += float(kl[b.score_mask].sum())
            n += int(b.score_mask.sum())
    assert mf["kl_v_base"].value == pytest.approx(tot / n, rel=1e-5)
    assert mf["kl_base_v"].value != pytest.approx(mf["kl_v_base"].value)
    assert mf["kl_v_base_q50"].value <= mf["kl_v_base_q90"].value <= mf["kl_v_base_q99"].value

    spec = json.loads((tmp_path / "run" / "spectrum.json").read_text())
    q = spec["summary"]["by_type"]["self_attn.q_proj"]
    assert q["energy"]["2"] == pytest.approx(1.0, abs=1e-4) and q["energy"]["1"] < 1
    layers = json.loads((ctx_f.out_dir / "shift_layers.json").read_text())
    L = base.config.num_hidden_layers
    assert layers["layers"] == list(range(L + 1))
    assert layers["kl_to_final"][-1] == pytest.approx(0.0, abs=1e-6)
    assert layers["kl_to_base"][0] == pytest.approx(0.0, abs=1e-6)  # embeddings unchanged by the perturbation
    assert layers["kl_to_base"][-1] > 0

    # LoRA variant (random non-zero init) evaluated with adapters disabled for base posteriors
    lora_base, _ = build_tiny("llama")
    peft_model = get_peft_model(lora_base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.eval()
    calls = []

    @contextlib.contextmanager
    def base_view():
        calls.append(1)
        with peft_model.disable_adapter():
            yield peft_model

    # base posteriors and the base's logit lens come from the run's cache (filled by the variants above) ...
    res_cached, _ = run(peft_model, VariantInfo("lora-r2", "lora", 2), base_view)
    assert not calls
    # ... and without it from the PEFT model with adapters disabled: the same numbers
    study.reference_cache.resize(0)
    res_l, ctx_l = run(peft_model, VariantInfo("lora-r2", "lora", 2), base_view)
    ml = metrics(res_l)
    assert calls and res_l.info["base_posteriors"] == "adapters disabled"
    for name, row in metrics(res_cached).items():
        assert row.value == pytest.approx(ml[name].value, rel=1e-5, abs=1e-7), name
    assert ml["kl_v_base"].value > 0
    # the runner's paired capture of the target kl_full_v: 1 − KL(full‖v)/KL(full‖base), token-weighted
    rows = _paired({"base": res_b, "full": res_f, "lora-r2": res_l})
    cap = rows[("lora-r2", "capture_kl_full_v")]
    assert cap["value"] == pytest.approx(1 - ml["kl_full_v"].value / mb["kl_full_v"].value, rel=1e-9)
    assert cap["ci_low"] <= cap["value"] <= cap["ci_high"] and cap["n"] == 4
    assert rows[("lora-r2", "delta_kl_full_v")]["value"] == pytest.approx(ml["kl_full_v"].value - mb["kl_full_v"].value)
    assert ("full", "capture_kl_full_v") not in rows and ("lora-r2", "capture_kl_v_base") not in rows  # diagnostics
    assert 0 <= ml["subspace_overlap"].value <= 1
    angles = json.loads((ctx_l.out_dir / "shift_layers.json").read_text())["principal_angles"]
    assert {a["name"] for a in angles} == {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}


def test_reference_cache_shares_base_posteriors(tmp_path, models):
    base, full, tok = models
    cfg = ShiftConfig(batch_size=4, max_length=16, logit_lens=False, spectrum=False, n_boot=50)
    study = ShiftStudy()  # one study per run, as the runner makes it: its cache serves every variant
    hits0 = study.reference_cache.hits
    for name in ("lora-r1", "lora-r2"):
        ctx = make_ctx(tmp_path, base, tok, VariantInfo(name, "lora", 1), {"base": base, "full": full}, cfg)
        ctx.heldout_data = RECORDS
        res = study.evaluate(ctx)
    assert study.reference_cache.hits - hits0 == 3  # second variant: base, full and KL(full‖base) from cache
    assert metrics(res)["kl_v_base"].value == pytest.approx(0.0, abs=1e-7)


def test_toxic_vocab_option(tmp_path, models):
    base, full, tok = models
    words = tmp_path / "w.txt"
    words.write_text("the\nhello\n")
    cfg = ShiftConfig(batch_size=4, max_length=16, lens_max_sequences=2, toxic_vocab=str(words), spectrum=False, n_boot=50)
    ctx = make_ctx(tmp_path, full, tok, VariantInfo("full", "full", None), {"base": base, "full": full}, cfg)
    ctx.heldout_data = RECORDS
    # byte tokenizer: single-byte first tokens are filtered out -> no toxic ids, a warning, no mass
    ShiftStudy().evaluate(ctx)
    layers = json.loads((ctx.out_dir / "shift_layers.json").read_text())
    assert "toxic_mass" not in layers


def test_config_rejects_unknown_fields():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ShiftConfig(windows=3)
    with pytest.raises(ValidationError):
        ShiftConfig(dtype="float16")


def test_divergences_chunked_equal_whole_and_shared_probabilities():
    from lorafair.studies.shift.study import ROLE_PAIRS

    def _divergences(lp, kinds, *, with_full_base, rows):  # as the study calls it
        pairs = ROLE_PAIRS if with_full_base else {k: v for k, v in ROLE_PAIRS.items() if k != ("full", "base")}
        return dv.role_divergences(lp, pairs, kinds, rows=rows)

    g = torch.Generator().manual_seed(0)
    lp = {r: torch.log_softmax(torch.randn(13, 300, generator=g), -1) for r in ("v", "base", "full")}
    whole = _divergences(lp, ("kl", "reverse_kl", "js"), with_full_base=True, rows=10**6)
    chunked = _divergences(lp, ("kl", "reverse_kl", "js"), with_full_base=True, rows=4)
    assert set(whole) == {"kl_v_base", "kl_base_v", "js_v_base", "kl_full_v", "kl_v_full", "js_full_v", "kl_full_base"}
    for k in whole:
        torch.testing.assert_close(chunked[k], whole[k], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(whole["kl_full_v"], dv.kl_from_logp(lp["full"], lp["v"]))
    torch.testing.assert_close(whole["kl_base_v"], dv.kl_from_logp(lp["base"], lp["v"]))
    torch.testing.assert_close(whole["js_full_v"], dv.js_from_logp(lp["full"], lp["v"]))
    only = _divergences(lp, ("kl",), with_full_base=False, rows=5)
    assert set(only) == {"kl_v_base", "kl_full_v"}
    same = _divergences({"v": lp["v"], "base": lp["v"], "full": lp["full"]}, ("kl", "js"), with_full_base=False, rows=5)
    assert torch.all(same["kl_v_base"] == 0) and torch.all(same["js_v_base"] == 0)


def test_divergences_option_drops_reverse_and_js(tmp_path, models):
    base, full, tok = models
    cfg = ShiftConfig(batch_size=4, max_length=16, logit_lens=False, spectrum=False, n_boot=50, divergences=[])
    ctx = make_ctx(tmp_path, full, tok, VariantInfo("full", "full", None), {"base": base, "full": full}, cfg)
    ctx.heldout_data = RECORDS
    m = metrics(ShiftStudy().evaluate(ctx))
    assert "kl_v_base" in m and "kl_full_base" in m and "kl_full_v" in m and "capture_kl" not in m
    assert not any(k.startswith(("kl_base_v", "kl_v_full", "js_")) for k in m)
    with pytest.raises(Exception, match="reverse_kl"):
        ShiftConfig(divergences=["kl_reverse"])


def test_reference_cache_keeps_a_group_and_never_thrashes():
    from lorafair.studies.shift.posteriors import ReferenceCache

    c = ReferenceCache(3 * 400)  # room for three 100-float tensors
    t = lambda: torch.zeros(100)  # noqa: E731
    for i in range(5):
        c.put(("run1", i), t(), group="run1")
    assert c.skipped == 2 and c.used == 1200
    assert all(c.get(("run1", i)) is not None for i in range(3))  # the first three stay: a second pass hits
    assert c.get(("run1", 4)) is None
    c.put(("run2", 0), t(), group="run2")  # a new run evicts the old run's entries
    assert c.get(("run2", 0)) is not None and c.used == 1200
    c.resize(0)
    assert c.used == 0 and c.get(("run2", 0)) is None


@pytest.mark.parametrize("positions", ["first", "all"])
def test_lens_equals_manual_computation(tmp_path, models, positions):
    from lorafair.studies.shift.logit_lens import lens_head

    base, full, tok = models
    cfg = ShiftConfig(batch_size=3, max_length=16, lens_max_sequences=3, lens_positions=positions, spectrum=False, n_boot=20)
    ctx = make_ctx(tmp_path, full, tok, VariantInfo("full", "full", None), {"base": base, "full": full}, cfg)
    ctx.heldout_data = RECORDS
    ShiftStudy().evaluate(ctx)
    got = json.loads((ctx.out_dir / "shift_layers.json").read_text())
    # by hand: the first 3 records, all their scored positions or the first of each
    b = make_batches(tok, RECORDS[:3], max_length=16, batch_size=3)[0]
    mask = b.score_mask.clone()
    if positions == "first":
        first = mask.float().argmax(1)
        mask = torch.zeros_like(mask)
        mask[torch.arange(3), first] = True
    with torch.no_grad():
        ov = full(b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
        ob = base(b.input_ids, attention_mask=b.attention_mask, output_hidden_states=True)
        layer = 1
        lv = torch.log_softmax(lens_head(full)(ov.hidden_states[layer]), -1)[mask]
        lb = torch.log_softmax(lens_head(base)(ob.hidden_states[layer]), -1)[mask]
        fv = torch.log_softmax(ov.logits, -1)[mask]
    assert got["n_lens_positions"] == int(mask.sum()) and got["n_lens_sequences"] == 3
    assert got["lens_positions"] == positions
    assert got["kl_to_base"][layer] == pytest.approx(float(dv.kl_from_logp(lv, lb).mean()), rel=1e-5)
    assert got["kl_to_final"][layer] == pytest.approx(float(dv.kl_from_logp(lv, fv).mean()), rel=1e-5)


def test_metric_roles():
    from lorafair.studies.base import metric_specs

    specs = metric_specs(ShiftStudy)
    assert [m for m, s in specs.items() if s.role == "target"] == ["kl_full_v"]
    assert all(s.role == "diagnostic" for m, s in specs.items() if m != "kl_full_v")
    assert specs["kl_full_v"].direction == "lower" and specs["kl_full_v"].unit == "sequences"
    assert "capture_kl" not in ShiftStudy.headline and "kl_full_v" in ShiftStudy.headline


def test_items_reproduce_rows_and_full_like_variant_captures_all(tmp_path, models):
    from lorafair.studies.base import metric_specs

    base, full, tok = models
    cfg = ShiftConfig(batch_size=3, max_length=24, logit_lens=False, spectrum=False, n_boot=100)
    refs = {"base": base, "full": full}
    res = {}
    # a variant that is the full model under another name: it learned all the shift full learned
    for name, model, method in (("base", base, "base"), ("full", full, "full"), ("lora-r4", full, "lora")):
        ctx = make_ctx(tmp_path, model, tok, VariantInfo(name, method, 4 if method == "lora" else None), refs, cfg)
        ctx.heldout_data = RECORDS
        res[name] = ShiftStudy().evaluate(ctx)
    specs = metric_specs(ShiftStudy)
    for name, r in res.items():
        items = r.items["sequences"]
        assert len(items) == 4 and items.columns["tokens"].sum() == metrics(r)["kl_v_base_q50"].n
        for metric, row in metrics(r).items():
            spec = specs.get(metric)
            if spec is None or spec.stat is None:
                continue
            cols = {k: v[None, :] for k, v in items.columns.items()}
            assert float(spec.stat(cols)[0]) == row.value, (name, metric)  # B = 1: exactly the reported value
        # per sequence: the sum over its scored tokens and their count (the *_seq rows are their means)
        kl = items.columns["kl_full_v"] / items.columns["tokens"]
        assert metrics(r)["kl_full_v_seq"].value == pytest.approx(kl.mean(), rel=1e-12)
    assert metrics(res["lora-r4"])["kl_full_v"].value == 0
    rows = _paired(res)
    cap = rows[("lora-r4", "capture_kl_full_v")]
    assert (cap["value"], cap["ci_low"], cap["ci_high"]) == (1.0, 1.0, 1.0) and cap["note"] == ""


def test_untrained_pissa_has_no_angles(tmp_path, models):
    """A 0-step PiSSA adapter has ΔW = W_res + s·B₀A₀ − W = 0: no principal angles, an 'undefined' row."""
    import copy

    from peft import LoraConfig, get_peft_model

    base, full, tok = models
    cfg = ShiftConfig(batch_size=4, max_length=16, logit_lens=False, ranks=[1, 2], n_boot=50)
    pissa = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "o_proj"],
                                                           init_lora_weights="pissa")).eval()
    ctx = make_ctx(tmp_path, pissa, tok, VariantInfo("pissa-r2", "pissa", 2), {"base": base, "full": full}, cfg)
    ctx.heldout_data = RECORDS
    res = ShiftStudy().evaluate(ctx)
    m = metrics(res)
    assert m["kl_v_base"].value == pytest.approx(0.0, abs=1e-6)  # the untrained PiSSA model is the base model
    for k in ("subspace_overlap", "subspace_angle_deg"):
        assert np.isnan(m[k].value) and m[k].note.startswith("undefined: the variant's update")
    assert json.loads((ctx.out_dir / "shift_layers.json").read_text())["principal_angles"] == []
    assert res.info["principal_angles"]["zero_update"] == 4
