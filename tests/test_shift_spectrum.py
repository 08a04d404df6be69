import math

import numpy as np
import pytest
import torch

from lorafair.errors import UserError
from lorafair.models.tiny import build_tiny
from lorafair.studies.shift.spectrum import (
    effective_rank, energy_at_ranks, lora_deltas, lora_subspace_angles, principal_angles, split_name,
    summarise_spectra, update_spectrum,
)


def low_rank(m, n, r, sv=None, seed=0):
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    s = torch.ones(r, dtype=torch.float64) if sv is None else torch.tensor(sv, dtype=torch.float64)
    return u @ torch.diag(s) @ v.T, u


def test_energy_and_effective_rank_of_known_rank():
    d, _ = low_rank(40, 30, 4)
    sv = torch.linalg.svdvals(d)
    e = energy_at_ranks(sv, [1, 2, 4, 8, 100])
    assert e[1] == pytest.approx(0.25) and e[2] == pytest.approx(0.5)
    assert e[4] == pytest.approx(1.0) and e[8] == pytest.approx(1.0) and e[100] == 1.0
    assert effective_rank(sv) == pytest.approx(4.0, rel=1e-6)
    d2, _ = low_rank(40, 30, 3, sv=[3.0, 1.0, 0.0 + 1e-12])
    assert energy_at_ranks(torch.linalg.svdvals(d2), [1])[1] == pytest.approx(0.9)
    p = np.array([0.75, 0.25])
    assert effective_rank([3.0, 1.0]) == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    assert effective_rank(torch.zeros(5)) == 0.0
    assert math.isnan(energy_at_ranks(torch.zeros(3), [1])[1])
    with pytest.raises(ValueError):
        energy_at_ranks(sv, [0])


def test_principal_angles():
    a, ua = low_rank(20, 10, 3, seed=1)
    assert np.allclose(principal_angles(ua, ua), 0, atol=1e-7)
    # same subspace, different basis
    rot, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    assert np.allclose(principal_angles(ua, ua @ rot), 0, atol=1e-7)
    e = torch.eye(6, dtype=torch.float64)
    assert np.allclose(principal_angles(e[:, :2], e[:, 2:4]), math.pi / 2)
    # one shared direction, one orthogonal: angles (0, π/2)
    ang = principal_angles(e[:, [0, 1]], e[:, [0, 2]])
    assert np.allclose(ang, [0, math.pi / 2])
    # 45 degrees
    b = torch.stack([(e[:, 0] + e[:, 1]) / math.sqrt(2)], 1)
    assert principal_angles(e[:, :1], b)[0] == pytest.approx(math.pi / 4)


def test_split_name():
    assert split_name("model.layers.3.self_attn.q_proj") == ("self_attn.q_proj", 3)
    assert split_name("transformer.h.11.mlp.c_proj") == ("mlp.c_proj", 11)
    assert split_name("score") == ("score", None)


def _perturbed(arch="llama", rank=2, scale=0.05):
    base, _ = build_tiny(arch)
    full, _ = build_tiny(arch)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, mod in full.named_modules():
            if name.endswith(("q_proj", "c_attn", "fc1")):
                w = mod.weight
                w += scale * torch.randn(w.shape[0], rank, generator=g) @ torch.randn(rank, w.shape[1], generator=g)
    return base, full


@pytest.mark.parametrize("arch", ["llama", "gpt2", "opt"])
def test_update_spectrum_tiny(arch):
    base, full = _perturbed(arch, rank=2)
    dec = update_spectrum(base, full, [1, 2, 4])
    by = {s.name: s for s in dec.spectra}
    assert not any("lm_head" in n for n in by)
    changed = [s for s in dec.spectra if s.fro_norm > 0]
    assert changed and all(s.module_type.split(".")[-1] in ("q_proj", "c_attn", "fc1") for s in changed)
    for s in changed:
        assert s.energy[2] == pytest.approx(1.0, abs=1e-5) and s.energy[1] < 1.0
        assert 1.0 < s.effective_rank < 2.0 + 1e-3
    unchanged = [s for s in dec.spectra if s.fro_norm == 0]
    assert unchanged and all(s.effective_rank == 0.0 for s in unchanged)
    summ = summarise_spectra(dec.spectra)
    assert set(summ["by_layer"]) == {"0", "1"}


def test_mismatched_architectures():
    base, _ = build_tiny("llama")
    other, _ = build_tiny("gpt2")
    with pytest.raises(UserError, match="different architectures"):
        update_spectrum(base, other)


