"""Fairness-promoting adaptation strategies (lorafair.strategies): the registry and recipe section, the crossing
with the rank ladder, targeted data selection, counterfactual augmentation, the regularised objectives, and a
tiny run end to end (λ = 0 reproduces plain fine-tuning exactly)."""

import csv
import json
import math
from dataclasses import asdict

import pytest
import torch

from lorafair.config.load import validate_config
from lorafair.errors import UserError
from lorafair.run.ladder import plan_variants
from lorafair.run.layout import RunLayout, parse_folder, parse_variant, split_strategy, variant_folder, variant_name
from lorafair.strategies import STRATEGIES, StrategyContext, build_strategy, variant_key
from lorafair.strategies.cfreg import CounterfactualInvariance, common_suffix, divergence
from lorafair.strategies.groupreg import group_gap
from helpers_lf import TINY, deep_update, hash_scorer, one_error_line

# -- registry, recipe section, crossing ---------------------------------------------------------------------


def test_registry_lists_the_strategies():
    assert STRATEGIES.names() == ["cda", "cfreg", "dpreg", "eoreg", "select"]
    assert all(STRATEGIES.help(n) for n in STRATEGIES.names())


@pytest.mark.parametrize("section,message", [
    ({"nope": {}}, "strategies='nope': expected one of cda, cfreg, dpreg, eoreg, select"),
    ({"cfreg": {"lamda": 1}}, "strategies.cfreg.lamda: unknown key"),
    ({"cfreg": {"lam": -1}}, "strategies.cfreg.lam=-1: Input should be greater than or equal to 0"),
    ({"cfreg": {"divergence": "kl"}}, "strategies.cfreg.divergence='kl'"),
    ({"cda": {"axes": ["age"]}}, "strategies.cda.axes=['age']: unknown axis 'age'"),
    ({"select": {"balance": "colour"}}, "strategies.select.balance='colour': expected one of gender, race, religion, "
                                        "field:NAME or field:NAME,NAME (distinct names)"),
    ({"select": {"balance": "field:group,"}}, "strategies.select.balance='field:group,': expected one of gender, race"),
    ({"select": {"balance": "field:a,a"}}, "strategies.select.balance='field:a,a': expected one of gender, race"),
    ({"select": {"balance": "field:a, a"}}, "strategies.select.balance='field:a, a': expected one of gender, race"),
    ({"select": {"max_toxicity": 1.5}}, "strategies.select.max_toxicity=1.5"),
    ({"select": 3}, "strategies.select=3: expected a mapping"),
    # named instances (use:) and a list lam
    ({"cfreg_lo": {"use": "cfreg2", "lam": 0.1}}, "strategies.cfreg_lo.use='cfreg2': expected one of cda, cfreg, dpreg, eoreg, select"),
    ({"cfreg_lo": {"lam": 0.1}}, "strategies='cfreg_lo': expected one of cda, cfreg, dpreg, eoreg, select, or an "
                                 "instance name with use: <strategy>"),
    ({"cfreg_lo": {"use": "cfreg", "lamda": 1}}, "strategies.cfreg_lo.lamda: unknown key"),
    ({"cfreg_lo": {"use": "cfreg", "lam": -1}}, "strategies.cfreg_lo.lam=-1: Input should be greater than or equal to 0"),
    ({"Cfreg-Lo": {"use": "cfreg"}}, "strategies='Cfreg-Lo': expected a strategy or instance name of lower-case letters, digits and '_'"),
    ({"lora": {"use": "cfreg"}}, "strategies='lora': expected a name other than base, full, lora,"),
    ({"full": {"use": "select"}}, "strategies='full': expected a name other than base, full, lora,"),
    ({"select": {"use": "cfreg"}}, "strategies.select.use='cfreg': expected 'select' or no use:"),
    ({"cfreg": {"lam": []}}, "strategies.cfreg.lam=[]: expected a number λ ≥ 0 or a non-empty list of them"),
    ({"cfreg": {"lam": [1, 1.0]}}, "strategies.cfreg.lam=[1, 1.0]: expected distinct values (λ = 1 is given twice)"),
    ({"cfreg": {"lam": [0.5, -1]}}, "strategies.cfreg.lam=-1: Input should be greater than or equal to 0"),
    ({"cfreg": {"lam": [1]}, "cfreg_lam1": {"use": "cfreg"}}, "strategies.cfreg_lam1: the instance name 'cfreg_lam1' is "
                                                              "given twice (also by strategies.cfreg;"),
    ({"select": {"lam": [1, 2]}}, "strategies.select.lam: unknown key"),
])
def test_bad_strategy_sections_are_one_line_errors(section, message):
    with pytest.raises(UserError) as e:
        validate_config(deep_update(TINY, {"strategies": section}))
    assert str(e.value).startswith(message), str(e.value)


@pytest.mark.parametrize("section,message", [
    ({"cfreg": {"lam": "big"}}, "error: strategies.cfreg.lam='big'"),
    ({"cfreg_lo": {"use": "nope", "lam": 0.1}}, "error: strategies.cfreg_lo.use='nope': expected one of cda, cfreg"),
])
def test_bad_strategy_on_the_cli_exits_2(cli, recipe, tmp_path, section, message):
    r = recipe({"strategies": section})
    line = one_error_line(*cli("run", r, "--out", tmp_path / "run", "--quiet")[::2])
    assert line.startswith(message), line
    assert not (tmp_path / "run").exists()


