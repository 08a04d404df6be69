"""The ``forgetting`` study: loss on general text no variant trained on (a guard), against a hand computation,
end to end through the CLI (paired delta rows), and enabled, disjoint from the training data, in every
shipped recipe."""

import csv
import math

import pytest
import torch

from lorafair.config.load import load_config, recipe_names
from lorafair.data.options import load_spec
from lorafair.data.registry import DataContext
from lorafair.models.tiny import build_tiny
from lorafair.studies.base import STUDIES, metric_specs

from helpers_lf import eval_context

SPEC = {"source": "bold-wiki", "options": {"split": "eval"}, "limit": 4}


def test_registered_as_a_guard_with_paired_items():
    cls = STUDIES.get("forgetting")
    specs = metric_specs(cls)
    assert specs["loss"].role == "guard" and specs["loss"].direction == "lower" and specs["loss"].unit == "texts"
    assert cls.Config().data.source == "bold-wiki" and cls.Config().data.options == {"split": "eval"}


def test_loss_equals_a_hand_computation(tmp_path):
    model, tok = build_tiny("llama", seed=1)
    ctx = eval_context("forgetting", model=model, tokenizer=tok, out_dir=tmp_path / "base-s0",
                       study_config={"data": SPEC, "max_length": 24, "batch_size": 3, "n_boot": 100})
    res = STUDIES.get("forgetting")().evaluate(ctx)
    rows = {r.metric: r for r in res.metrics}
    texts = [r["text"] for r in load_spec(SPEC, DataContext(seed=0), "x")]
    assert len(texts) == 4
    nll, n = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = (tok(t, add_special_tokens=True)["input_ids"] + [tok.eos_token_id])[:24]
            if ids[0] != model.config.bos_token_id:  # no BOS from the tokenizer: scored after the model's BOS
                ids = [model.config.bos_token_id] + ids  # (lm-evaluation-harness's prefix token), so every token counts
            ids = torch.tensor(ids)[None]
            logp = model(ids).logits[0, :-1].log_softmax(-1)
            nll -= float(logp.gather(1, ids[0, 1:, None]).sum())
            n += ids.shape[1] - 1
    assert rows["loss"].value == pytest.approx(nll / n, rel=1e-5)
    assert rows["perplexity"].value == pytest.approx(math.exp(nll / n), rel=1e-5)
    assert rows["loss"].ci_low < rows["loss"].value < rows["loss"].ci_high and rows["loss"].n == 4
    items = res.items["texts"]
    assert len(items.ids) == 4 and items.columns["tokens"].sum() == n
    assert items.columns["nll"].sum() == pytest.approx(nll, rel=1e-5)


def test_cli_run_writes_loss_and_paired_delta_rows(cli, recipe, tmp_path):
    path = recipe({"data": {"train": {"source": "bold-wiki", "options": {"split": "train"}, "limit": 24}},
                   "variants": {"lora": {"ranks": [2]}},
                   "studies": {"forgetting": {"data": SPEC, "max_length": 32, "n_boot": 100}}})
    out = tmp_path / "run"
    code, _, err = cli("run", path, "--out", out)
    assert code == 0, err
    with open(out / "metrics.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["study"] == "forgetting" and not r["group"]]
    by = {(r["variant"], r["metric"]): r for r in rows}
    for v in ("base", "full", "lora-r2"):
        assert float(by[(v, "loss")]["value"]) > 0
    for v in ("full", "lora-r2"):
        d = by[(v, "delta_loss")]
        assert float(d["value"]) == pytest.approx(float(by[(v, "loss")]["value"]) - float(by[("base", "loss")]["value"]), abs=2e-5)  # csv: 6 digits
        assert float(d["ci_low"]) <= float(d["value"]) <= float(d["ci_high"])
    assert ("lora-r2", "capture_loss") not in by  # a guard: no capture ratio
    assert abs(float(by[("full", "delta_loss")]["value"])) > 0  # training moved the loss: the rows can tell


def _texts(records) -> set[str]:
    return {r[k] for r in records for k in ("text", "prompt", "completion", "source_text") if isinstance(r.get(k), str)}


@pytest.mark.parametrize("name", recipe_names())
def test_every_shipped_recipe_guards_forgetting_on_text_it_never_trains_on(name):
    cfg = load_config(name)
    assert "forgetting" in cfg.studies, f"recipe {name} has no forgetting guard"
    fcfg = cfg.studies["forgetting"]
    dctx = DataContext(seed=cfg.seeds[0])
    general = load_spec(fcfg.data, dctx, "studies.forgetting.data")
    train_specs = [cfg.data.train] + ([cfg.start.data] if cfg.start is not None else [])
    for spec in train_specs:
        if spec.source == "counterfactual":  # completions sampled from the model, on these prompts
            spec = spec.options["prompts"]
        records = load_spec(spec, dctx, "data.train")
        seen = _texts(records)
        assert not any(r["text"] in seen for r in general), f"{name}: a forgetting text is in the training data"
        pages = {r.get("template") for r in records if r.get("source") == "bold-wiki"}
        assert not pages & {r.get("template") for r in general}, f"{name}: forgetting and training share BOLD pages"
