"""report.html / report.md / plots/ of synthetic run directories, the CLI, and lorafair compare."""

from __future__ import annotations

import base64
import re
import time

import pytest
from report_synth import make_run

from lorafair.cli import main
from lorafair.report import write_compare, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _imgs(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


def _no_external_refs(html: str) -> None:
    assert not re.search(r"https?://", html), "HTML refers to a network resource"
    # every src= / href= is a data URI or an in-page anchor
    for attr in re.findall(r'(?:src|href)="([^"]*)"', html):
        assert attr.startswith("data:image/png;base64,") or attr.startswith("#"), attr
    assert "<script" not in html.lower() and "<link" not in html.lower()


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("runs") / "ladder", ranks=(1, 4, 16, 64), methods=("lora", "dora"))
    return root, write_report(root)


def test_normal_ladder_writes_all_three(ladder):
    root, out = ladder
    html = out["html"].read_text()
    md = out["md"].read_text()
    imgs = _imgs(html)
    # every figure embedded, valid and non-trivial; the same files in plots/
    assert len(imgs) == len(out["plots"]) >= 12
    assert all(b.startswith(PNG_MAGIC) and len(b) > 5000 for b in imgs)
    for p in out["plots"]:
        assert p.parent == root / "plots" and p.read_bytes().startswith(PNG_MAGIC)
        assert f"(plots/{p.name})" in md
    _no_external_refs(html)
    for title in ("Rank recommendation", "Study: toxicity", "Study: stereotypes", "Study: decisions", "Study: shift",
                  "Logit lens", "Spectrum of the full update", "Trajectories over rounds", "Examples"):
        assert title in html, title
    # header from run_info.json and config.yaml (collapsed)
    assert "embedded:smollm2-135m-instruct" in html and "1 h 30 min 23 s" in html
    assert "<details><summary>resolved config (config.yaml)</summary>" in html
    # metric table with intervals and n
    assert "0.420 [0.400, 0.440]" in html  # base emt
    names = {p.stem for p in out["plots"]}
    assert {"toxicity-emt", "toxicity-capture", "toxicity-emt-groups", "toxicity-emt-group-gap", "shift-kl",
            "logit-lens-kl-to-final", "spectrum-energy", "decisions-trajectories"} <= names


def test_recommendation_words_follow_numbers(ladder):
    html = ladder[1]["html"].read_text()
    # shift: kl metrics of the synthetic ladder capture 1 − exp(−r/16): 0.98 at r=64 (tight intervals)
    assert "Smallest lora rank whose paired capture interval lies within [0.9, 1.1] on every target metric: r=64" in html
    # decisions: flip_rate has base == full but it is a diagnostic; approval_gap's interval at r=64 is
    # 0.98 ± 0.17: it spans the band, so no rank is said to reach it
    assert "No lora rank tried (r=1–64) has its paired capture interval within [0.9, 1.1]" in html
    assert "approval_gap never within the band (closest r=64: 0.98 [0.82, 1.15], uncertain)" in html


def test_examples_are_collapsed_behind_a_content_warning(ladder):
    html = ladder[1]["html"].read_text()
    i = html.index('id="examples"')
    tail = html[i:]
    assert tail.index("<details>") < tail.index("Content warning") < tail.index('class="gen"')
    assert "<details open" not in tail
    assert "lora-r1" in tail and "toxic 0." in tail


def test_only_base_and_full(tmp_path):
    root = make_run(tmp_path / "bf", ranks=(), studies=("toxicity",))
    out = write_report(root)
    html = out["html"].read_text()
    assert "No ranked variants" in html
    assert len(_imgs(html)) >= 3  # headline metrics as base/full points
    assert "lora" not in html.split("Study: toxicity")[1].split("Examples")[0].replace("lorafair", "")


def test_missing_studies_and_files(tmp_path):
    root = make_run(tmp_path / "bare", ranks=(2, 8), studies=("toxicity",), artifacts=False, run_info=False)
    # a study whose module does not exist, with metrics only in metrics.csv
    with open(root / "metrics.csv", "a") as f:
        for v, val in (("base", 0.9), ("lora-r2", 0.7), ("lora-r8", 0.3), ("full", 0.2)):
            method, rank = (v.split("-r")[0], v.split("-r")[1]) if "-r" in v else (v, "")
            f.write(f"{v},{method},{rank},0,future_study,score,,{val},{val - 0.01},{val + 0.01},50\n")
    (root / "config.yaml").write_text("model: [unclosed\n")  # malformed: noted, not fatal
    # a malformed artifact in a variant folder
    (root / "lora-r2-s0").mkdir()
    (root / "lora-r2-s0" / "decisions_trajectory.json").write_text("{not json")
    out = write_report(root)
    html = out["html"].read_text()
    assert "Study: future_study" in html and "declares no metrics of future_study" in html
    assert "run_info.json" in html and "absent" in html
    assert "config.yaml could not be parsed" in html and "skipped decisions_trajectory.json" in html
    assert "Examples" not in html and "Logit lens" not in html
    assert "future-study-score" in {p.stem for p in out["plots"]}


