"""Hostile run strings in report.md, compare.md and report.html; plot labels as plain text; plots/
keeps the user's files (project issue #12).

Model generations, prompts, data set text, config values and every name read from metrics.csv
(study, metric, group, variant, note) may be hostile. report.md is rendered here with a
CommonMark renderer (markdown-it-py, raw HTML enabled as on GitHub) and the resulting HTML is
parsed: only the tags the report itself writes may appear, images only from plots/, links only
to anchors in the page, no event-handler attributes; the hostile strings read back as text.
"""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from report_synth import make_run

from lorafair.report import plots, write_compare, write_report
from lorafair.report.doc import Details, Example, Heading, Para, Pre, Table
from lorafair.report.render_md import md_escape, render_md

EVIL = "evil.example"


def hostile(tag: str) -> str:
    """A string that tries every way out of escaping: raw HTML, Markdown images and links, a lone CR
    (a line ending in CommonMark) and blank lines that would end an HTML island, a code fence."""
    return (f"{tag} <img src=x onerror=alert('{tag}')> <script>alert(1)</script>\r\r"
            f"![{tag}](https://{EVIL}/{tag}.png) [{tag}](https://{EVIL}/{tag})\r\n\r\n"
            f"<a href=\"https://{EVIL}\">x</a>\n\n````\n<img src=y onerror=alert(2)>\r"
            f"    indented\r- item\r1. item\rhttps://{EVIL}/bare www.{EVIL} me@{EVIL}")


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


MD_TAGS = {"h1", "h2", "h3", "h4", "p", "a", "details", "summary", "sub", "b", "i", "table", "thead", "tbody", "tr",
           "th", "td", "br", "img", "ul", "ol", "li", "strong", "em", "blockquote", "pre", "code", "hr", "s"}
HTML_TAGS = MD_TAGS | {"html", "head", "meta", "title", "style", "body", "main", "nav", "div", "span", "figure",
                       "figcaption", "dl", "dt", "dd", "caption", "footer"}


def check_html(html: str, *, allowed: set[str], img_prefix: str) -> str:
    """Assert that ``html`` holds only the report's own markup; return its text."""
    p = _Collect()
    p.feed(html)
    p.close()
    for tag, attrs in p.tags:
        assert tag in allowed, (tag, attrs)
        for name, value in attrs.items():
            assert not name.startswith("on"), (tag, attrs)
            if name not in ("alt", "title"):  # text attributes may hold the text; nothing else may
                assert EVIL not in (value or ""), (tag, attrs)
        if tag == "img":
            assert attrs.get("src", "").startswith(img_prefix), attrs
        if tag == "a":
            assert set(attrs) <= {"id", "href"}, attrs
            assert attrs.get("href", "#").startswith("#"), attrs
    return "".join(p.text)


def render_commonmark(md: str) -> str:
    """report.md as a CommonMark renderer turns it into HTML (raw HTML passed through, as GitHub's
    renderer does before its sanitiser). Needs markdown-it-py (the ``test`` extra)."""
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)