def test_named_instances_and_a_lam_list_read_back_from_the_saved_config():
    cfg = validate_config(deep_update(TINY, {"strategies": {
        "cfreg_lo": {"use": "cfreg", "lam": 0.1}, "cfreg_hi": {"use": "cfreg", "lam": 10, "divergence": "skl"},
        "dpreg": {"lam": [0, 0.25, 10, 1e-5]}, "select": {"use": "select", "balance": "gender"}}}))
    s = cfg.strategies
    assert list(s) == ["cfreg_lo", "cfreg_hi", "dpreg_lam0", "dpreg_lam0p25", "dpreg_lam10", "dpreg_lam1em05", "select"]
    assert [s[k].lam for k in list(s)[:6]] == [0.1, 10, 0, 0.25, 10, 1e-5] and s["cfreg_hi"].divergence == "skl"
    assert {k: c.use for k, c in s.items()} == {"cfreg_lo": "cfreg", "cfreg_hi": "cfreg", "dpreg_lam0": "dpreg",
                                                "dpreg_lam0p25": "dpreg", "dpreg_lam10": "dpreg", "dpreg_lam1em05": "dpreg",
                                                "select": ""}  # keyed by its own plug-in: no use (dumped as before)
    assert [type(build_strategy(k, s[k])) for k in ("cfreg_lo", "dpreg_lam10", "select")] == [
        STRATEGIES.get("cfreg"), STRATEGIES.get("dpreg"), STRATEGIES.get("select")]
    assert build_strategy("cfreg_lo", s["cfreg_lo"]).field == "strategies.cfreg_lo"
    dump = cfg.model_dump(mode="json")["strategies"]
    assert dump["cfreg_lo"] == {"use": "cfreg", "lam": 0.1, "divergence": "js", "axes": ["gender"]}
    assert "use" not in dump["select"]
    again = validate_config(cfg.model_dump(mode="json"))  # config.yaml of the run: the same instances
    assert again.model_dump(mode="json") == cfg.model_dump(mode="json") and again.strategies["dpreg_lam10"].use == "dpreg"
    # the instance's plug-in is part of its fingerprint: the same fields under another plug-in retrain
    vs = {v.name: v for v in plan_variants(cfg)}
    assert variant_key(vs["lora-r1+cfreg_lo"], cfg.strategies)["strategy"] == {
        "name": "cfreg_lo", "config": {"use": "cfreg", "lam": 0.1, "divergence": "js", "axes": ["gender"]}}


def test_two_instances_of_one_strategy_crossed_with_two_ranks():
    cfg = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [8, 2]}},
                                            "strategies": {"cfreg_lo": {"use": "cfreg", "lam": 0.1},
                                                           "cfreg_hi": {"use": "cfreg", "lam": 10}}}))
    vs = plan_variants(cfg)
    assert [v.name for v in vs] == ["base", "lora-r2", "lora-r8", "lora-r2+cfreg_lo", "lora-r8+cfreg_lo",
                                    "lora-r2+cfreg_hi", "lora-r8+cfreg_hi"]
    by = {v.name: v for v in vs}
    assert asdict(by["lora-r8+cfreg_hi"]) | {"name": "lora-r8", "strategy": ""} == asdict(by["lora-r8"])
    assert by["lora-r2+cfreg_lo"].strategy == "cfreg_lo"
    for name in ("lora-r8+cfreg_hi", "lora-r2+cfreg_lam0p1"):  # the names read back
        assert split_strategy(name)[1] in name and parse_variant(name) == ("lora", int(name[6]))
        assert parse_folder(variant_folder(name, 1)) == (name, 1)
    assert split_strategy("lora-r2+cfreg_lam0p1") == ("lora-r2", "cfreg_lam0p1")
    grid = validate_config(deep_update(TINY, {"variants": {"full": {"enabled": False}, "lora": {"ranks": [8, 2]}},
                                             "strategies": {"cfreg": {"lam": [0.1, 1, 10]}}}))
    assert [v.name for v in plan_variants(grid) if v.strategy] == [
        f"lora-r{r}+cfreg_lam{l}" for l in ("0p1", "1", "10") for r in (2, 8)]
    assert [grid.strategies[v.strategy].lam for v in plan_variants(grid) if v.strategy] == [0.1, 0.1, 1, 1, 10, 10]


def test_a_strategy_crossed_with_two_ranks_gives_exactly_the_strategy_variants():
    cfg = validate_config(deep_update(TINY, {"variants": {"lora": {"ranks": [8, 2]}},
                                            "strategies": {"cfreg": {"lam": 0.5}, "select": {}}}))
    vs = plan_variants(cfg)
    assert [v.name for v in vs] == ["base", "full", "lora-r2", "lora-r8", "full+cfreg", "lora-r2+cfreg", "lora-r8+cfreg",
                                    "full+select", "lora-r2+select", "lora-r8+select"]
    by = {v.name: v for v in vs}
    assert by["lora-r8+cfreg"].strategy == "cfreg" and by["lora-r8+cfreg"].rank == 8 and by["full+select"].method == "full"
    # the same method settings (lr, alpha, modules) as the plain variant: only the strategy differs
    assert asdict(by["lora-r8+cfreg"]) | {"name": "lora-r8", "strategy": ""} == asdict(by["lora-r8"])
    assert {v.strategy for v in vs if "+" not in v.name} == {""}
    plain = plan_variants(validate_config(TINY))
    assert [v.name for v in plain] == ["base", "full", "lora-r1", "lora-r4"]


