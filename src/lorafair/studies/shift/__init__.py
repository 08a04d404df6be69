"""The ``shift`` study (see :mod:`lorafair.studies.shift.study`)."""

from lorafair.studies.shift.study import ShiftConfig, ShiftStudy

__all__ = ["ShiftConfig", "ShiftStudy"]
