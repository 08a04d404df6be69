"""The shift study's section: its KL metrics on one figure, the logit-lens heatmaps (layer × variant,
from each variant's ``shift_layers.json``), the energy of the full update captured by rank r (the run's
``spectrum.json``) and the intruder dimensions per variant, module type and layer (metrics.csv rows
``intruders``, groups ``type:<module type>`` and ``layer:<i>``)."""

from __future__ import annotations

import re

import numpy as np

from lorafair.report import plots
from lorafair.report.artifacts import energy_curves, per_layer_quantities
from lorafair.report.context import marker
from lorafair.report.doc import Block, Figure, FigureRow, Heading, Para, Table
from lorafair.report.sections import register_section
from lorafair.report.sections.base import Section
from lorafair.report.style import SERIES_COLORS

_DIVERGENCE = re.compile(r"^(kl|js)_")  # the divergence metrics drawn together


@register_section("shift")
class ShiftSection(Section):
    """Posterior divergences on one figure, logit lens per layer, spectrum of ΔW_full."""

    tradeoff_view = False  # its target (the distance to full's distribution) is no fairness measure

    def headline_figures(self) -> list[Figure]:
        kl_metrics = [m for m in self.meta.headline if _DIVERGENCE.match(m)]
        figs: list[Figure] = []
        if kl_metrics and self.ctx.main_method():
            figs.append(self.kl_figure(kl_metrics))
        return figs + [self.metric_figure(m) for m in self.meta.headline if m not in kl_metrics]

    def kl_figure(self, kl_metrics: list[str]) -> Figure:
        study, run, method = self.study, self.run, self.ctx.main_method()
        series, refs = [], []
        for i, m in enumerate(kl_metrics):
            color = SERIES_COLORS[i % len(SERIES_COLORS)]
            pts = [(r, e) for r in run.ranks(method) if (e := run.estimate(study, m, f"{method}-r{r}")) is not None]
            if pts:
                series.append(plots.Series(m.replace("_", " "), color, pts, marker(i)))
            for name, ls in (("base", ":"), ("full", "--")):
                e = run.estimate(study, m, name)
                if e is not None:
                    refs.append(plots.Reference(f"{name} · {m.replace('_', ' ')}", color, e, ls))
        png = plots.metric_vs_rank(series, refs, metric="KL divergence", unit="nats",
                                   title=f"{study}: KL divergence of next-token posteriors ({method})")
        return self.ctx.fig(f"{study}-kl", png, f"KL metrics of the shift study against {method} rank; horizontal "
                                                "lines: the same metric for base (dotted) and full (dashed), bands "
                                                "their 95% intervals.")

    def extras(self) -> list[Block]:
        return self.logit_lens() + self.spectrum() + self.intruders()

    def intruders(self) -> list[Block]:
        """A table of intruder counts (variant × module type, and the total) and a layer × variant heatmap."""
        run, study = self.run, self.study
        groups = run.groups(study, "intruders")
        variants = [v for v in run.variants() if run.estimate(study, "intruders", v) is not None]
        if not variants:
            return []
        types = [g[len("type:"):] for g in groups if g.startswith("type:")]
        layers = [g[len("layer:"):] for g in groups if g.startswith("layer:")]

        def count(v: str, group: str = "") -> str:
            e = run.estimate(study, "intruders", v, group)
            return "–" if e is None else f"{e.value:g}"

        info = run.study_info(study).get("intruders", {})
        how = (f"top {info['top_k']} singular vectors per module, ε = {info['epsilon']}" if "top_k" in info else "")
        rows = [[v, count(v)] + [count(v, f"type:{t}") for t in types] for v in variants]
        blocks: list[Block] = [
            Heading(3, "Intruder dimensions"),
            Para("Singular vectors of a variant's weight, among the largest of each linear module, that resemble none "
                 "of the base weight's (best |cosine| below ε; Shuttleworth et al. 2024, PEFT's detection)" +
                 (f": {how}" if how else "") + ". Shuttleworth et al. found them in LoRA updates and rarely after full fine-tuning. "
                 "Counts are summed over modules (and averaged over seeds)."),
            Table(["variant", "total"] + types, rows, caption="intruder dimensions per module type"),
        ]
        if len(layers) > 1:
            mat = np.full((len(variants), len(layers)), np.nan)
            for i, v in enumerate(variants):
                for j, l in enumerate(layers):
                    e = run.estimate(study, "intruders", v, f"layer:{l}")
                    mat[i, j] = np.nan if e is None else e.value
            png = plots.heatmap(mat, variants, layers, title="intruder dimensions per layer", cbar_label="intruders")
            blocks.append(self.ctx.fig("intruders-layers", png, "Intruder dimensions per layer (columns, summed over "
                                       "the layer's modules) and variant (rows)."))
        return blocks

    def logit_lens(self) -> list[Block]:
        run = self.run
        per_variant: dict[str, tuple[list[str], dict[str, list[float]]]] = {}
        for v in run.variants():
            a = run.artifact(v)
            if a is not None and a.shift_layers is not None:
                labels, qs = per_layer_quantities(a.shift_layers)
                if qs:
                    per_variant[v] = (labels, qs)
        if not per_variant:
            if any(a.shift_layers is not None for a in run.artifacts.values()):
                return [Para("shift_layers.json present but holds no per-layer numbers the report can draw.", "note")]
            return []
        quantities = list(dict.fromkeys(q for _, qs in per_variant.values() for q in qs))[:4]
        figs = []
        for q in quantities:
            rows = [v for v in run.variants() if v in per_variant and q in per_variant[v][1]]
            n = max(len(per_variant[v][1][q]) for v in rows)
            labels = next((per_variant[v][0] for v in rows if len(per_variant[v][0]) == n), [str(i) for i in range(n)])
            mat = np.full((len(rows), n), np.nan)
            for i, v in enumerate(rows):
                vals = per_variant[v][1][q]
                mat[i, :len(vals)] = vals
            png = plots.heatmap(mat, rows, labels, title=f"logit lens: {q.replace('_', ' ')}",
                                cbar_label=q.replace("_", " "))
            figs.append(self.ctx.fig(f"logit-lens-{q}", png,
                                     f"Logit lens, {q} per layer (columns) and variant (rows), from each variant's "
                                     "shift_layers.json."))
        return [Heading(3, "Logit lens (layer × variant)"), FigureRow(figs)]

    def spectrum(self) -> list[Block]:
        run = self.run
        if run.spectrum is None:
            return []
        curves = energy_curves(run.spectrum)
        if not curves:
            return [Para("spectrum.json present but holds no energy curve the report can draw.", "note")]
        method = self.ctx.main_method()
        ranks = run.ranks(method) if method else []
        png = plots.energy_curve(curves, ranks_tried=ranks, title="energy of the full update captured by rank r")
        return [Heading(3, "Spectrum of the full update ΔW = W_full − W_base"),
                self.ctx.fig("spectrum-energy", png,
                             "Fraction of ‖ΔW‖²_F kept by the best rank-r approximation (Σ_{i≤r} σ_i² / Σ σ_i²), "
                             "per module type and averaged over modules; a rank that keeps little energy "
                             "cannot express the full update.")]