def test_variant_names_round_trip_with_strategies(tmp_path):
    assert variant_name("lora", 8, "cfreg") == "lora-r8+cfreg" and variant_name("full", None, "select") == "full+select"
    assert parse_variant("lora-r8+cfreg") == ("lora", 8) and parse_variant("full+select") == ("full", None)
    assert split_strategy("lora-r8+cfreg") == ("lora-r8", "cfreg") and split_strategy("lora-r8") == ("lora-r8", "")
    assert parse_folder(variant_folder("lora-r16+dpreg", 3)) == ("lora-r16+dpreg", 3)
    lay = RunLayout(tmp_path)
    assert lay.strategy_data("select", 2) == tmp_path / "data" / "train-s2+select.jsonl"
    assert lay.strategy_marker("select", 2) == tmp_path / "data" / "train-s2+select.json"


def test_variant_key_keeps_plain_fingerprints_and_holds_the_strategy_config():
    cfg = validate_config(deep_update(TINY, {"strategies": {"cfreg": {"lam": 0.5}}}))
    vs = {v.name: v for v in plan_variants(cfg)}
    old = {k: v for k, v in asdict(vs["lora-r1"]).items() if k != "strategy"}  # a Variant before strategies existed
    assert variant_key(vs["lora-r1"], cfg.strategies) == old
    key = variant_key(vs["lora-r1+cfreg"], cfg.strategies)
    assert key["strategy"] == {"name": "cfreg", "config": {"lam": 0.5, "divergence": "js", "axes": ["gender"]}}
    cfg2 = validate_config(deep_update(TINY, {"strategies": {"cfreg": {"lam": 0.25}}}))
    assert variant_key(vs["lora-r1+cfreg"], cfg2.strategies) != key  # another λ: another training


# -- targeted data selection ---------------------------------------------------------------------------------

ROWS = ([{"text": f"He said thing {i}."} for i in range(30)] + [{"text": f"She said thing {i}."} for i in range(6)]
        + [{"text": f"They said thing {i}."} for i in range(10)] + [{"text": f"He and she said {i}."} for i in range(4)])


def _select(fields, rows=ROWS, seed=0):
    s = build_strategy("select", fields)
    return s.select(list(rows), StrategyContext(seed=seed)), s


def test_select_drops_records_the_scorer_rates_toxic():
    from helpers_lf import HashScorer

    name = hash_scorer("hash-select")
    out, s = _select({"max_toxicity": 0.5, "scorer": name})
    tox = {r["text"]: HashScorer(name).score([r["text"]])[0]["toxic"] for r in ROWS}
    assert out == [r for r in ROWS if tox[r["text"]] < 0.5]  # every record below the threshold, in order
    assert 0 < len(out) < len(ROWS) and s.summary["dropped_toxic"] == len(ROWS) - len(out)
    assert _select({"max_toxicity": 0.5, "scorer": name, "budget": 10})[0] == _select(
        {"max_toxicity": 0.5, "scorer": name, "budget": 10})[0]
    assert len(_select({"max_toxicity": 0.5, "scorer": name, "budget": 10})[0]) == 10


def test_select_balances_groups_within_the_budget_deterministically():
    from lorafair.data.wordlists import text_group

    out, s = _select({"balance": "gender", "budget": 40})
    assert len(out) <= 40
    groups = [text_group(r["text"], "gender") for r in out]
    # 14 ungrouped kept (10 "They ...", 4 "He and she ..." naming both groups), the other 26 split 13/13:
    # the 6 "She" records repeated (oversample) up to 13
    assert groups.count("male") == groups.count("female") == 13 and groups.count("") == 14 and len(out) == 40
    assert s.summary["groups"] == {"female": {"available": 6, "chosen": 13}, "male": {"available": 30, "chosen": 13}}
    assert out == _select({"balance": "gender", "budget": 40})[0]  # the same seed: the same records
    assert out != _select({"balance": "gender", "budget": 40}, seed=1)[0]  # another seed: another draw
    no_over, _ = _select({"balance": "gender", "budget": 40, "oversample": False, "ungrouped": "drop"})
    # ungrouped dropped: shares of 20; the 6 "She" records stay 6 without oversampling
    assert [text_group(r["text"], "gender") for r in no_over].count("female") == 6 and len(no_over) == 26
    by_field, _ = _select({"balance": "field:g"}, rows=[{"text": "a", "g": "x"}] * 8 + [{"text": "b", "g": "y"}] * 2)
    assert [r["g"] for r in by_field].count("x") == [r["g"] for r in by_field].count("y") == 5


def test_select_balances_the_cells_of_two_fields_undoing_a_label_bias():
    # a label bias against f: 2 of 10 f records positive, 6 of 10 m records; one record without a label
    rows = ([{"g": "f", "label": int(i < 2)} for i in range(10)] + [{"g": "m", "label": int(i < 6)} for i in range(10)]
            + [{"g": "m"}])
    rows = [r | {"prompt": f"r{i}", "completion": " yes"} for i, r in enumerate(rows)]
    out, s = _select({"balance": "field:g,label", "budget": 20}, rows=rows)
    cells = [(r["g"], r["label"]) for r in out if "label" in r]
    # the unlabelled record is ungrouped (kept); the other 19 split into 4 cells of 4 (f/1 oversampled from 2)
    assert {c: cells.count(c) for c in set(cells)} == {("f", 0): 4, ("f", 1): 4, ("m", 0): 4, ("m", 1): 4}
    assert len(out) == 17 and s.summary["groups"]["g=f, label=1"] == {"available": 2, "chosen": 4}
    positive_rate = {g: sum(r["label"] for r in out if r.get("g") == g and "label" in r) / 8 for g in "fm"}
    assert positive_rate == {"f": 0.5, "m": 0.5}
    assert out == _select({"balance": "field:g,label", "budget": 20}, rows=rows)[0]


