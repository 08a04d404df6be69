"""Assemble the report of one run as blocks (see :mod:`.doc`): the header and the rank recommendation
(:mod:`.front`), then each study's section in run order (:mod:`.sections`: the study's own, or the
generic one), then every section's appendix (e.g. the toxicity examples) and the notes.
"""

from __future__ import annotations

from lorafair.report import front
from lorafair.report.context import ReportContext
from lorafair.report.doc import Block
from lorafair.report.load import RunData
from lorafair.report.sections import section_class


class ReportBuilder:
    """Builds the blocks of one run's report; ``toc`` and ``recs`` are filled for the renderers."""

    def __init__(self, run: RunData, target: float = 0.9):
        self.ctx = ReportContext(run, target)
        self.run = run
        self.target = target
        self.recs = self.ctx.recs
        self.toc = self.ctx.toc

    def build(self) -> list[Block]:
        sections = [section_class(study)(self.ctx, study) for study in self.run.studies()]
        blocks = front.header(self.ctx)
        blocks += front.recommendation(self.ctx)
        for section in sections:
            blocks += section.blocks()
        for section in sections:
            blocks += section.appendix()
        blocks += front.notes(self.ctx)
        return blocks