def test_principal_angles_orthonormal_fast_path_equals_scipy():
    g = torch.Generator().manual_seed(5)
    qa, _ = torch.linalg.qr(torch.randn(300, 16, generator=g, dtype=torch.float64))
    # a subspace sharing some directions exactly, some nearly, some not at all
    mix = torch.cat([qa[:, :4], qa[:, 4:8] + 1e-4 * torch.randn(300, 4, generator=g, dtype=torch.float64),
                     torch.randn(300, 8, generator=g, dtype=torch.float64)], 1)
    qb, _ = torch.linalg.qr(mix)
    ref = principal_angles(qa, qb)
    fast = principal_angles(qa, qb, orthonormal=True)
    np.testing.assert_allclose(fast, ref, atol=1e-7)  # scipy resolves exact zeros only to ~1e-8
    assert fast[:4].max() < 1e-7 and 1e-5 < fast[4] < 1e-2  # small angles are resolved (sine formula)
    np.testing.assert_allclose(principal_angles(qa[:, :5], qb, orthonormal=True), principal_angles(qa[:, :5], qb), atol=1e-7)


def test_lora_angles_with_peft():
    from peft import LoraConfig, get_peft_model

    base, full = _perturbed("llama", rank=2, scale=0.1)
    ref, _ = build_tiny("llama")
    dec = update_spectrum(ref, full, [1, 2], keep_left=2)
    model = get_peft_model(base, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    deltas = lora_deltas(model)
    assert set(deltas) == {f"model.layers.{i}.self_attn.{p}_proj" for i in range(2) for p in "qv"}
    # B@A*scaling by hand
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    by_hand = layer.lora_B["default"].weight @ layer.lora_A["default"].weight * layer.scaling["default"]
    delta = deltas["model.layers.0.self_attn.q_proj"][0]
    torch.testing.assert_close(delta.dense().float(), by_hand)
    torch.testing.assert_close(delta.dense().float(), layer.get_delta_weight("default"))
    # the exact basis from the factors spans the same space as the dense SVD's top-2
    u = torch.linalg.svd(by_hand.detach().double())[0][:, :2].numpy()
    assert max(principal_angles(delta.left_basis(2), u)) < 1e-6
    assert deltas["model.layers.0.self_attn.q_proj"][1] == 2
    # set q_proj's LoRA update to exactly ΔW_full of that module -> angles 0
    with torch.no_grad():
        dw = full.model.layers[0].self_attn.q_proj.weight - ref.model.layers[0].self_attn.q_proj.weight
        u, s, vh = torch.linalg.svd(dw)
        layer.lora_B["default"].weight.copy_(u[:, :2] * s[:2])
        layer.lora_A["default"].weight.copy_(vh[:2] / layer.scaling["default"])
    rows = {r["name"]: r for r in lora_subspace_angles(lora_deltas(model), dec.left)}
    assert set(rows) == {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}  # v_proj: ΔW_full = 0, no subspace
    r0 = rows["model.layers.0.self_attn.q_proj"]
    assert max(r0["angles_deg"]) < 1e-3 and r0["overlap"] == pytest.approx(1.0)
    assert rows["model.layers.1.self_attn.q_proj"]["mean_angle_deg"] > 10
    # base weights of the PEFT model equal the base model's: spectrum against full is the same
    dec2 = update_spectrum(model, full, [1, 2])
    for a, b in zip(dec.spectra, dec2.spectra):
        assert a.name == b.name and a.singular_values == pytest.approx(b.singular_values, abs=1e-5)


# ---- the variant's own update ΔW = W_eff − W_base for PiSSA and DoRA (issue #11) ----------------------

TARGETS = {"llama": ["q_proj", "v_proj"], "gpt2": ["c_attn"]}


def _peft(arch, init, *, dora=False, r=2):
    import copy

    from peft import LoraConfig, get_peft_model

    base, _ = build_tiny(arch)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, target_modules=TARGETS[arch], init_lora_weights=init, use_dora=dora,
                     fan_in_fan_out=arch == "gpt2")
    return base, get_peft_model(copy.deepcopy(base), cfg).eval()


def _lora_layers(model):
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in model.get_base_model().named_modules() if isinstance(m, LoraLayer)}


def _merged_minus_base(model, base):
    """W_eff − W_base per adapted module, from PEFT's own merge (merge_and_unload on a copy)."""
    import copy

    merged = copy.deepcopy(model).merge_and_unload()
    wm, wb = dict(merged.named_modules()), dict(base.named_modules())
    return {n: (wm[n].weight.detach().double() - wb[n].weight.detach().double()) for n in _lora_layers(model)}