def test_select_refuses_data_without_groups():
    with pytest.raises(UserError) as e:
        _select({"balance": "gender"}, rows=[{"text": "They said thing."}] * 5)
    assert str(e.value).startswith("strategies.select.balance='gender': expected training records naming at least "
                                   "two groups (found: none)")
    with pytest.raises(UserError, match=r"found: male\)"):
        _select({"balance": "gender"}, rows=[{"text": "He said."}] * 5)


# -- counterfactual augmentation -----------------------------------------------------------------------------

def test_cda_pairs_each_record_with_its_swap():
    s = build_strategy("cda", {})
    out = s.select([{"text": "He met his father."}, {"text": "No terms here."},
                    {"prompt": "Is she a nurse?", "completion": " yes", "group": "f"}], StrategyContext(seed=0))
    assert [(r.get("text") or r["prompt"], r["counterfactual"]) for r in out] == [
        ("He met his father.", False), ("She met her mother.", True), ("No terms here.", False),
        ("Is she a nurse?", False), ("Is he a nurse?", True)]
    assert out[-1]["group"] == "f" and out[-1]["source_text"] == "Is she a nurse? yes"
    with pytest.raises(UserError, match=r"^strategies.cda.axes=\['gender'\]: expected axes of which some training record"):
        s.select([{"text": "No terms here."}], StrategyContext(seed=0))


# -- counterfactual invariance ------------------------------------------------------------------------------

class BagModel(torch.nn.Module):
    """A toy LM: logits at position t = W · (sum of the embeddings of tokens 0..t). Whether it depends on the
    swapped words is planted in the embedding table."""

    def __init__(self, vocab=12, dim=4):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.emb = torch.nn.Parameter(torch.randn(vocab, dim, generator=g))
        self.out = torch.nn.Parameter(torch.randn(dim, vocab, generator=g))

    def forward(self, input_ids, attention_mask=None, use_cache=False):
        h = self.emb[input_ids].cumsum(1)
        return type("Out", (), {"logits": h @ self.out})()


class WordTok:
    """Word-level toy tokenizer: one id per word of a fixed vocabulary (he=1, she=2)."""

    vocab = {w: i for i, w in enumerate("<pad> he she went home the doctor said hi".split())}
    eos_token_id = None
    pad_token_id = 0

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": [self.vocab[w] for w in text.lower().split()]}


def _cf_batch(obj, rows):
    from lorafair.adapt.tokenize import collate

    enc = obj.encode(rows, WordTok(), 32)
    return collate(enc, 0) | obj.collate(enc, 0), enc


def test_counterfactual_invariance_zero_when_the_model_ignores_the_swap_positive_otherwise():
    obj = CounterfactualInvariance(2.0, "js", {"he": "she", "she": "he"})
    batch, enc = _cf_batch(obj, [{"text": "the doctor said he went home"}, {"text": "the doctor said hi"}])
    assert enc[0]["cf_input_ids"] == [5, 6, 7, 2, 3, 4] and enc[0]["cf_k"] == 3  # suffix "went home" + 1
    assert enc[1]["cf_k"] == 0 and batch["cf_index"].tolist() == [0]
    model = BagModel()
    with torch.no_grad():
        model.emb[2] = model.emb[1]  # "she" embedded as "he": the model ignores the swapped word
    assert float(obj.term(model, batch).detach()) == 0.0
    with torch.no_grad():
        model.emb[2] = model.emb[1] + 0.5  # a planted dependence on the identity term
    t = obj.term(model, batch)
    assert float(t.detach()) > 1e-4 and math.isclose(float(obj.penalty(model, batch).detach()), 2 * float(t.detach()), rel_tol=1e-6)
    t.backward()  # a training term: it has a gradient
    assert model.emb.grad[2].abs().sum() > 0
    # by hand: mean JS over the 3 aligned positions (predicting "went", "home", after "home")
    with torch.no_grad():
        la = torch.log_softmax(model(batch["input_ids"][:1]).logits[0, 3:6], -1)
        lb = torch.log_softmax(model(batch["cf_input_ids"]).logits[0, 3:6], -1)
        pa, pb = la.exp(), lb.exp()
        m = (pa + pb) / 2
        js = 0.5 * (pa * (pa / m).log()).sum(-1) + 0.5 * (pb * (pb / m).log()).sum(-1)
    assert math.isclose(float(t.detach()), float(js.mean()), rel_tol=1e-5)


