"""End to end on the tiny recipe: the runner saves per-item values, writes paired capture_/delta_ rows
into metrics.csv and metric_roles.json, and the report recommends from them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from lorafair.cli import main
from lorafair.run.paired import load_items


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("paired") / "run"
    assert main(["run", "tiny", "--out", str(out), "--quiet"]) == 0
    return out


def _rows(out):
    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_capture_rows_equal_a_hand_computation_from_the_item_files(tiny_run):
    rows = _rows(tiny_run)
    assert "note" in rows[0]
    by = {(r["variant"], r["metric"]): r for r in rows if r["study"] == "heldout" and not r["group"]}

    def loss(variant):
        ids, cols = load_items(tiny_run / f"{variant}-s0" / "results" / "heldout.items.npz")["sequences"]
        return cols["nll"].sum() / cols["tokens"].sum()

    b, f = loss("base"), loss("full")
    for v in ("lora-r1", "lora-r4"):
        assert float(by[(v, "loss")]["value"]) == pytest.approx(loss(v), rel=1e-5)
        cap = by[(v, "capture_loss")]
        assert float(cap["value"]) == pytest.approx((b - loss(v)) / (b - f), rel=1e-4)
        assert float(cap["ci_low"]) < float(cap["value"]) < float(cap["ci_high"])
        assert float(by[(v, "delta_loss")]["value"]) == pytest.approx(loss(v) - b, rel=1e-4, abs=1e-6)
    assert ("full", "delta_loss") in by and ("full", "capture_loss") not in by and ("base", "delta_loss") not in by
    assert ("lora-r4", "capture_perplexity") not in by  # a diagnostic is never a capture target


def test_roles_file_and_report_recommendation(tiny_run):
    roles = json.loads((tiny_run / "metric_roles.json").read_text())
    assert roles["heldout"]["loss"]["role"] == "target" and roles["heldout"]["perplexity"]["role"] == "diagnostic"
    md = (tiny_run / "report.md").read_text()
    assert "Rank recommendation" in md and "paired capture interval" in md
    assert "detectable Δ" in md


def test_items_are_aligned_across_variants(tiny_run):
    ids = [load_items(tiny_run / f"{v}-s0" / "results" / "heldout.items.npz")["sequences"][0]
           for v in ("base", "full", "lora-r1", "lora-r4")]
    assert all(i == ids[0] for i in ids) and len(ids[0]) > 1
    toks = [load_items(tiny_run / f"{v}-s0" / "results" / "heldout.items.npz")["sequences"][1]["tokens"]
            for v in ("base", "lora-r4")]
    assert np.array_equal(*toks)
