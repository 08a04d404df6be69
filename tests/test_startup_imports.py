"""Start-up cost: a run's set-up (the CLI, the config with every study registered, the runner) does not import the
heavy libraries only some studies or the report need — fairlearn and sklearn (with scipy.stats: 0.6 s), pandas
(0.2 s), matplotlib (0.3 s). Measured: a finished run re-checked by `lorafair run` took 5.1 s with them and 4.0 s
without (docs/performance.md)."""

import json
import subprocess
import sys

from helpers_lf import TINY

HEAVY = ("fairlearn", "sklearn", "pandas", "matplotlib")

CODE = """
import json, sys
from lorafair.commands.run import write_report, run
from lorafair.config.load import validate_config
from lorafair.run.sweep import run_sweep
from lorafair.run.runner import Runner
cfg = validate_config(json.loads(sys.argv[1]))
import lorafair.studies.classification.study, lorafair.studies.classification.tabular.datasets
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def test_set_up_imports_no_heavy_library():
    out = subprocess.run([sys.executable, "-c", CODE.format(heavy=HEAVY), json.dumps(TINY)], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_lazy_imports_still_work():
    # the classification metrics import fairlearn when called; the report builder imports the report when called
    import numpy as np

    from lorafair.studies.classification.metrics import fairlearn_metrics

    overall, by_group = fairlearn_metrics([1, 0, 1, 0], [1, 0, 0, 0], ["a", "a", "b", "b"])
    assert overall["accuracy"] == 0.75 and by_group["b"]["accuracy"] == 0.5
    assert overall["dp_difference"] == 0.5
    from lorafair.commands.run import write_report
    from lorafair.studies.classification.tabular.loaders import load_tabular

    assert callable(write_report) and len(load_tabular("german")) > 0 and np.isfinite(overall["balanced_accuracy"])
