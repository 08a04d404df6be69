"""The heldout study's section: the generic one without the fairness–utility trade-off (its target, the loss on
held-out records of the fine-tuning data, is how well a variant learned its data, not a fairness measure)."""

from __future__ import annotations

from lorafair.report.sections import register_section
from lorafair.report.sections.base import Section


@register_section("heldout")
class HeldoutSection(Section):
    """Loss on held-out fine-tuning records against rank; no trade-off view."""

    tradeoff_view = False