def test_divergences_by_hand_and_refusal():
    p, q = torch.tensor([[0.5, 0.5]]).log(), torch.tensor([[0.9, 0.1]]).log()
    kl_pq = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    kl_qp = 0.9 * math.log(0.9 / 0.5) + 0.1 * math.log(0.1 / 0.5)
    assert math.isclose(float(divergence(p, q, "skl")), (kl_pq + kl_qp) / 2, rel_tol=1e-5)
    m = [0.7, 0.3]
    js = 0.5 * sum(a * math.log(a / b) for a, b in zip([0.5, 0.5], m)) + 0.5 * sum(a * math.log(a / b) for a, b in zip([0.9, 0.1], m))
    assert math.isclose(float(divergence(p, q, "js")), js, rel_tol=1e-5)
    assert common_suffix([1, 2, 3], [4, 2, 3]) == 2 and common_suffix([1], [2]) == 0
    with pytest.raises(UserError, match="^strategies.cfreg.axes: expected training records of which some name"):
        CounterfactualInvariance(1.0, "js", {"he": "she"}).encode([{"text": "the doctor said hi"}], WordTok(), 32)


# -- group penalties ----------------------------------------------------------------------------------------

def test_group_gap_equals_the_hand_computed_value():
    s = torch.tensor([0.0, math.log(3), -math.log(3), 0.0, 2.0])  # sigmoid: 0.5, 0.75, 0.25, 0.5, 0.8808
    g = torch.tensor([0, 0, 1, 2, -1])  # the last record names no group: never counted
    everyone = torch.ones(5, dtype=torch.bool)
    m0, m1, m2 = (0.5 + 0.75) / 2, 0.25, 0.5
    want = ((m0 - m1) ** 2 + (m0 - m2) ** 2 + (m1 - m2) ** 2) / 3
    assert math.isclose(float(group_gap(s, g, everyone)), want, rel_tol=1e-6)
    positive = torch.tensor([True, False, True, False, True])  # equal opportunity: positive records only
    assert math.isclose(float(group_gap(s, g, positive)), (0.5 - 0.25) ** 2, rel_tol=1e-6)
    assert float(group_gap(s, torch.tensor([0, 0, 0, 0, -1]), everyone)) == 0.0  # one group: nothing to compare


def test_group_penalty_refuses_text_or_single_group_data():
    from lorafair.models.tiny import build_tiny

    _, tok = build_tiny("llama")
    obj = build_strategy("dpreg", {}).objective(StrategyContext(seed=0, tokenizer=tok))
    with pytest.raises(UserError, match="^strategies.dpreg: expected prompt/completion"):
        obj.encode([{"text": "hi"}], tok, 32)
    with pytest.raises(UserError, match=r"^strategies.dpreg.group_field='group': expected .* \(found: a\)"):
        obj.encode([{"prompt": "Q?", "completion": " yes", "group": "a"}], tok, 32)
    eo = build_strategy("eoreg", {}).objective(StrategyContext(seed=0, tokenizer=tok))
    with pytest.raises(UserError, match="^strategies.eoreg.positive=' yes'"):
        eo.encode([{"prompt": "Q?", "completion": " no", "group": g} for g in "ab"], tok, 32)
    enc = eo.encode([{"prompt": "Q?", "completion": c, "group": g} for c, g in ((" yes", "a"), (" no", "b"))], tok, 32)
    n_prompt = len(tok("Q?")["input_ids"])  # the byte tokenizer: " yes" / " no" share the space, then y / n
    assert [e["answer_pos"] for e in enc] == [n_prompt] * 2 and [e["positive"] for e in enc] == [1, 0]
    assert (eo.yes, eo.no) == (tok(" yes", add_special_tokens=False)["input_ids"][1:2], tok(" n", add_special_tokens=False)["input_ids"][1:2])
    assert [enc[0]["input_ids"][n_prompt + 1]] == eo.yes  # the token predicted at answer_pos is the answer's own
    with pytest.raises(UserError, match=r"^strategies.eoreg.positive: expected training completions that are the answers"):
        eo.encode([{"prompt": "Q?", "completion": "maybe", "group": g} for g in "ab"], tok, 32)
    assert [e["group_id"] for e in enc] == [0, 1]


# -- end to end ---------------------------------------------------------------------------------------------

