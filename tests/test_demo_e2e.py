"""`lorafair demo` end to end (detox data, training, toxicity, shift, report) with the demo recipe's
pipeline shrunk onto a tiny model through --set."""

import csv
import json


def test_demo_pipeline_on_tiny_model(cli, tmp_path):
    out = tmp_path / "demo"
    prompts = "{source: honest, options: {axis: [race, religion], split: eval}, limit: 4}"
    code, stdout, err = cli(
        "demo", "--out", out, "--quiet",
        "--set", "model.source=tiny:llama",
        "--set", "train.max_steps=2",
        "--set", "variants.lora.ranks=[2]",
        "--set", "data.train.options.prompts.limit=6",
        "--set", "data.train.options.k=2",
        "--set", "data.train.options.max_new_tokens=6",
        "--set", "data.train.options.threshold=0.9",  # a random model's byte soup scores ~0.06-0.1
        "--set", f"studies.toxicity.prompts={prompts}",
        "--set", "studies.toxicity.k=2",
        "--set", "studies.toxicity.max_new_tokens=6",
        "--set", "studies.toxicity.perplexity_data.limit=4",
        "--set", "studies.shift.max_sequences=4",
    )
    assert code == 0, err
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    got = {(r["variant"], r["study"], r["metric"]) for r in rows if r["group"] == ""}
    for v in ("base", "full", "lora-r2"):
        for m in ("emt", "toxicity_prob", "mean_toxicity", "perplexity", "emt_vs_base"):
            assert (v, "toxicity", m) in got
        assert (v, "shift", "kl_full_v") in got
    samples = [json.loads(l) for l in (out / "lora-r2-s0" / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 4 * 2 and all("toxic" in s["scores"] for s in samples)
    cf = [json.loads(l) for l in (out / "data" / "train-s0.jsonl").read_text().splitlines()]
    assert cf and all(r["source"] == "counterfactual" and r["score"] < 0.9 for r in cf)
    html = (out / "report.html").read_text()
    assert "toxicity" in html and "<script>alert" not in html
    assert "| base | 0 |" in stdout and (out / "spectrum.json").is_file()
