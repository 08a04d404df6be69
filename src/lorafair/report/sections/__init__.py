"""One report section per study.

A study contributes its part of the report with a module in this package that registers a subclass of
:class:`lorafair.report.sections.base.Section` under the study's name::

    from lorafair.report.sections import register_section
    from lorafair.report.sections.base import Section

    @register_section("mystudy")
    class MyStudySection(Section):  # its docstring: the registry's help line
        def extras(self) -> list[Block]:  # figures after the generic parts (from its artifacts …)
            ...

The hooks a section may override (:class:`~.base.Section`): ``headline_figures()`` (the figures
against rank), ``extras()`` (blocks after the groups), ``appendix()`` (blocks after every study's
section, e.g. the toxicity generations) or ``blocks()`` (the whole section).

The first lookup imports every module of this package (:class:`lorafair.registry.Registry` with
``plugins``), so nothing lists the modules. A study without a module of its own gets :class:`Section`
itself: its title and description, the table of its headline metrics, each against rank, the capture
ratio, the groups, how the numbers were obtained and every row — all read from the run directory.
"""

from __future__ import annotations

from lorafair.registry import Registry
from lorafair.report.sections.base import Section

SECTIONS: Registry[type] = Registry("report section", "study", plugins=("lorafair.report.sections",))


def register_section(study: str):
    """Class decorator: ``@register_section("toxicity")`` on a :class:`~.base.Section` subclass."""
    return SECTIONS.register(study)


def section_class(study: str) -> type:
    """The section class of ``study``: its registered one, else the generic :class:`~.base.Section`."""
    return SECTIONS.get(study) if study in SECTIONS else Section