def _records(path):
    rows = []
    for i in range(24):
        who, group = ("he", "m") if i % 3 else ("she", "f")
        rows.append({"prompt": f"Applicant {i}: {who} has a job. Approve?", "completion": " yes" if i % 2 else " no",
                     "group": group})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_run_with_strategies_end_to_end(tmp_path):
    data = _records(tmp_path / "apps.jsonl")
    cfg = validate_config(deep_update(TINY, {
        "variants": {"full": {"enabled": False}, "lora": {"ranks": [1, 2]}},
        "data": {"train": {"source": f"jsonl:{data}", "limit": None}},
        "train": {"precision": "fp32"},
        "strategies": {"cfreg": {"lam": 0.0}, "dpreg": {"lam": 5.0}, "select": {"balance": "field:group", "prefer": "counterfactual_gap"},
                       "cda": {}},
    }))
    from lorafair.run.runner import Runner

    out = Runner(cfg, tmp_path / "run", quiet=True).run()
    names = sorted(p.name for p in out.glob("*-s0"))
    assert names == sorted(["base-s0"] + [f"lora-r{r}{s}-s0" for r in (1, 2) for s in ("", "+cfreg", "+dpreg",
                                                                                           "+select", "+cda")])
    tj = {n.removesuffix("-s0"): json.loads((out / n / "train.json").read_text()) for n in names if n != "base-s0"}
    # λ = 0: exactly plain fine-tuning's numbers (the penalty is computed, weighted 0)
    for r in (1, 2):
        plain, zero = tj[f"lora-r{r}"], tj[f"lora-r{r}+cfreg"]
        assert [h["loss"] for h in zero["history"]] == [h["loss"] for h in plain["history"]]
        assert zero["eval_loss"] == plain["eval_loss"] and zero["train_loss"] == plain["train_loss"]
        assert all("penalty" in h for h in zero["history"]) and "penalty" not in plain["history"][0]
    # λ > 0 changes the training (same data, same batches)
    assert tj["lora-r1+dpreg"]["eval_loss"] != tj["lora-r1"]["eval_loss"]
    # the data strategies: records saved in the run directory, used by their variants
    lay = RunLayout(out)
    chosen = [json.loads(x) for x in lay.strategy_data("select", 0).read_text().splitlines()]
    n_train = tj["lora-r1"]["train_records"]
    assert len(chosen) <= n_train and tj["lora-r1+select"]["train_records"] == len(chosen)
    assert [r["group"] for r in chosen].count("m") == [r["group"] for r in chosen].count("f")
    marker = json.loads(lay.strategy_marker("select", 0).read_text())
    assert marker["records"] == len(chosen) and marker["counterfactual_pairs"] == n_train  # the base model was asked
    assert tj["lora-r1+cda"]["train_records"] == 2 * n_train  # every record names "he" or "she"
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    strategy = {r["variant"]: r["strategy"] for r in rows}
    assert strategy["lora-r2+cfreg"] == "cfreg" and strategy["lora-r2"] == "" and strategy["base"] == ""
    assert {r["method"] for r in rows if r["variant"] == "lora-r2+dpreg"} == {"lora"}
    # resume: nothing is retrained, the saved selection is reused
    mtime = lay.strategy_data("select", 0).stat().st_mtime_ns
    before = {n: (out / n / "train.json").stat().st_mtime_ns for n in names if n != "base-s0"}
    Runner(cfg, out, quiet=True).run()
    assert {n: (out / n / "train.json").stat().st_mtime_ns for n in before} == before
    assert lay.strategy_data("select", 0).stat().st_mtime_ns == mtime
    # adding a strategy, and a second instance of one already there (cfreg at another λ), to the finished run
    # trains only their variants
    evaluated = {n: (out / n / "results" / "heldout.json").stat().st_mtime_ns for n in names}
    more = validate_config(deep_update(cfg.model_dump(mode="json"), {"strategies": {
        "eoreg": {"lam": 1.0}, "cfreg_hi": {"use": "cfreg", "lam": 2.0}}}))
    Runner(more, out, quiet=True).run()
    assert {n: (out / n / "train.json").stat().st_mtime_ns for n in before} == before
    assert {n: (out / n / "results" / "heldout.json").stat().st_mtime_ns for n in names} == evaluated
    assert sorted(p.name for p in out.glob("*+eoreg-s0")) == ["lora-r1+eoreg-s0", "lora-r2+eoreg-s0"]
    assert sorted(p.name for p in out.glob("*+cfreg*-s0")) == ["lora-r1+cfreg-s0", "lora-r1+cfreg_hi-s0",
                                                              "lora-r2+cfreg-s0", "lora-r2+cfreg_hi-s0"]
    for n in ("lora-r2+eoreg-s0", "lora-r1+cfreg_hi-s0"):
        assert (out / n / "results" / "heldout.json").is_file()
    hi = json.loads((out / "lora-r1+cfreg_hi-s0" / "train.json").read_text())
    assert hi["variant"]["strategy"] == "cfreg_hi" and hi["eval_loss"] != tj["lora-r1+cfreg"]["eval_loss"]
    assert {r["strategy"] for r in csv.DictReader((out / "metrics.csv").open())} >= {"cfreg", "cfreg_hi", "eoreg"}


def test_strategies_command_lists_them_and_their_fields(cli):
    code, out, _ = cli("strategies")
    assert code == 0 and [l.split(":")[0] for l in out.splitlines()] == ["cda", "cfreg", "dpreg", "eoreg", "select"]
    code, out, _ = cli("strategies", "cfreg")
    assert code == 0 and "  lam (default 1.0): λ" in out and "  needs: " in out
    assert "  a list lam gives one instance per λ: cfreg: {lam: [0.1, 1, 10]} -> cfreg_lam0p1, cfreg_lam1, cfreg_lam10" in out
    assert "<instance name>: {use: cfreg, …}" in out
    code, out, _ = cli("strategies", "select")
    assert code == 0 and "a list lam" not in out and "<instance name>: {use: select, …}" in out
    line = one_error_line(*cli("strategies", "nope")[::2])
    assert line.startswith("error: strategies='nope': expected one of cda, cfreg")


