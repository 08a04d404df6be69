"""Intruder dimensions (Shuttleworth et al. 2024): a hand-planted case, equality with PEFT's detection
(``peft.tuners.lora.intruders``), and the counts the shift study writes per variant, module type and layer."""

import json
import re
from types import SimpleNamespace

import pytest
import torch

from lorafair.models.tiny import build_tiny
from lorafair.studies.base import VariantInfo
from lorafair.studies.shift import ShiftConfig, ShiftStudy
from lorafair.studies.shift.intruders import best_cosines, intruder_indices, left_singular_vectors

from helpers_lf import eval_context


def _planted(sigma: float):
    """W (16 × 24) = U diag(s) Vᵀ with s = 10, 9, …, 1 on the top ten directions and 0.6 … 0.35 on the last six
    (distinct, so U is unique up to signs); the update σ·x·yᵀ has x = the normalised sum of the last six left
    singular vectors (|cos| 1/√6 ≈ 0.41 with each, 0 with the top ten) and y orthogonal to W's row space, so
    W'W'ᵀ = WWᵀ + σ² x xᵀ: the top ten are unchanged and W' gains a singular vector ≈ x (exactly x in the limit
    of large σ) with value ≈ √(σ² + 0.2)."""
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(24, 24, generator=g, dtype=torch.float64))
    u, _ = torch.linalg.qr(torch.randn(16, 16, generator=g, dtype=torch.float64))
    v, y = q[:, :16], q[:, 16]
    s = torch.tensor([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0.6, 0.55, 0.5, 0.45, 0.4, 0.35], dtype=torch.float64)
    w = u @ torch.diag(s) @ v.T
    x = u[:, 10:].sum(1) / 6**0.5
    return w.float(), (w + sigma * torch.outer(x, y)).float(), x


def test_planted_rank_one_update_is_exactly_one_intruder():
    w, w_ft, x = _planted(5.5)
    idx = intruder_indices(w, w_ft)
    assert idx == [5]  # ≈ √(5.5² + 0.2) ≈ 5.52 is the sixth singular value of W'
    u_ft = left_singular_vectors(w_ft)
    assert abs(float(u_ft[:, 5] @ x.float())) == pytest.approx(1.0, abs=1e-3)  # the intruder is x
    cos = best_cosines(left_singular_vectors(w), w_ft)
    assert float(cos[5]) == pytest.approx(6**-0.5, abs=1e-2)
    assert all(float(c) == pytest.approx(1.0, abs=1e-4) for i, c in enumerate(cos) if i != 5)
    # below the top ten (σ small): not examined, no intruder; ε below 1/√6: not an intruder
    assert intruder_indices(w, _planted(0.7)[1]) == []
    assert intruder_indices(w, w_ft, epsilon=0.4) == []
    assert intruder_indices(w, w_ft, top_k=5) == []


def test_tiny_scaling_has_no_intruders():
    w, _, _ = _planted(0.0)
    assert intruder_indices(w, 1.001 * w) == []
    g = torch.Generator().manual_seed(1)
    wr = torch.randn(32, 48, generator=g)
    assert intruder_indices(wr, wr * 0.999) == []


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_equal_to_peft_reduce_intruder_dimension(seed):
    """PEFT's mitigation logs the intruders it finds per LoRA layer; our count on W and W + ΔW is the same."""
    from peft import LoraConfig, get_peft_model
    from peft.tuners.lora.intruders import reduce_intruder_dimension

    g = torch.Generator().manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(24, 16, bias=False)
            self.b = torch.nn.Linear(16, 40, bias=False)

    net = Net()
    with torch.no_grad():
        net.a.weight.copy_(torch.randn(16, 24, generator=g))
        net.b.weight.copy_(torch.randn(40, 16, generator=g))
    model = get_peft_model(net, LoraConfig(r=2, lora_alpha=2, target_modules=["a", "b"], init_lora_weights=False))
    scale = [0.3, 1.0, 3.0, 10.0][seed]
    with torch.no_grad():
        for mod in (model.base_model.model.a, model.base_model.model.b):
            mod.lora_A["default"].weight.copy_(torch.randn(mod.lora_A["default"].weight.shape, generator=g))
            mod.lora_B["default"].weight.copy_(scale * torch.randn(mod.lora_B["default"].weight.shape, generator=g))
    ours = {}
    for name in ("a", "b"):
        mod = getattr(model.base_model.model, name)
        w = mod.get_base_layer().weight.detach()
        ours[name] = len(intruder_indices(w, w + mod.get_delta_weight("default")))
    logged = []
    reduce_intruder_dimension(model, logging_sink=logged.append)
    theirs = {}
    for line in logged:
        m = re.match(r"(?:.*\.)?(a|b): (?:No intruders|Intruders: (\d+))$", line)
        if m:
            theirs[m.group(1)] = int(m.group(2) or 0)
    assert theirs == ours
    if seed == 3:
        assert sum(ours.values()) > 0  # a large update does produce intruders: the comparison is not vacuous


