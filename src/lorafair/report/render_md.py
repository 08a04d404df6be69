"""Render report blocks to GitHub-flavoured Markdown, figures as files under ``plots/``.

Text is escaped twice over: HTML special characters become entities (GitHub passes raw HTML
through its sanitiser, but a generation must read as text, not as a tag), and Markdown
punctuation is backslash-escaped so that ``*``, ``_``, ``[`` or ``|`` in a generation neither
formats nor breaks a table. Collapsible parts use ``<details>``, which GitHub renders.
"""

from __future__ import annotations

import re
from html import escape

from lorafair.report.doc import (Block, Callout, Details, Example, Figure, FigureRow, Heading, KeyValues, Para, Pre,
                                 Table)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~])")


def md_escape(s: object) -> str:
    """Plain text -> Markdown that renders as that text (one line: newlines become spaces)."""
    t = escape(str(s), quote=False)
    t = _MD_SPECIAL.sub(r"\\\1", t)
    return re.sub(r"\s*\n\s*", " ", t)


def _html_text(s: object) -> str:
    """Escaped text for an HTML island in Markdown; newlines become <br> because a blank line
    would end the HTML block and let the rest be read as Markdown."""
    return re.sub(r"\r?\n", "<br>", escape(str(s), quote=True))


def _block(b: Block, plots_prefix: str) -> str:
    if isinstance(b, Heading):
        anchor = f'<a id="{_html_text(b.anchor)}"></a>\n' if b.anchor else ""
        return f"{anchor}{'#' * b.level} {md_escape(b.text)}"
    if isinstance(b, Para):
        t = md_escape(b.text)
        return f"<sub>{t}</sub>" if b.kind == "note" else t
    if isinstance(b, Callout):
        icon = {"reached": "✅", "not_reached": "❌", "undefined": "⚠️"}.get(b.status, "ℹ️")
        return "\n".join([f"> {icon} **{md_escape(b.title)}**", ">"] + [f"> {md_escape(line)}\n>" for line in b.lines])
    if isinstance(b, Table):
        head = "| " + " | ".join(md_escape(h) for h in b.headers) + " |"
        n = len(b.headers)
        sep = "|" + "|".join(":--" if i == 0 or (b.wrap_last and i == n - 1) else "--:" for i in range(n)) + "|"
        rows = ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in b.rows]
        cap = f"*{md_escape(b.caption)}*\n\n" if b.caption else ""
        return cap + "\n".join([head, sep] + rows)
    if isinstance(b, Figure):
        return f"![{md_escape(b.alt or b.caption)}]({plots_prefix}{b.name}.png)\n\n<sub>{md_escape(b.caption)}</sub>"
    if isinstance(b, FigureRow):
        return "\n\n".join(_block(f, plots_prefix) for f in b.figures)
    if isinstance(b, KeyValues):
        return "\n".join(f"- **{md_escape(k)}**: {md_escape(v)}" for k, v in b.items)
    if isinstance(b, Pre):
        fence = "````" if "```" in b.text else "```"
        # Inside a fence nothing is interpreted, but a fence line in the text could end it: we
        # lengthen the fence above; HTML is inert inside fences on GitHub.
        return f"{fence}\n{b.text.rstrip()}\n{fence}"
    if isinstance(b, Example):
        # HTML (escaped) so the generations can sit side by side in a table.
        cells = "".join(f"<td><b>{_html_text(v)}</b> <sub>{_html_text(s)}</sub><br>{_html_text(t)}</td>"
                        for v, t, s in b.cells)
        grp = f" <i>(group: {_html_text(b.group)})</i>" if b.group else ""
        return (f"<p><b>prompt:</b> {_html_text(b.prompt)}{grp}</p>\n"
                f"<table><tr>{cells}</tr></table>")
    if isinstance(b, Details):
        inner = "\n\n".join(_block(x, plots_prefix) for x in b.blocks)
        warn = f"> ⚠️ {md_escape(b.warning)}\n\n" if b.warning else ""
        op = " open" if b.open else ""
        return f"<details{op}>\n<summary>{_html_text(b.summary)}</summary>\n\n{warn}{inner}\n\n</details>"
    raise TypeError(f"unknown block {type(b).__name__}")


def render_md(blocks: list[Block], *, plots_prefix: str = "plots/", toc: list[tuple[str, str]] = (),
              footer: str = "") -> str:
    parts = []
    inserted = False
    nav = " · ".join(f"[{md_escape(lbl)}](#{a})" for a, lbl in toc) if toc else ""
    for b in blocks:
        parts.append(_block(b, plots_prefix))
        if nav and not inserted and isinstance(b, Heading) and b.level == 1:
            parts.append(nav)
            inserted = True
    if footer:
        parts.append(f"<sub>{md_escape(footer)}</sub>")
    return "\n\n".join(parts) + "\n"