def test_select_prefers_records_the_base_model_treats_differently_from_their_counterfactual():
    from lorafair.adapt.tokenize import encode_record, sequence_nll
    from lorafair.data.wordlists import axes_mapping, swap_record
    from lorafair.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    rows = [{"text": t} for t in ("He is a nurse.", "She is a doctor.", "His father cooks.", "No terms at all.",
                                  "Her brother sings loudly.", "The king and his son.", "Nothing here either.",
                                  "She said he was late.")]
    ctx = StrategyContext(seed=0, tokenizer=tok, max_length=32, base_model=lambda: (model, tok))
    s = build_strategy("select", {"prefer": "counterfactual_gap", "budget": 3})
    out = s.select(rows, ctx)
    gap = {}
    for i, r in enumerate(rows):  # by hand, one record at a time
        cf, n = swap_record(r, axes_mapping(["gender"]))
        if n:
            (a,), (na,) = sequence_nll(model, [encode_record(r, tok, 32)], tok.pad_token_id, 1)
            (b,), (nb,) = sequence_nll(model, [encode_record(cf, tok, 32)], tok.pad_token_id, 1)
            gap[i] = abs(a / na - b / nb)
    top = sorted(sorted(gap, key=lambda i: -gap[i])[:3])
    assert out == [rows[i] for i in top] and s.summary["counterfactual_pairs"] == 6
    assert s.select(rows, ctx) == out  # deterministic
    with pytest.raises(UserError, match=r"^strategies.select.axes=\['gender'\]: expected axes of which some"):
        s.select([{"text": "No terms at all."}] * 4, ctx)


def test_cli_trains_one_strategy_variant_with_a_set_override(cli, recipe, tmp_path):
    """`lorafair train --variant lora-r1+cfreg` with `--set strategies.cfreg.lam=…`: the user's path."""
    r = recipe({"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}, "strategies": {"cfreg": {}},
                "train": {"precision": "fp32"}, "output": {"dir": str(tmp_path / "run")},
                "data": {"train": {"options": {"domain": "gender"}}}})  # BOLD's gender sentences: he/she …
    code, _, err = cli("train", r, "--variant", "lora-r1+cfreg", "--set", "strategies.cfreg.lam=0.5", "--quiet")
    assert code == 0, err
    tj = json.loads((tmp_path / "run" / "lora-r1+cfreg-s0" / "train.json").read_text())
    assert tj["variant"]["strategy"] == "cfreg" and all("penalty" in h for h in tj["history"])
    assert "lam: 0.5" in (tmp_path / "run" / "config.yaml").read_text()
    line = one_error_line(*cli("train", r, "--variant", "lora-r1+nope", "--quiet")[::2])
    assert line.startswith("error: --variant='lora-r1+nope': expected one of lora-r1, lora-r1+cfreg"), line


def test_a_strategy_the_data_cannot_serve_refuses_before_any_training(cli, recipe, tmp_path):
    # BOLD's profession sentences (the tiny recipe's data) name no gender term in these 18 records
    r = recipe({"variants": {"full": {"enabled": False}, "lora": {"ranks": [1]}}, "strategies": {"cfreg": {}}})
    line = one_error_line(*cli("run", r, "--out", tmp_path / "run", "--quiet")[::2])
    assert line.startswith("error: strategies.cfreg.axes: expected training records of which some name an identity term")
    assert not (tmp_path / "run").exists()  # nothing trained: the directory this run made is removed again


def _weights(folder):
    from safetensors.torch import load_file

    files = sorted(folder.rglob("*.safetensors"))
    assert files, f"no weights in {folder}"
    return {f"{f.relative_to(folder)}:{k}": t for f in files for k, t in load_file(str(f)).items()}


