"""Render report blocks to GitHub-flavoured Markdown, figures as files under ``plots/``.

Every string in a block is plain text from the run (model generations, prompts, config values,
group, metric and variant names, notes) and may be hostile. The Markdown must render it as that
text under any CommonMark renderer, GitHub's included:

* inline text (:func:`md_escape`): HTML special characters become entities, every Markdown
  punctuation character is backslash-escaped (``*``, ``_``, ``[``, ``!``, ``|`` … neither format
  nor link nor break a table), line endings (``\\n``, ``\\r\\n`` and a lone ``\\r``, which
  CommonMark also reads as a line ending) become spaces, a leading list or heading marker is
  escaped, and the starts of GFM autolinks (``://``, ``www.``, ``@``) are broken up;
* HTML islands (the side-by-side generations, ``<summary>``; :func:`_html_text`): entities
  with ``quote=True`` and every line ending as ``<br>``, so that no blank line can end the
  HTML block and let the rest be read as Markdown;
* preformatted text (the config): a code fence longer than the longest run of backticks in
  the text (the CommonMark rule), so no line of the text can close it.

Collapsible parts use ``<details>``, which GitHub renders.
"""

from __future__ import annotations

import re
from html import escape

from lorafair.report.doc import (Block, Callout, Details, Example, Figure, FigureRow, Heading, KeyValues, Para, Pre,
                                 Table)

# every ASCII punctuation character that starts or ends Markdown syntax (CommonMark allows a
# backslash before any ASCII punctuation); ``<``, ``>``, ``&`` and ``"`` are entities already
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~])")
_LINE_END = re.compile(r"\r\n|\r|\n")
# a line that starts with these is a list item or a thematic break, not a paragraph
_BLOCK_START = re.compile(r"^(\d{1,9})([.)])(?=\s|$)|^(-)(?=[\s-]|$)")


def _one_line(s: str) -> str:
    return re.sub(r"\s*(?:\r\n|\r|\n)\s*", " ", s)


def md_escape(s: object) -> str:
    """Plain text -> Markdown that renders as that text (one line: line endings become spaces)."""
    t = _one_line(str(s)).strip()
    t = escape(t, quote=False)
    t = _MD_SPECIAL.sub(r"\\\1", t)
    # GFM autolinks (scheme://…, www.…, user@host) would turn text into links
    t = t.replace("://", "\\://").replace("@", "\\@")
    t = re.sub(r"(?i)\b(www)\.", r"\1\\.", t)
    return _BLOCK_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", t)


def _html_text(s: object) -> str:
    """Escaped text for an HTML island in Markdown; every line ending (``\\n``, ``\\r\\n``, ``\\r``)
    becomes <br> because a blank line would end the HTML block and let the rest be read as Markdown."""
    return _LINE_END.sub("<br>", escape(str(s), quote=True))


def _anchor(a: object) -> str:
    """An in-page anchor name: only letters, digits, ``-`` and ``_`` (anchors are slugs already)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", str(a))


def _fence(text: str) -> str:
    """A backtick fence longer than the longest backtick run in ``text`` (at least three)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def _block(b: Block, plots_prefix: str) -> str:
    if isinstance(b, Heading):
        anchor = f'<a id="{_anchor(b.anchor)}"></a>\n' if b.anchor else ""
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
        # Inside a fence nothing is interpreted (HTML included); only a fence line at least as long
        # could end it, and none is: the fence is longer than any backtick run of the text.
        text = _LINE_END.sub("\n", str(b.text)).rstrip()
        fence = _fence(text)
        return f"{fence}\n{text}\n{fence}"
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
    nav = " · ".join(f"[{md_escape(lbl)}](#{_anchor(a)})" for a, lbl in toc) if toc else ""
    for b in blocks:
        parts.append(_block(b, plots_prefix))
        if nav and not inserted and isinstance(b, Heading) and b.level == 1:
            parts.append(nav)
            inserted = True
    if footer:
        parts.append(f"<sub>{md_escape(footer)}</sub>")
    return "\n\n".join(parts) + "\n"
