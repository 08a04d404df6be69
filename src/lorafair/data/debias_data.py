"""Debias fine-tuning datasets: ``cda`` and ``antistereotype`` (imported here so both register)."""

from lorafair.data import debias_antistereotype, debias_cda  # noqa: F401
