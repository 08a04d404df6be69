"""The decisions study's section: per-round trajectories of the approval gap and of each group's mean
score, from each variant's ``decisions_trajectory.json``."""

from __future__ import annotations

import numpy as np

from lorafair.report import plots
from lorafair.report.doc import Block, Heading
from lorafair.report.sections import register_section
from lorafair.report.sections.base import Section
from lorafair.report.style import OKABE_ITO, method_color

# ranked variants drawn: at most this many, spread over the ladder
MAX_TRAJECTORY_RANKS = 4


@register_section("decisions")
class DecisionsSection(Section):
    """Approval gap and group mean scores per round."""

    def extras(self) -> list[Block]:
        run, method = self.run, self.ctx.main_method()
        chosen = ["base"]
        if method:
            ranks = [r for r in run.ranks(method) if (a := run.artifact(f"{method}-r{r}")) and a.trajectory]
            if len(ranks) > MAX_TRAJECTORY_RANKS:
                idx = np.linspace(0, len(ranks) - 1, MAX_TRAJECTORY_RANKS).round().astype(int)
                ranks = [ranks[i] for i in sorted(set(idx))]
            chosen += [f"{method}-r{r}" for r in ranks]
        chosen.append("full")
        palette = [OKABE_ITO[k] for k in ("sky_blue", "blue", "bluish_green", "reddish_purple")]
        trajs = []
        for i, v in enumerate(chosen):
            a = run.artifact(v)
            if a is None or not a.trajectory:
                continue
            color = method_color(v) if v in ("base", "full") else palette[(i - 1) % len(palette)]
            trajs.append((v, color, a.trajectory))
        if not trajs:
            return []
        png = plots.trajectories(trajs, title="decisions: per-round trajectories")
        return [Heading(3, "Trajectories over rounds"),
                self.ctx.fig("decisions-trajectories", png,
                             "Left: approval-rate gap between groups per round. Right: mean score of each group per "
                             "round (line style = group). Colours: variants (base black, full vermillion).")]