def test_hostile_generations_are_escaped(tmp_path):
    root = make_run(tmp_path / "hostile", ranks=(1, 8), studies=("toxicity",), hostile=True)
    with open(root / "metrics.csv", "a") as f:
        f.write('base,base,,0,toxicity,emt,"<img src=x onerror=alert(3)>",0.5,0.4,0.6,10\n')
    out = write_report(root)
    html = out["html"].read_text()
    md = out["md"].read_text()
    for doc in (html, md):
        assert "<script>alert(1)</script>" not in doc
        assert "<img src=x" not in doc
        assert "<b>x</b>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;img src=x onerror=alert(3)&gt;" in html  # a hostile group name in metrics.csv
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    _no_external_refs(html)


def test_cli_report_and_errors(tmp_path, capsys):
    root = make_run(tmp_path / "cli", ranks=(1, 2), studies=("decisions",), samples=False)
    assert main(["report", str(root), "--target", "0.8"]) == 0
    assert "wrote" in capsys.readouterr().out and (root / "report.html").is_file()
    assert "target capture ratio 0.8" in (root / "report.html").read_text()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "error: run_dir=" in capsys.readouterr().err
    assert main(["report", str(root), "--target", "0"]) == 2
    assert "error: --target=0.0: expected a number in (0, 1]" in capsys.readouterr().err
    assert main(["report", str(root), "--target", "1.2"]) == 2


def test_stale_plots_are_removed(tmp_path):
    root = make_run(tmp_path / "stale", ranks=(2,), studies=("decisions",))
    (root / "plots").mkdir()
    (root / "plots" / ".lorafair-plots.json").write_text('{"figures": ["old-figure.png"]}')
    (root / "plots" / "old-figure.png").write_bytes(b"x")
    (root / "plots" / "mine.png").write_bytes(b"x")
    write_report(root)
    assert not (root / "plots" / "old-figure.png").exists() and (root / "plots" / "mine.png").exists()

def test_compare_two_runs(tmp_path, capsys):
    a = make_run(tmp_path / "a" / "run", ranks=(1, 4, 16), studies=("toxicity", "decisions"))
    b = make_run(tmp_path / "b" / "run", ranks=(2, 8), studies=("toxicity",), seeds=(0, 1))
    out = write_compare([a, b], tmp_path / "cmp")
    html = out["html"].read_text()
    assert "a/run" in html and "b/run" in html  # same folder names disambiguated
    assert "Study: decisions" in html and len(_imgs(html)) == len(out["plots"]) >= 6
    _no_external_refs(html)
    assert (tmp_path / "cmp" / "compare.md").read_text().count("](plots/") == len(out["plots"])
    assert main(["compare", str(a), "--out", str(tmp_path / "c2")]) == 2
    assert "at least two run directories" in capsys.readouterr().err
    assert main(["compare", str(a), str(b), "--out", str(a)]) == 2


@pytest.mark.slow
def test_timing_9_ranks_3_studies(tmp_path):
    root = make_run(tmp_path / "timing", studies=("toxicity", "stereotypes", "decisions"))
    t0 = time.perf_counter()
    out = write_report(root)
    elapsed = time.perf_counter() - t0
    print(f"\nreport of 9 ranks x 3 studies: {elapsed:.1f} s, {len(out['plots'])} figures")
    assert elapsed < 120


def test_failed_variants_are_named_not_shown_as_a_study(tmp_path):
    root = make_run(tmp_path / "failed", ranks=(2, 4), studies=("decisions",), samples=False)
    with open(root / "metrics.csv", "a", encoding="utf-8") as f:
        f.write("lora-r8,lora,8,0,train,status,,,,,,failed: loss not finite at step 3 (lr 1000)\n")
    out = write_report(root)
    html = out["html"].read_text()
    assert "Variants whose training failed" in html and "lora-r8 (seed 0): failed: loss not finite at step 3" in html
    assert "Study: train" not in html
