"""The heldout study's section: the generic one without the fairness–utility trade-off (its target, the loss on
held-out records of the fine-tuning data, is how well a variant learned its data, not a fairness measure), and a
note saying so."""

from __future__ import annotations

from lorafair.report.doc import Block, Para
from lorafair.report.sections import register_section
from lorafair.report.sections.base import Section

NOTE = ("The loss on held-out records of the fine-tuning data says how well each variant learned what it was "
        "trained on, not how fair it is: this study has no fairness–utility trade-off view, and a low capture "
        "here means a rank that under-fits its data.")


@register_section("heldout")
class HeldoutSection(Section):
    """Loss on held-out fine-tuning records against rank; no trade-off view."""

    tradeoff_view = False

    def extras(self) -> list[Block]:
        return [Para(NOTE, kind="note")]
