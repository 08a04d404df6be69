"""The report: report.html / report.md / plots/ of a run, and the comparison of several runs.

``write_report(run_dir, target=0.9)`` is what the runner calls at the end of every run;
``write_compare(run_dirs, out_dir, target=0.9)`` backs ``lorafair compare``.
"""

from lorafair.report.compare import write_compare
from lorafair.report.write import write_report

__all__ = ["write_report", "write_compare"]
