"""The fairness–utility trade-off in the report (issue 16): the Pareto front on hand-checked points in both
directions, distance to an ideal, the section in report.md / report.html (present with the right rows, absent or
explained without a guard), hostile labels, per-strategy capture rows and recommendations, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pytest
from report_synth import make_run

from lorafair.report import write_report
from lorafair.report.context import run_metas
from lorafair.report.load import Estimate, load_run, sort_variants
from lorafair.report.recommend import capture_table, recommend, recommend_strategies
from lorafair.report.tradeoff import Axis, distance, target_axes, tradeoff, utility_axis
from lorafair.run.layout import COLUMNS, parse_variant, split_strategy

# (gap, acc, loss) per variant: gap a fairness target (lower is better), acc and loss two utilities
POINTS = {
    "base": (0.30, 0.80, 2.00),
    "lora-r1": (0.25, 0.79, 2.10),
    "lora-r4": (0.20, 0.70, 2.30),
    "lora-r1+dpreg": (0.10, 0.75, 2.20),
    "lora-r4+dpreg": (0.12, 0.72, 2.15),
    "full": (0.15, 0.78, 2.40),
    "full+dpreg": (0.05, 0.60, 2.60),
}
# worked by hand, x sorted: full+dpreg (.05) nothing better on x: front; r1+dpreg (.10, acc .75): front;
# r4+dpreg (.12, .72) beaten by r1+dpreg on both; full (.15, .78): front; r4 (.20, .70) beaten by full;
# r1 (.25, .79) front; base (.30, .80) front.
FRONT_ACC = {"full+dpreg", "lora-r1+dpreg", "full", "lora-r1", "base"}
# loss (lower is better): full+dpreg front; r1+dpreg (.10, 2.20) front; r4+dpreg (.12, 2.15) front; full
# (.15, 2.40) beaten by r4+dpreg; r4 (.20, 2.30) beaten by r4+dpreg; r1 (.25, 2.10) front; base (.30, 2.00) front.
FRONT_LOSS = {"full+dpreg", "lora-r1+dpreg", "lora-r4+dpreg", "lora-r1", "base"}

ROLES = {"gap": {"role": "target", "direction": "lower", "ideal": 0.0},
         "acc": {"role": "guard", "direction": "higher"},
         "ss": {"role": "target", "direction": "none", "ideal": 50.0}}


def hand_run(root: Path, points=POINTS, roles=ROLES, extra_rows=(), study="cls", forgetting=True) -> Path:
    """A run directory with one study of the given metric roles (no capture rows) and, with ``forgetting``, a
    forgetting study whose ``loss`` is a guard (lower is better)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for v, (gap, acc, loss) in points.items():
        method, rank = parse_variant(v)
        strategy = split_strategy(v)[1]
        base = [v, method, rank if rank is not None else "", 0]
        for metric, val in (("gap", gap), ("acc", acc)):
            if metric in roles:
                rows.append(base + [study, metric, "", val, val - 0.01, val + 0.01, 100, "", strategy])
        if forgetting:
            rows.append(base + ["forgetting", "loss", "", loss, loss - 0.02, loss + 0.02, 100, "", strategy])
    rows += list(extra_rows)
    with open(root / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        w.writerows(rows)
    meta = {study: {"_study": {"headline": [m for m in ("gap", "ss", "acc") if m in roles]}} | roles}
    if forgetting:
        meta["forgetting"] = {"_study": {"headline": ["loss"]}, "loss": {"role": "guard", "direction": "lower"}}
    (root / "metric_roles.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def front_of(t) -> set[str]:
    return {p.variant for p in t.points if p.on_front}


def test_pareto_front_of_hand_checked_points_in_both_directions(tmp_path):
    run = load_run(hand_run(tmp_path / "run"))
    gap = Axis("cls", "gap", "lower")
    t = tradeoff(run, gap, Axis("cls", "acc", "higher"))
    assert front_of(t) == FRONT_ACC
    assert [p.variant for p in t.front] == ["full+dpreg", "lora-r1+dpreg", "full", "lora-r1", "base"]  # x order
    t = tradeoff(run, gap, Axis("forgetting", "loss", "lower"))
    assert front_of(t) == FRONT_LOSS
    # both axes "higher is better": base (.30, .80) has the largest gap and the best accuracy, beating all
    assert front_of(tradeoff(run, Axis("cls", "gap", "higher"), Axis("cls", "acc", "higher"))) == {"base"}
    p = {q.variant: q for q in t.points}
    assert (p["lora-r4+dpreg"].family, p["lora-r4+dpreg"].rank, p["lora-r4+dpreg"].strategy) == ("lora", 4, "dpreg")
    assert (p["full+dpreg"].family, p["full+dpreg"].rank, p["full+dpreg"].strategy) == ("full", None, "dpreg")


def test_strategy_variants_sort_next_to_their_plain_variant():
    assert sort_variants(["full+cfreg", "full", "lora-r2+cfreg", "dora-r2", "lora-r2", "lora-r1", "base"]) == \
        ["base", "lora-r1", "lora-r2", "lora-r2+cfreg", "dora-r2", "full", "full+cfreg"]


def test_a_variant_missing_one_value_is_listed_but_on_no_front(tmp_path):
    extra = [["lora-r8", "lora", 8, 0, "cls", "gap", "", 0.01, 0.0, 0.02, 100, "", ""]]  # no acc: would beat all on x
    run = load_run(hand_run(tmp_path / "run", extra_rows=extra))
    t = tradeoff(run, Axis("cls", "gap", "lower"), Axis("cls", "acc", "higher"))
    p = {q.variant: q for q in t.points}
    assert p["lora-r8"].y is None and not p["lora-r8"].on_front
    assert front_of(t) == FRONT_ACC


def test_distance_to_an_ideal_and_its_interval():
    assert distance(Estimate(45.0, 43.0, 48.0), 50.0) == Estimate(5.0, 2.0, 7.0)
    assert distance(Estimate(49.0, 47.0, 52.0), 50.0) == Estimate(1.0, 0.0, 3.0)  # the interval holds the ideal
    d = distance(Estimate(53.0), 50.0)
    assert d.value == 3.0 and not d.has_ci


def test_axes_chosen_from_the_roles(tmp_path):
    ss = [[v, parse_variant(v)[0], parse_variant(v)[1] or "", 0, "cls", "ss", "", s, s - 1, s + 1, 100, "", ""]
          for v, s in (("base", 60.0), ("full", 45.0), ("lora-r1", 52.0))]
    run = load_run(hand_run(tmp_path / "run", extra_rows=ss))
    metas = run_metas(run)
    xs = target_axes(run, metas["cls"])
    assert [(a.metric, a.better, a.ideal) for a in xs] == [("gap", "lower", None), ("ss", "lower", 50.0)]
    assert xs[1].label == "|ss − 50|" and xs[1].value(run, "full") == Estimate(5.0, 4.0, 6.0, 100)
    y = utility_axis(run, metas, "cls")  # the study's own guard first
    assert (y.study, y.metric, y.better) == ("cls", "acc", "higher")
    # without its own guard: the forgetting study's (a study without targets)
    run = load_run(hand_run(tmp_path / "noacc", roles={"gap": ROLES["gap"]}))
    y = utility_axis(run, run_metas(run), "cls")
    assert (y.study, y.metric, y.better) == ("forgetting", "loss", "lower")
    run = load_run(hand_run(tmp_path / "none", roles={"gap": ROLES["gap"]}, forgetting=False))
    assert utility_axis(run, run_metas(run), "cls") is None


def _md_row(md: str, first_cell: str) -> list[str]:
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {first_cell} |"))
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def test_the_section_lists_every_point_and_its_fronts(tmp_path):
    out = write_report(hand_run(tmp_path / "run"))
    md, html = out["md"].read_text(), out["html"].read_text()
    assert md.count("### Fairness–utility trade-off") == 1  # cls only: forgetting has no target
    assert "Fairness–utility trade-off" in html
    assert any(p.name == "cls-gap-tradeoff.png" for p in out["plots"])
    part = md[md.index("### Fairness–utility trade-off"):]
    header = _md_row(part, "variant")
    assert header == ["variant", "strategy", "rank", "acc \\(cls\\) ↑", "gap ↓", "on the front of"]
    for v, (gap, acc, _) in POINTS.items():
        cells = _md_row(part, v.replace("+", "\\+"))
        assert cells[3] == f"{acc:.3f} \\[{acc - 0.01:.3f}, {acc + 0.01:.3f}\\]"
        assert cells[-1] == ("gap" if v in FRONT_ACC else "–"), v
        assert cells[4] == f"{gap:.3f} \\[{gap - 0.01:.3f}, {gap + 0.01:.3f}\\]"
    assert _md_row(part, "lora-r4\\+dpreg")[1:3] == ["dpreg", "4"] and _md_row(part, "lora-r4")[1] == "plain"
    assert _md_row(part, "base")[1:3] == ["–", "–"]
    assert "acc (cls study, guard; higher is better)" in html and "better lies upper left" in html


def test_no_guard_no_section_and_with_strategies_a_note(tmp_path):
    md = write_report(make_run(tmp_path / "plain", ranks=(1, 4), studies=("toxicity",), samples=False))["md"].read_text()
    assert "trade-off" not in md.lower()
    md = write_report(make_run(tmp_path / "strat", ranks=(1, 4), studies=("toxicity",), samples=False,
                               strategies={"cfreg": 2.0}))["md"].read_text()
    assert "### Fairness–utility trade-off" in md and "No trade-off figure: the run measures no utility" in md
    md = write_report(make_run(tmp_path / "guard", ranks=(1, 4), studies=("toxicity",), samples=False,
                               guards=True))["md"].read_text()  # a plain ladder with a guard: the trade-off too
    assert "### Fairness–utility trade-off" in md and "Capture ratio by strategy" not in md
    # the heldout study's target (the loss on the fine-tuning data's held-out records) is no fairness measure
    md = write_report(make_run(tmp_path / "held", ranks=(1, 4), studies=("toxicity", "heldout"), samples=False,
                               guards=True))["md"].read_text()
    assert md.count("### Fairness–utility trade-off") == 1 and "heldout-loss-tradeoff" not in md


MATH = "$x^2$"


def test_hostile_names_are_plain_text_in_the_plot_and_escaped_in_the_report(tmp_path, figure_texts):
    seen = figure_texts
    evil = "<script>alert(1)</script>"
    points = dict(POINTS) | {evil: (0.02, 0.50, 3.0), MATH: (0.40, 0.90, 1.9)}
    roles = {MATH + " gap": ROLES["gap"], "acc": ROLES["acc"]}
    root = hand_run(tmp_path / "run", points=points, roles={"gap": ROLES["gap"], "acc": ROLES["acc"]})
    # a hostile metric name too: the target renamed
    text = (root / "metrics.csv").read_text().replace(",cls,gap,", f",cls,{MATH} gap,")
    (root / "metrics.csv").write_text(text)
    (root / "metric_roles.json").write_text(json.dumps({"cls": {"_study": {"headline": [MATH + " gap", "acc"]}} | roles}))
    out = write_report(root)
    md, html = out["md"].read_text(), out["html"].read_text()
    assert "<script>" not in md and "<script>" not in html
    assert "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in md  # the variant's row of the trade-off table
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    cells = _md_row(md[md.index("### Fairness–utility trade-off"):], "&lt;script&gt;alert\\(1\\)&lt;/script&gt;")
    assert cells[-1] != "–"  # the lowest gap of all: on the front
    texts = {t for t, _, _ in seen}
    assert evil in texts and MATH in texts  # legend labels (a variant without a rank is its own series), as written
    assert any(t.startswith(MATH + " gap") for t in texts)  # the x label
    assert not [t for t, m, tex in seen if "$" in t and (m or tex)]


def test_per_strategy_capture_rows_match_a_hand_computation(tmp_path):
    run = load_run(make_run(tmp_path / "run", ranks=(1, 4, 16), studies=("toxicity",), samples=False,
                            strategies={"cfreg": 2.0}))
    meta = run_metas(run)["toxicity"]
    (emt,) = capture_table(run, meta, "lora", ["emt"], strategy="cfreg")
    half = 2 * 0.02 / 0.30  # report_synth: interval half-width 2·hw / |base − full| for emt
    for r in (1, 4, 16):
        c = 1 - math.exp(-2 * r / 16)  # rank factor 2
        got = emt.by_rank[r]
        assert got.value == pytest.approx(c, abs=1e-6)
        assert (got.ci_low, got.ci_high) == pytest.approx((c - half, c + half), abs=2e-6)
    (plain,) = capture_table(run, meta, "lora", ["emt"])  # the plain ladder reads only lora-r<r>
    assert [plain.by_rank[r].value for r in (1, 4, 16)] == pytest.approx([1 - math.exp(-r / 16) for r in (1, 4, 16)],
                                                                         abs=1e-6)
    md = write_report(run.run_dir)["md"].read_text()
    row = _md_row(md, "emt | lora\\+cfreg")
    c4 = 1 - math.exp(-0.5)
    assert row[3] == f"{c4:.3f} \\[{c4 - half:.3f}, {c4 + half:.3f}\\]"  # r=4
    assert "toxicity-emt-capture-strategies.png" in md


def test_per_strategy_recommendation_and_the_plain_one_unchanged(tmp_path):
    ranks = (16, 32, 64, 128, 256)
    with_s = load_run(make_run(tmp_path / "s", ranks=ranks, studies=("shift",), artifacts=False,
                               strategies={"cfreg": 2.0, "select": 0.5}))
    without = load_run(make_run(tmp_path / "p", ranks=ranks, studies=("shift",), artifacts=False))
    metas = run_metas(with_s)
    # kl_full_v: half-width 2·0.02/0.8 = 0.05, so a rank reaches [0.9, 1.1] when 1 − exp(−k·r/16) ≥ 0.95:
    # k·r ≥ 16·ln 20 = 47.9. plain (k=1): r=64; cfreg (k=2): r=32; select (k=0.5): r=128
    plain = recommend(with_s, metas)
    assert plain["shift"][0].rank == 64 and plain["shift"][0].strategy == ""
    assert [(r.label, r.text) for r in plain["shift"]] == [(r.label, r.text) for r in recommend(without, run_metas(without))["shift"]]
    srec = recommend_strategies(with_s, metas)
    assert {r.label: r.rank for r in srec["shift"]} == {"lora+cfreg": 32, "lora+select": 128}
    assert {r.label: r.rank for r in srec["overall"]} == {"lora+cfreg": 32, "lora+select": 128}
    assert srec["shift"][0].text.startswith("Smallest lora+cfreg rank whose paired capture interval")
    assert recommend_strategies(without, run_metas(without)) == {}
    md = write_report(with_s.run_dir)["md"].read_text()
    front = md[md.index("## Rank recommendation"):md.index("## Study")]
    assert "### Per strategy" in front
    assert _md_row(front, "lora\\+cfreg")[1:3] == ["r=32", "r=64"]
    assert _md_row(front, "lora\\+select")[1:3] == ["r=128", "r=64"]


def test_study_strategy_table_puts_each_ladder_next_to_its_own_methods_plain_rank(tmp_path):
    """lora and dora crossed with cfreg: the dora+cfreg row's plain cell is dora's plain rank, under a header that
    names no one method (it read "plain lora" above dora's rank)."""
    run = load_run(make_run(tmp_path / "run", ranks=(16, 32, 64, 128), studies=("shift",), methods=("lora", "dora"),
                            artifacts=False, strategies={"cfreg": 2.0}))
    plain = {r.method: f"r={r.rank}" for r in recommend(run, run_metas(run))["shift"]}
    assert plain["lora"] != plain["dora"]  # report_synth: dora captures 1.1 times as much (lora r=64, dora r=32)
    md = write_report(run.run_dir)["md"].read_text()
    study = md[md.index("## Study"):]
    assert "| ladder | recommended rank | plain | why |" in study and "| plain lora |" not in study
    assert _md_row(study, "lora\\+cfreg")[2] == plain["lora"] and _md_row(study, "dora\\+cfreg")[2] == plain["dora"]


def test_compare_lists_the_strategy_ladders(tmp_path):
    from lorafair.report import write_compare

    a = make_run(tmp_path / "a", ranks=(16, 32, 64), studies=("shift",), artifacts=False, strategies={"cfreg": 2.0})
    b = make_run(tmp_path / "b", ranks=(16, 32, 64), studies=("shift",), artifacts=False)
    md = write_compare([a, b], tmp_path / "cmp")["md"].read_text()
    row = _md_row(md, "overall")
    assert row[1] == "lora: r=64; lora\\+cfreg: r=32" and row[2] == "lora: r=64"


def test_cli_run_with_a_strategy_writes_the_tradeoff(cli, recipe, tmp_path):
    """`lorafair run` on tiny:llama with cfreg and the stereotype benchmarks: report.md has the trade-off of the
    stereotype scores against StereoSet's language-model score, with the strategy's variants in its table, and the capture by strategy; the
    heldout study (its loss is no fairness measure) has none."""
    r = recipe({"variants": {"lora": {"ranks": [1, 2]}}, "strategies": {"cfreg": {"lam": 0.5}},
                "train": {"precision": "fp32"}, "data": {"train": {"options": {"domain": "gender"}}},
                "studies": {"heldout": {"max_length": 32, "n_boot": 50},
                            "stereotypes": {"benchmarks": ["crows", "stereoset"], "limit": {"crows": 16, "stereoset": 4},
                                            "n_boot": 100}}})
    code, _, err = cli("run", r, "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    md = (tmp_path / "run" / "report.md").read_text()
    part = md[md.index("### Fairness–utility trade-off"):]
    assert "(stereotypes study, guard; higher is better\\)" in part
    for v in ("base", "lora-r1", "lora-r2", "lora-r1\\+cfreg", "lora-r2\\+cfreg", "full", "full\\+cfreg"):
        assert re.search(rf"^\| {re.escape(v)} \|", part, re.M), v
    assert "### Capture ratio by strategy" in md and "| loss | lora\\+cfreg |" in md
    plots = {p.name for p in (tmp_path / "run" / "plots").iterdir()}
    assert "stereotypes-crows-stereotype-pct-tradeoff.png" in plots and not any(p.startswith("heldout-") and "tradeoff" in p
                                                                            for p in plots)