def _append_rows(root: Path, rows: list[list]) -> None:
    with open(root / "metrics.csv", "a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = make_run(tmp_path_factory.mktemp("safety") / "run", ranks=(1, 4), studies=("toxicity",))
    # config text: a four-backtick line closed the fence of report.md
    (root / "config.yaml").write_text(
        "model: embedded:smollm2-135m-instruct\n"
        f"data:\n  source: {json.dumps(hostile('cfgdata'))}\n"
        "description: |\n  a recipe\n  ````\n  <img src=x onerror=alert('cfg')>\n"
        f"  ![cfg](https://{EVIL}/cfg.png)\n  ```\n  [cfg](https://{EVIL}/cfg)\n"
        f"name: {json.dumps(hostile('cfgname'))}\n", encoding="utf-8")
    # prompts, generations and their groups
    for v in ("base", "lora-r1", "full"):
        lines = [json.dumps({"prompt": hostile(f"prompt{i}"), "group": hostile(f"sgroup{i}"), "sample": 0,
                             "text": hostile(f"gen-{v}-{i}"), "scores": {"toxic": 0.1 * i + (v == "full") * 0.5}})
                 for i in range(3)]
        (root / f"{v}-s0" / "samples.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = []
    # group names, metric names, study names, variant names and notes from metrics.csv
    for v, val in (("base", 0.5), ("lora-r1", 0.4), ("lora-r4", 0.3), ("full", 0.2)):
        method, rank = (v.split("-r")[0], v.split("-r")[1]) if "-r" in v else (v, "")
        for g in (hostile("groupA"), hostile("groupB")):
            rows.append([v, method, rank, 0, "toxicity", "emt", g, val, val - 0.01, val + 0.01, 10, ""])
        rows.append([v, method, rank, 0, "future", hostile("metric"), "", val, val - 0.01, val + 0.01, 10, ""])
        rows.append([v, method, rank, 0, hostile("study"), "score", "", val, val - 0.01, val + 0.01, 10, ""])
    rows.append([hostile("variant"), "", "", 0, "toxicity", "emt", "", 0.3, 0.2, 0.4, 10, ""])
    rows.append(["lora-r4", "lora", 4, 0, "future", "unmeasured", "", "", "", "", "", hostile("note")])
    _append_rows(root, rows)
    # a malformed artifact in a hostile folder name: its note names the folder
    bad = root / "<img src=x onerror=alert('folder')>-s0"
    bad.mkdir()
    (bad / "train.json").write_text("{not json")
    return root, write_report(root)


def test_report_md_renders_no_markup_from_the_run(hostile_run):
    root, out = hostile_run
    md = out["md"].read_text(encoding="utf-8")
    assert "\r" not in md
    text = check_html(render_commonmark(md), allowed=MD_TAGS, img_prefix="plots/")
    # the hostile strings are there, as text (escaped once, not twice)
    for tag in ("cfgname", "cfgdata", "prompt0", "gen-base-0", "gen-full-0", "sgroup0", "groupA", "metric",
                "study", "variant", "note"):
        assert f"{tag} <img src=x onerror=alert('{tag}')>" in text, tag
    assert "<img src=x onerror=alert('cfg')>" in text and "<img src=x onerror=alert('folder')>" in text
    assert f"![gen-base-0](https://{EVIL}/gen-base-0.png)" in text
    assert "&lt;" not in text and "\\[" not in text
    # the config stays in one code block, with its four-backtick line inside it
    html = render_commonmark(md)
    pre = re.findall(r"<pre><code>(.*?)</code></pre>", html, re.S)
    assert len(pre) == 1 and "\n  ````\n" in pre[0] and "alert('cfg')" in pre[0] and "name:" in pre[0]


def test_report_html_renders_no_markup_from_the_run(hostile_run):
    root, out = hostile_run
    html = out["html"].read_text(encoding="utf-8")
    text = check_html(html, allowed=HTML_TAGS, img_prefix="data:image/png;base64,")
    for tag in ("cfgname", "prompt0", "gen-base-0", "sgroup0", "groupA", "metric", "study", "variant", "note"):
        assert f"{tag} <img src=x onerror=alert('{tag}')>" in text, tag
    assert "<img src=x onerror=alert('folder')>" in text
    assert len(re.findall(r"<script", html, re.I)) == 0


def test_compare_md_and_html_escape_run_names(hostile_run, tmp_path):
    root, _ = hostile_run
    other = make_run(tmp_path / "<img src=x onerror=alert('run')>![r](https:" / "x", ranks=(1, 4),
                     studies=("toxicity",), samples=False)
    out = write_compare([root, other], tmp_path / "cmp")
    md_text = check_html(render_commonmark(out["md"].read_text(encoding="utf-8")), allowed=MD_TAGS,
                         img_prefix="plots/")
    html_text = check_html(out["html"].read_text(encoding="utf-8"), allowed=HTML_TAGS,
                           img_prefix="data:image/png;base64,")
    for text in (md_text, html_text):
        assert "<img src=x onerror=alert('run')>" in text


def test_render_md_blocks_directly():
    # a lone CR in an HTML island, a fence line in preformatted text, a table cell, a note
    blocks = [Heading(2, hostile("h"), "a b\"><img src=x>"), Para(hostile("para"), "note"),
              Table([hostile("hd")], [[hostile("cell")]]), Pre("x\n" + "`" * 7 + "\r<img src=x onerror=1>"),
              Details(hostile("summary"), [Example(hostile("p"), hostile("g"), [(hostile("v"), hostile("t"),
                                                                                 hostile("s"))])])]
    md = render_md(blocks, toc=[("a b\"><img src=x>", hostile("toc"))])
    html = render_commonmark(md)
    text = check_html(html, allowed=MD_TAGS, img_prefix="plots/")
    for tag in ("h", "para", "hd", "cell", "summary", "p", "g", "v", "t", "s"):
        assert f"{tag} <img src=x onerror=alert('{tag}')>" in text, tag
    assert "`" * 8 + "\n" in md  # the fence is longer than the longest backtick run


def test_md_escape_breaks_autolinks_and_block_markers():
    s = md_escape(f"https://{EVIL}/x www.{EVIL} me@{EVIL}")
    assert "https://" not in s and "www." not in s and "@" not in s.replace("\\@", "")
    for lead in ("- x", "1. x", "---", "2) x"):
        html = render_commonmark(md_escape(lead))
        assert html.startswith("<p>") and "<li>" not in html and "<hr" not in html, lead
    assert render_commonmark(md_escape("a\rb\r\nc")) == "<p>a b c</p>\n"


# -- plot labels are plain text --------------------------------------------------------------------

MATH = r"$\notacommand{x}$"


def test_math_in_group_metric_and_variant_names_reads_literally(tmp_path, figure_texts):
    root = make_run(tmp_path / "math", ranks=(1, 4), studies=("toxicity",), samples=False)
    rows = []
    for v, val in (("base", 0.5), ("lora-r1", 0.4), ("lora-r4", 0.3), ("full", 0.2)):
        method, rank = (v.split("-r")[0], v.split("-r")[1]) if "-r" in v else (v, "")
        for g in (MATH, "$x^$", "_hidden"):
            rows.append([v, method, rank, 0, "toxicity", "emt", g, val, val - 0.01, val + 0.01, 10, ""])
        rows.append([v, method, rank, 0, "future", r"$\frac{", "", val, val - 0.01, val + 0.01, 10, ""])
    rows.append([r"$\alpha$-r2", r"$\alpha$", 2, 0, "toxicity", "emt", "", 0.3, 0.2, 0.4, 10, ""])
    _append_rows(root, rows)
    out = write_report(root)
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in out["plots"])
    texts = {t for t, _, _ in figure_texts}
    assert MATH in texts and "$x^$" in texts  # group tick labels, as written
    assert r"$\frac{" in texts  # a metric name (y label)
    assert any(t.startswith(r"$\frac{") for t in texts)
    assert not [t for t, math, tex in figure_texts if "$" in t and (math or tex)]


def test_plot_functions_outside_report_style_are_plain_text():
    from lorafair.report.load import Estimate

    png = plots.metric_vs_rank([], [plots.Reference(MATH, "#000000", Estimate(1.0, 0.9, 1.1), ":"),
                                    plots.Reference("_full", "#D55E00", Estimate(2.0), "--")],
                               metric=MATH, title=MATH)
    assert png.startswith(b"\x89PNG")
    png = plots.group_bars([MATH, "$a"], [(MATH, "#000000", {MATH: Estimate(float("inf")), "$a": Estimate(1.0)})],
                           metric=MATH, title=MATH)
    assert png.startswith(b"\x89PNG")


# -- plots/ keeps the user's files --------------------------------------------------------------------

def test_report_deletes_only_its_own_stale_figures(tmp_path):
    root = make_run(tmp_path / "own", ranks=(2,), studies=("decisions", "stereotypes"), samples=False)
    (root / "plots").mkdir()
    (root / "plots" / "my-figure.png").write_bytes(b"user")
    (root / "plots" / "notes.txt").write_text("user")
    first = {p.name for p in write_report(root)["plots"]}
    assert any(n.startswith("stereotypes-") for n in first)
    assert (root / "plots" / "my-figure.png").read_bytes() == b"user"
    manifest = json.loads((root / "plots" / ".lorafair-plots.json").read_text())
    assert set(manifest["figures"]) == first
    # the stereotypes study is gone from the run: its figures go, the user's stay
    keep = [r for r in csv.reader(open(root / "metrics.csv")) if r[4] != "stereotypes"]
    with open(root / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows(keep)
    second = {p.name for p in write_report(root)["plots"]}
    left = {p.name for p in (root / "plots").iterdir()}
    assert left == second | {"my-figure.png", "notes.txt", ".lorafair-plots.json"}
    assert not any(n.startswith("stereotypes-") for n in left)


def test_compare_keeps_user_pngs_in_out_plots(tmp_path):
    a = make_run(tmp_path / "a" / "run", ranks=(1, 4), studies=("decisions",), samples=False)
    b = make_run(tmp_path / "b" / "run", ranks=(2,), studies=("decisions",), samples=False)
    out = tmp_path / "cmp"
    (out / "plots").mkdir(parents=True)
    (out / "plots" / "diagram.png").write_bytes(b"user")
    (out / "plots" / "decisions-approval-gap.png").write_bytes(b"user, same name as a figure")
    # a manifest from elsewhere naming files outside plots/: never followed
    (tmp_path / "outside.png").write_bytes(b"user")
    (out / "plots" / ".lorafair-plots.json").write_text(json.dumps({"figures": ["../../outside.png", "/etc/x.png"]}))
    res = write_compare([a, b], out)
    assert (out / "plots" / "diagram.png").read_bytes() == b"user"
    assert (tmp_path / "outside.png").read_bytes() == b"user"
    assert {p.name for p in res["plots"]} <= {p.name for p in (out / "plots").iterdir()}
