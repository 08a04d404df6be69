"""Report sections per study (lorafair.report.sections): the generic section of a study without a module
of its own, every registered section module on a synthetic run, and the PEFT method colours."""

from __future__ import annotations

import csv
import json

from report_synth import STUDY_SHAPES, make_run

from lorafair.methods import METHODS, Method, peft_methods, register_method
from lorafair.report import sections as sections_pkg
from lorafair.report import write_report
from lorafair.report.build import ReportBuilder
from lorafair.report.load import load_run
from lorafair.report.render_md import render_md
from lorafair.report.sections import SECTIONS, section_class
from lorafair.report.sections.base import Section
from lorafair.report.style import OKABE_ITO, SERIES_COLORS, method_color, report_style


def _add_mystudy(root, *, roles: bool = True):
    """Rows of a study the report has no module for: two metrics, one with groups, and paired capture rows."""
    with open(root / "metrics.csv", "a", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        for v, c in (("base", 0.0), ("lora-r2", 0.5), ("lora-r8", 0.97), ("full", 1.0)):
            method, rank = (v.split("-r")[0], int(v.split("-r")[1])) if "-r" in v else (v, "")
            score = 0.9 - 0.6 * c
            w.writerow([v, method, rank, 0, "mystudy", "my_score", "", score, score - 0.01, score + 0.01, 50, ""])
            w.writerow([v, method, rank, 0, "mystudy", "my_score", "left", score + 0.1, score, score + 0.2, 25, ""])
            w.writerow([v, method, rank, 0, "mystudy", "my_score", "right", score - 0.1, score - 0.2, score, 25, ""])
            w.writerow([v, method, rank, 0, "mystudy", "my_fluency", "", 10 + c, 9.5 + c, 10.5 + c, 50, ""])
            if rank != "":
                w.writerow([v, method, rank, 0, "mystudy", "capture_my_score", "", c, c - 0.02, c + 0.02, 50, ""])
    if roles:
        path = root / "metric_roles.json"
        obj = json.loads(path.read_text())
        obj["mystudy"] = {
            "_study": {"title": "My study", "description": "A study the report has no module for.",
                       "headline": ["my_score", "my_fluency"]},
            "my_score": {"role": "target", "direction": "lower", "ideal": None, "unit": "items", "doc": ""},
            "my_fluency": {"role": "guard", "direction": "higher", "ideal": None, "unit": "", "doc": ""},
        }
        path.write_text(json.dumps(obj))


def test_unknown_study_gets_the_generic_section_with_its_metrics(tmp_path):
    root = make_run(tmp_path / "my", ranks=(2, 8), studies=("decisions",), samples=False)
    _add_mystudy(root)
    assert "mystudy" not in SECTIONS and section_class("mystudy") is Section
    out = write_report(root)
    md = out["md"].read_text()
    section = md.split("## Study: My study")[1]
    assert "A study the report has no module for." in section
    # the metric table: both metrics, directions from metric_roles.json, roles, values with intervals
    assert "| variant | my\\_score ↓ | my\\_fluency ↑ | n |" in section
    assert "| role | target | guard |  |" in section
    assert "| base | 0.900 \\[0.890, 0.910\\] | 10.000 \\[9.500, 10.500\\] | 50 |" in section
    # a figure per headline metric against rank, the capture ratio, the groups of my_score
    names = {p.stem for p in out["plots"]}
    assert {"mystudy-my-score", "mystudy-my-fluency", "mystudy-capture", "mystudy-my-score-groups",
            "mystudy-my-score-group-gap"} <= names
    assert "all mystudy metrics (" in section
    # the recommendation reads its capture rows: r=8 reaches [0.9, 1.1]
    assert "| mystudy | lora | r=8 |" in md
    assert "declares no metrics" not in section and "names no headline" not in section


def test_unknown_study_without_metric_roles_says_so(tmp_path):
    root = make_run(tmp_path / "my", ranks=(2, 8), studies=("decisions",), samples=False)
    _add_mystudy(root, roles=False)
    md = write_report(root)["md"].read_text()
    section = md.split("## Study: mystudy")[1]
    assert "declares no metrics of mystudy" in section
    assert "| variant | my\\_score | my\\_fluency | n |" in section  # directions unknown: no arrows
    assert "| role |" not in section
    # its capture rows are not used: with no declared target, no recommendation is made from a guess
    assert "| mystudy | lora | no ranked variants | No recommendation: it declares no target metric. |" in md


def _md(run, monkeypatch=None, generic: bool = False) -> str:
    if generic:
        monkeypatch.setattr("lorafair.report.build.section_class", lambda study: Section)
    with report_style():
        b = ReportBuilder(run)
        blocks = b.build()
    return render_md(blocks, plots_prefix="plots/", toc=b.toc, footer="")


def test_every_registered_section_renders_from_a_synthetic_run(tmp_path, monkeypatch):
    names = SECTIONS.names()
    assert {"toxicity", "shift", "decisions"} <= set(names)
    missing = set(names) - set(STUDY_SHAPES)
    assert not missing, f"section modules without a synthetic study in tests/report_synth.py: {missing}"
    for name in names:
        cls = section_class(name)
        assert cls is not Section and issubclass(cls, Section), name
        root = make_run(tmp_path / name, ranks=(1, 4, 16), studies=(name,))
        run = load_run(root)
        md = _md(run)
        assert f"## Study: {name}" in md and f"all {name} metrics (" in md, name
        # the module contributes something the generic section does not have
        with monkeypatch.context() as m:
            generic = _md(run, m, generic=True)
        assert generic != md, f"the {name} section adds nothing to the generic one"


def test_section_modules_are_found_by_the_registry():
    """Every module of lorafair.report.sections but base registers at least one section (found via pkgutil)."""
    import pkgutil

    modules = {i.name for i in pkgutil.iter_modules(sections_pkg.__path__) if not i.name.startswith("_")} - {"base"}
    registered = {section_class(n).__module__.rsplit(".", 1)[1] for n in SECTIONS.names()}
    assert modules == registered


def test_method_colours_follow_the_methods_registry(monkeypatch):
    # the colours of the shipped methods are those of the Okabe–Ito scheme in docs/report.md
    assert [method_color(m) for m in ("base", "full", "lora", "dora", "rslora", "pissa")] == [
        OKABE_ITO["black"], OKABE_ITO["vermillion"], OKABE_ITO["blue"], OKABE_ITO["bluish_green"],
        OKABE_ITO["orange"], OKABE_ITO["reddish_purple"]]
    # a newly registered method gets the next colour of the palette, with no edit to style.py
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_help", dict(METHODS._help))
    register_method(Method("olora_test", lora_kwargs={"init_lora_weights": "olora"}))
    k = peft_methods().index("olora_test")
    assert method_color("olora_test") == SERIES_COLORS[k % len(SERIES_COLORS)]
    assert method_color("olora_test") not in {method_color(m) for m in ("base", "full", "lora", "dora", "rslora", "pissa")}
    # a name that is no registered method keeps the cycle from sky blue on
    assert method_color("not_a_method", 0) == OKABE_ITO["sky_blue"]


def test_old_run_without_study_entries_uses_the_documented_default(tmp_path):
    """metric_roles.json without "_study" (an older lorafair): every declared metric measured is a headline, and
    the section says so."""
    root = make_run(tmp_path / "old", ranks=(2, 8), studies=("decisions",), samples=False, study_entries=False)
    md = write_report(root)["md"].read_text()
    assert "names no headline metrics of decisions" in md
    # flip_rate is declared (a diagnostic) but not in the synthetic headline: shown in the old run only
    assert "| variant | approval\\_gap ↓ | tpr\\_gap ↓ | flip\\_rate ↓ | n |" in md
    new = make_run(tmp_path / "new", ranks=(2, 8), studies=("decisions",), samples=False)
    md = write_report(new)["md"].read_text()
    assert "names no headline" not in md and "| variant | approval\\_gap ↓ | tpr\\_gap ↓ | n |" in md
    assert "Synthetic lending decisions." in md
