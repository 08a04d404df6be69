"""``prompts-mix``: the records of several data specs together (e.g. HONEST and RedditBias prompts).

Options: ``parts``, a list of data specs. Each part is built with its own options and ``limit``
(so a recipe sets how many prompts each source contributes); every record gets ``part`` (its
index) and keeps its ``source``. The concatenation is then shuffled (seeded) and cut to ``limit``.
"""

from __future__ import annotations

from lorafair.data.options import check_options, load_spec, shuffle_limit
from lorafair.data.registry import DataContext, DataSpec, register_dataset
from lorafair.errors import UserError


@register_dataset("prompts-mix", help="the records of several data specs together (options: parts: [spec, ...])")
def build_mix(spec: DataSpec, ctx: DataContext) -> list[dict]:
    opts = check_options(spec, ctx, {"parts": "a list of data specs"})
    parts = opts.get("parts")
    if not isinstance(parts, list) or not parts:
        raise UserError(f"{ctx.field_name}.options.parts", parts, "a non-empty list of data specs")
    out: list[dict] = []
    for i, part in enumerate(parts):
        for r in load_spec(part, ctx, f"{ctx.field_name}.options.parts[{i}]"):
            out.append({**r, "part": i})
    return shuffle_limit(out, ctx.seed, spec.limit)