def test_shift_study_counts_per_variant_type_and_layer(tmp_path):
    from peft import LoraConfig, get_peft_model

    base, tok = build_tiny("llama")
    full, _ = build_tiny("llama")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in full.named_parameters():
            if name.endswith(("q_proj.weight", "up_proj.weight")):
                p += 3.0 * torch.randn(p.shape[0], 1, generator=g) @ torch.randn(1, p.shape[1], generator=g)
    lora_base, _ = build_tiny("llama")
    peft_model = get_peft_model(lora_base, LoraConfig(r=2, lora_alpha=4, target_modules=["v_proj"], init_lora_weights=False))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.mul_(50.0)
    peft_model.eval()
    cfg = ShiftConfig(batch_size=2, max_length=16, logit_lens=False, spectrum=False, n_boot=50)
    study = ShiftStudy()
    records = [{"text": "the cat sat on the mat"}, {"text": "hello world"}]

    def run(model, variant):
        ctx = eval_context(model=model, tokenizer=tok, variant=variant, out_dir=tmp_path / "run" / f"{variant.name}-s0",
                           config=SimpleNamespace(data=None), study_config=cfg, reference={"base": base, "full": full},
                           heldout_data=records)
        res = study.evaluate(ctx)
        rows = {(r.metric, r.group): r.value for r in res.metrics if r.metric.startswith("intruder")}
        return rows, json.loads((ctx.out_dir / "shift_intruders.json").read_text()), res

    def expected(model_weights):
        from lorafair.studies.shift.spectrum import linear_weights

        wb = linear_weights(base)
        return {n: len(intruder_indices(wb[n], w)) for n, w in model_weights.items()}

    rb, jb, _ = run(base, VariantInfo("base", "base", None))
    assert rb[("intruders", "")] == 0 and jb["modules"] == [] and jb["summary"]["modules"] == 14

    rf, jf, res_f = run(full, VariantInfo("full", "full", None))
    from lorafair.studies.shift.spectrum import linear_weights

    wf = linear_weights(full)
    exp = expected({n: wf[n] for n in wf if n.endswith(("q_proj", "up_proj"))})
    assert sum(exp.values()) > 0
    assert rf[("intruders", "")] == sum(exp.values()) == jf["summary"]["total"]
    assert {m["name"]: m["count"] for m in jf["modules"]} == exp  # only changed modules are analysed
    assert rf[("intruders", "type:self_attn.q_proj")] == sum(c for n, c in exp.items() if n.endswith("q_proj"))
    assert rf[("intruders", "type:self_attn.k_proj")] == 0
    for layer in (0, 1):
        assert rf[("intruders", f"layer:{layer}")] == sum(c for n, c in exp.items() if f".{layer}." in n)
    assert rf[("intruder_modules", "")] == sum(1 for c in exp.values() if c)
    assert res_f.info["intruders"]["changed_modules"] == 4

    rl, jl, _ = run(peft_model, VariantInfo("lora-r2", "lora", 2))
    inner = peft_model.base_model.model
    exp_l = {}
    for i, layer in enumerate(inner.model.layers):
        mod = layer.self_attn.v_proj
        exp_l[f"model.layers.{i}.self_attn.v_proj"] = mod.get_base_layer().weight + mod.get_delta_weight("default")
    exp_l = expected(exp_l)
    assert rl[("intruders", "")] == sum(exp_l.values()) and sum(exp_l.values()) > 0
    assert rl[("intruders", "type:self_attn.v_proj")] == sum(exp_l.values()) and rl[("intruders", "type:mlp.up_proj")] == 0

    off = ShiftConfig(batch_size=2, max_length=16, logit_lens=False, spectrum=False, n_boot=50, intruders=False)
    ctx = eval_context(model=full, tokenizer=tok, variant=VariantInfo("full", "full", None), out_dir=tmp_path / "off" / "full-s0",
                       config=SimpleNamespace(data=None), study_config=off, reference={"base": base, "full": full},
                       heldout_data=records)
    assert not [r for r in ShiftStudy().evaluate(ctx).metrics if r.metric.startswith("intruder")]


def test_config_bounds():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ShiftConfig(intruder_epsilon=0)
    with pytest.raises(ValidationError):
        ShiftConfig(intruder_top_k=0)


def test_cli_run_reports_intruders_per_variant(cli, recipe, tmp_path):
    """End to end on tiny:llama: every variant gets intruder rows (base: 0), the report shows the table."""
    import csv

    path = recipe({"variants": {"lora": {"ranks": [2]}}, "data": {"train": {"options": {"split": "train"}}},
                   "studies": {"shift": {"max_sequences": 4, "max_length": 16, "logit_lens": False, "n_boot": 50}}})
    out = tmp_path / "run"
    code, _, err = cli("run", path, "--out", out)
    assert code == 0, err
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["study"] == "shift" and r["metric"] == "intruders"]
    total = {r["variant"]: float(r["value"]) for r in rows if not r["group"]}
    assert set(total) == {"base", "full", "lora-r2"} and total["base"] == 0
    for v in total:  # per type and per layer sum to the total
        assert sum(float(r["value"]) for r in rows if r["variant"] == v and r["group"].startswith("type:")) == total[v]
        assert sum(float(r["value"]) for r in rows if r["variant"] == v and r["group"].startswith("layer:")) == total[v]
    code, _, err = cli("report", out)
    assert code == 0, err
    md = (out / "report.md").read_text()
    assert "Intruder dimensions" in md and "top 10 singular vectors per module, ε = 0.5" in md