def _train_a_little(model, seed=0, scale=0.05):
    """Move every adapter parameter (A, B and DoRA's magnitude) as a few optimizer steps would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p += scale * torch.randn(p.shape, generator=g) * (p.abs().mean() + 0.1)


def _saved_and_loaded(model, base, tmp_path):
    """The adapter as the runner evaluates it: save_pretrained, then PeftModel.from_pretrained on a copy
    of the base (PEFT re-runs PiSSA's initialisation on the base layers when loading)."""
    import copy

    from peft import PeftModel

    model.save_pretrained(tmp_path / "adapter")
    return PeftModel.from_pretrained(copy.deepcopy(base), tmp_path / "adapter").eval()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "pissa", "dora"])
def test_untrained_adapter_has_zero_update_and_no_angles(tmp_path, arch, method):
    base, model = _peft(arch, "pissa" if method == "pissa" else True, dora=method == "dora")
    _, full = _perturbed(arch, rank=2, scale=0.1)
    dec = update_spectrum(base, full, [1, 2], keep_left=2)
    assert dec.left  # ΔW_full is non-zero in the adapted modules: angles would be computed for a moved adapter
    for m in (model, _saved_and_loaded(model, base, tmp_path)):
        deltas = lora_deltas(m, base)
        assert set(deltas) == set(_lora_layers(model))
        assert lora_subspace_angles(deltas, dec.left) == []  # no garbage angles of a zero update
        for name, (delta, r, _) in deltas.items():
            assert torch.count_nonzero(delta.dense()) == 0, (name, method)
            assert tuple(delta.dense().shape) == tuple(full.get_submodule(name).weight.shape)
            assert delta.is_zero


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_pissa_update_is_relative_to_the_base_weights(tmp_path, arch):
    from lorafair.studies.shift.spectrum import LowRankDelta

    base, model = _peft(arch, "pissa")
    layers = _lora_layers(model)
    init = {n: (m.lora_B["default"].weight.detach().double().clone(), m.lora_A["default"].weight.detach().double().clone())
            for n, m in layers.items()}
    _train_a_little(model)
    with pytest.raises(UserError, match="base model"):
        lora_deltas(model)  # the base layers hold W − s·B₀A₀: the base weights are needed
    expected = _merged_minus_base(model, base)
    for m in (model, _saved_and_loaded(model, base, tmp_path)):
        deltas = lora_deltas(m, base)
        for name, mod in layers.items():
            delta = deltas[name][0]
            assert isinstance(delta, LowRankDelta) and not delta.is_zero  # kept as a low-rank product
            (b0, a0), s = init[name], mod.scaling["default"]
            b, a = mod.lora_B["default"].weight.detach().double(), mod.lora_A["default"].weight.detach().double()
            by_hand = s * (b @ a - b0 @ a0)
            by_hand = by_hand.T if arch == "gpt2" else by_hand
            torch.testing.assert_close(delta.dense().double(), by_hand, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(delta.dense().double(), expected[name], atol=1e-6, rtol=1e-5)
            assert delta.fro_norm() == pytest.approx(float(by_hand.norm()), rel=1e-6)
            # not the adapter's own product s·B·A (what the angles were measured on before)
            assert (delta.dense() - (s * b @ a if arch != "gpt2" else (s * b @ a).T)).norm() > 0.1 * by_hand.norm()


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_dora_update_includes_the_magnitude(arch):
    base, model = _peft(arch, False, dora=True)  # random A and B
    _train_a_little(model, seed=1, scale=0.2)  # moves the magnitude vector too
    expected = _merged_minus_base(model, base)
    deltas = lora_deltas(model, base)
    for name, mod in _lora_layers(model).items():
        delta = deltas[name][0]
        dense = (delta.dense() if hasattr(delta, "dense") else delta).double()
        torch.testing.assert_close(dense, expected[name], atol=2e-6, rtol=1e-5)
        lora_only = mod.get_delta_weight("default").detach().double()
        assert (dense - lora_only).norm() > 0.1 * dense.norm()  # the magnitude matters
        assert torch.linalg.matrix_rank(dense).item() > mod.r["default"]  # not of rank r
    # the angles are those of the real ΔW's top-r subspace
    _, full = _perturbed(arch, rank=2, scale=0.1)
    dec = update_spectrum(base, full, [1, 2], keep_left=2)
    rows = lora_subspace_angles(deltas, dec.left)
    assert rows
    for row in rows:
        u = torch.linalg.svd(expected[row["name"]])[0][:, :2].numpy()
        ref = np.degrees(principal_angles(u, dec.left[row["name"]][:, :2]))
        np.testing.assert_allclose(row["angles_deg"], ref, atol=1e-3)