def test_cli_run_with_two_instances_of_cfreg(cli, recipe, tmp_path):
    """`lorafair run` with cfreg at λ = 0 and λ = 1 as two named instances: λ = 0 trains exactly plain fine-tuning
    (weights and metrics), λ = 1 does not; metrics.csv and report.md name both instances."""
    r = recipe({"variants": {"lora": {"ranks": [1]}}, "train": {"precision": "fp32"},
                "strategies": {"cf_zero": {"use": "cfreg", "lam": 0}, "cf_one": {"use": "cfreg", "lam": 1}},
                "data": {"train": {"options": {"domain": "gender"}}}})  # BOLD's gender sentences: he/she …
    code, _, err = cli("run", r, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    out = tmp_path / "run"
    assert sorted(p.name for p in out.glob("*-s0")) == sorted(
        [f"{v}{s}-s0" for v in ("full", "lora-r1") for s in ("", "+cf_zero", "+cf_one")] + ["base-s0"])
    for plain in ("lora-r1", "full"):
        w, w0, w1 = (_weights(out / f"{plain}{s}-s0") for s in ("", "+cf_zero", "+cf_one"))
        assert w.keys() == w0.keys() == w1.keys()
        assert all(torch.equal(w[k], w0[k]) for k in w)  # λ = 0: bit for bit plain fine-tuning
        assert not all(torch.equal(w[k], w1[k]) for k in w)  # λ = 1 moves the weights
        tj = {s: json.loads((out / f"{plain}{s}-s0" / "train.json").read_text()) for s in ("", "+cf_zero", "+cf_one")}
        assert tj["+cf_zero"]["eval_loss"] == tj[""]["eval_loss"] and tj["+cf_one"]["eval_loss"] != tj[""]["eval_loss"]
        assert tj["+cf_one"]["variant"]["strategy"] == "cf_one" and all(h["penalty"] > 0 for h in tj["+cf_one"]["history"])
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    value = {(r["variant"], r["metric"]): r["value"] for r in rows if r["study"] == "heldout" and not r["group"]}
    assert value[("lora-r1+cf_zero", "loss")] == value[("lora-r1", "loss")] != value[("lora-r1+cf_one", "loss")]
    assert {r["strategy"] for r in rows} == {"", "cf_zero", "cf_one"}
    assert {r["strategy"] for r in rows if r["variant"] == "full+cf_one"} == {"cf_one"}
    assert "use: cfreg" in (out / "config.yaml").read_text()
    md = (out / "report.md").read_text()
    assert ("- **strategies**: cf\\_one: use=cfreg, lam=1.0, divergence=js, axes=gender; cf\\_zero: use=cfreg, lam=0.0, "
            "divergence=js, axes=gender\n") in md  # the header says what each instance is
    front = md[md.index("### Per strategy"):md.index("## Study")]  # the per-strategy recommendation table
    assert [l.split(" | ")[0] for l in front.splitlines() if l.startswith("| lora")] == ["| lora\\+cf\\_one",
                                                                                        "| lora\\+cf\\_zero"]
    by_strategy = md[md.index("### Capture ratio by strategy"):]
    assert "| loss | lora\\+cf\\_one | " in by_strategy and "| loss | lora\\+cf\\_zero | " in by_strategy


def test_the_report_orders_the_instances_of_a_lam_list_by_lambda():
    from lorafair.report.load import sort_variants
    from lorafair.strategies import lam_suffix

    assert [lam_suffix(x) for x in (0, 0.1, 1, 10, 2.5, 1e-5)] == ["lam0", "lam0p1", "lam1", "lam10", "lam2p5", "lam1em05"]
    names = [f"lora-r2+cfreg_{lam_suffix(x)}" for x in (10, 0.5, 2, 1e-5)] + ["lora-r2", "lora-r2+cfreg", "lora-r2+select"]
    assert sort_variants(names) == ["lora-r2", "lora-r2+cfreg", "lora-r2+cfreg_lam1em05", "lora-r2+cfreg_lam0p5",
                                    "lora-r2+cfreg_lam2", "lora-r2+cfreg_lam10", "lora-r2+select"]


def test_an_external_variant_may_not_take_a_strategy_variant_name():
    rec = deep_update(TINY, {"variants": {"lora": {"ranks": [1]}, "external": [{"name": "lora-r1+cf_lo", "source": "x"}]},
                             "strategies": {"cf_lo": {"use": "cfreg", "lam": 0.1}}})
    with pytest.raises(UserError) as e:
        validate_config(rec)
    assert str(e.value) == ("variants.external[0].name='lora-r1+cf_lo': expected a name that no strategy variant of the "
                            "run has (lora-r1+cf_lo is lora-r1 trained with strategies.cf_lo)")
    rec["strategies"] = {"cf_hi": {"use": "cfreg", "lam": 10}}
    assert list(validate_config(rec).strategies) == ["cf_hi"]


def test_group_penalty_from_the_loss_pass_equals_its_own_pass_and_training_runs_the_model_once_per_step():
    """dpreg/eoreg read the answer position's logits from the LM loss's forward pass (one forward per
    micro-batch): the same penalty as their own pass, on a tiny model."""
    from lorafair.adapt.train import supervised_loss
    from lorafair.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    model.eval()
    rows = [{"prompt": f"Applicant {i} {'he' if i % 3 else 'she'} asks. Approve?", "completion": " yes" if i % 2 else " no",
             "group": "m" if i % 3 else "f"} for i in range(6)]
    for eo in (False, True):
        obj = build_strategy("eoreg" if eo else "dpreg", {"lam": 3.0}).objective(StrategyContext(seed=0, tokenizer=tok))
        enc = obj.encode(rows, tok, 64)
        n = max(len(e["input_ids"]) for e in enc)
        batch = {"input_ids": torch.tensor([e["input_ids"] + [tok.pad_token_id] * (n - len(e["input_ids"])) for e in enc]),
                 "attention_mask": torch.tensor([[1] * len(e["input_ids"]) + [0] * (n - len(e["input_ids"])) for e in enc]),
                 "labels": torch.tensor([e["labels"] + [-100] * (n - len(e["labels"])) for e in enc])}
        batch |= obj.collate(enc, tok.pad_token_id)
        with torch.no_grad():
            own = obj.penalty(model, batch)
            loss, logits, keep = supervised_loss(model, batch, with_logits=True)
            shared = obj.penalty_from_logits(logits, keep, batch)
        assert float(own) > 0 and math.isclose(float(shared), float(own), rel_tol=1e-3)  # a squared gap of nearby means: float rounding
        assert math.isclose(float(loss), float(supervised_loss(model, batch)), rel_tol=1e-6)
        unsupervised = keep.clone()
        unsupervised[0, batch["answer_pos"][0]] = False  # an answer position the loss did not keep: falls back
        assert obj.penalty_from_logits(logits[: int(unsupervised.sum())], unsupervised, batch) is None


def test_training_with_a_group_penalty_runs_the_model_once_per_micro_batch():
    from lorafair.adapt.train import train_model
    from lorafair.config.schema import TrainConfig
    from lorafair.models.tiny import build_tiny

    model, tok = build_tiny("llama")
    rows = [{"prompt": f"Applicant {i} asks. Approve?", "completion": " yes" if i % 2 else " no", "group": "ab"[i % 3 == 0]}
            for i in range(12)]
    obj = build_strategy("dpreg", {"lam": 2.0}).objective(StrategyContext(seed=0, tokenizer=tok))
    calls = []
    model.register_forward_pre_hook(lambda *a, **k: calls.append(1))
    res = train_model(model, tok, obj.encode(rows, tok, 64), [], TrainConfig(max_steps=3, batch_size=4, precision="fp32"),
                      1e-3, 0, torch.device("cpu"), progress=False, objective=obj)
    assert len(calls) == 3 and any(h["penalty"] > 0 for h in res.history)
