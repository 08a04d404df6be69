"""Render report blocks to one self-contained HTML page.

Self-contained: CSS inline, figures embedded as ``data:image/png;base64`` URIs, no scripts,
no fonts or other resources from anywhere. Every text is passed through :func:`html.escape`
with ``quote=True`` (attributes included), so model generations render as text.
"""

from __future__ import annotations

import base64
from html import escape

from lorafair.report.doc import (Block, Callout, Details, Example, Figure, FigureRow, Heading, KeyValues, Para, Pre,
                                 Table)

CSS = """
:root { --fg:#1d2329; --muted:#5b6670; --line:#dde2e6; --bg:#ffffff; --soft:#f5f7f9;
        --ok:#009E73; --warn:#E69F00; --bad:#D55E00; --info:#0072B2; }
* { box-sizing: border-box; }
body { margin:0; background:var(--soft); color:var(--fg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 64px; background: var(--bg);
       min-height: 100vh; box-shadow: 0 0 0 1px var(--line); }
h1 { font-size: 1.7em; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 1.3em; margin: 40px 0 10px; padding-bottom: 6px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.08em; margin: 26px 0 8px; }
h4 { font-size: 1em; margin: 18px 0 6px; color: var(--muted); }
p { margin: 8px 0; }
p.lead { font-size: 1.05em; color: var(--muted); margin-bottom: 18px; }
p.note { font-size: 0.86em; color: var(--muted); }
nav.toc { font-size: 0.9em; margin: 8px 0 18px; display:flex; flex-wrap: wrap; gap: 6px 14px; }
nav.toc a { color: var(--info); text-decoration: none; }
nav.toc a:hover { text-decoration: underline; }
dl.kv { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 10px 0 14px;
        font-size: 0.93em; }
dl.kv dt { color: var(--muted); }
dl.kv dd { margin: 0; overflow-wrap: anywhere; }
.callout { border-left: 5px solid var(--info); background: #eef5fb; padding: 10px 16px; margin: 12px 0;
           border-radius: 4px; }
.callout.reached { border-color: var(--ok); background: #e9f6f1; }
.callout.not_reached { border-color: var(--bad); background: #fbefe8; }
.callout.undefined { border-color: var(--warn); background: #fdf6e6; }
.callout .title { font-weight: 700; margin-bottom: 4px; }
.callout p { margin: 4px 0; }
.tablewrap { overflow-x: auto; margin: 10px 0 16px; }
table { border-collapse: collapse; font-size: 0.86em; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: var(--soft); font-weight: 600; position: sticky; top: 0; }
td:first-child, th:first-child { text-align: left; }
td.b { font-weight: 600; }
td.w { white-space: normal; text-align: left; min-width: 320px; font-size: 0.95em; }
caption { caption-side: top; text-align: left; color: var(--muted); font-size: 0.95em; padding: 4px 0; }
figure { margin: 14px 0 20px; }
figure img { max-width: 100%; height: auto; display: block; border: 1px solid var(--line); border-radius: 4px; }
figcaption { font-size: 0.85em; color: var(--muted); margin-top: 4px; max-width: 900px; }
.figrow { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 8px 22px; }
details { margin: 10px 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; }
details > summary { cursor: pointer; font-weight: 600; color: var(--info); }
details[open] > summary { margin-bottom: 8px; }
pre { background: var(--soft); padding: 10px 12px; overflow-x: auto; font-size: 0.82em; border-radius: 4px;
      white-space: pre-wrap; overflow-wrap: anywhere; }
.warning { background: #fdf0e6; border: 1px solid #f0c9a6; padding: 8px 12px; border-radius: 4px;
           font-size: 0.9em; margin-bottom: 10px; }
.example { margin: 12px 0 18px; }
.example .prompt { font-size: 0.92em; margin-bottom: 6px; }
.example .prompt b { color: var(--muted); font-weight: 600; }
.gens { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 10px; }
.gen { border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; background: #fcfcfd; }
.gen .v { font-weight: 700; font-size: 0.85em; }
.gen .s { float: right; font-size: 0.8em; color: var(--muted); font-variant-numeric: tabular-nums; }
.gen .t { white-space: pre-wrap; overflow-wrap: anywhere; font-size: 0.9em; margin-top: 4px; }
footer { margin-top: 48px; font-size: 0.8em; color: var(--muted); }
"""


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def _block(b: Block) -> str:
    if isinstance(b, Heading):
        aid = f' id="{_e(b.anchor)}"' if b.anchor else ""
        return f"<h{b.level}{aid}>{_e(b.text)}</h{b.level}>"
    if isinstance(b, Para):
        cls = f' class="{_e(b.kind)}"' if b.kind != "p" else ""
        return f"<p{cls}>{_e(b.text)}</p>"
    if isinstance(b, Callout):
        body = "".join(f"<p>{_e(line)}</p>" for line in b.lines)
        return f'<div class="callout {_e(b.status)}"><div class="title">{_e(b.title)}</div>{body}</div>'
    if isinstance(b, Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in b.headers)
        rows = []
        for row in b.rows:
            cells = [f'<td class="b">{_e(c)}</td>' if (i == 0 and b.first_col_bold)
                     else f'<td class="w">{_e(c)}</td>' if (b.wrap_last and i == len(row) - 1)
                     else f"<td>{_e(c)}</td>" for i, c in enumerate(row)]
            rows.append("<tr>" + "".join(cells) + "</tr>")
        cap = f"<caption>{_e(b.caption)}</caption>" if b.caption else ""
        return f'<div class="tablewrap"><table>{cap}<thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(b.alt or b.caption)}">'
                f"<figcaption>{_e(b.caption)}</figcaption></figure>")
    if isinstance(b, FigureRow):
        return '<div class="figrow">' + "".join(_block(f) for f in b.figures) + "</div>"
    if isinstance(b, KeyValues):
        return '<dl class="kv">' + "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in b.items) + "</dl>"
    if isinstance(b, Pre):
        return f"<pre>{_e(b.text)}</pre>"
    if isinstance(b, Example):
        gens = "".join(f'<div class="gen"><span class="v">{_e(v)}</span><span class="s">{_e(s)}</span>'
                       f'<div class="t">{_e(t)}</div></div>' for v, t, s in b.cells)
        grp = f" <b>group:</b> {_e(b.group)}" if b.group else ""
        return (f'<div class="example"><div class="prompt"><b>prompt:</b> {_e(b.prompt)}{grp}</div>'
                f'<div class="gens">{gens}</div></div>')
    if isinstance(b, Details):
        warn = f'<div class="warning">{_e(b.warning)}</div>' if b.warning else ""
        inner = "".join(_block(x) for x in b.blocks)
        op = " open" if b.open else ""
        return f"<details{op}><summary>{_e(b.summary)}</summary>{warn}{inner}</details>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render_html(title: str, blocks: list[Block], *, toc: list[tuple[str, str]] = (), footer: str = "") -> str:
    """The whole page. ``toc`` is (anchor, label) pairs for the navigation line under the title."""
    nav = ""
    if toc:
        nav = '<nav class="toc">' + "".join(f'<a href="#{_e(a)}">{_e(lbl)}</a>' for a, lbl in toc) + "</nav>"
    body = []
    inserted = False
    for b in blocks:
        body.append(_block(b))
        if not inserted and isinstance(b, Heading) and b.level == 1:
            body.append(nav)
            inserted = True
    if not inserted:
        body.insert(0, nav)
    foot = f"<footer>{_e(footer)}</footer>" if footer else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body><main>"
            + "\n".join(body) + foot + "</main></body></html>\n")
