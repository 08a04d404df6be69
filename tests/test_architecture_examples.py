"""The worked examples of docs/architecture.md run as written: the study example registers, validates,
evaluates on tiny:llama and passes the contract checks; the method example is covered by
tests/test_methods_registry.py (registered in a subprocess there)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _study_example() -> str:
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    part = doc.split("### Worked example: adding a study", 1)[1]
    blocks = re.findall(r"```python\n(.*?)```", part, flags=re.S)
    assert blocks, "docs/architecture.md: the study example has no python block"
    return blocks[0]


def test_the_study_example_runs_as_documented(tmp_path):
    data = tmp_path / "mybench.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Q{i}: is {i} even?", "completion": " yes" if i % 2 == 0 else " no"}) + "\n"
                            for i in range(6)), encoding="utf-8")
    (tmp_path / "example.py").write_text(_study_example(), encoding="utf-8")
    script = textwrap.dedent(f"""
        import json, math, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        exec(compile(open({str(tmp_path / "example.py")!r}).read(), "architecture-example", "exec"))
        from lorafair.studies.base import STUDIES, metric_specs
        from lorafair.studies.loader import validate_studies
        from lorafair.errors import UserError
        from helpers_lf import eval_context
        from test_study_contract import check_result, check_specs
        cls = STUDIES.get("mystudy")
        check_specs(cls)
        cfg = validate_studies({{"mystudy": {{"data": {{"source": "jsonl:{data}"}}, "n_boot": 200}}}})["mystudy"]
        try:
            validate_studies({{"mystudy": {{"nope": 1}}}})
            raise SystemExit("unknown key accepted")
        except UserError as e:
            assert "studies.mystudy.nope" in str(e), str(e)
        ctx = eval_context(cls, study_config=cfg, out_dir={str(tmp_path / "run" / "base-s0")!r})
        res = cls().evaluate(ctx)
        check_result("mystudy", cls, res)
        row = res.metrics[0]
        stat = metric_specs(cls)["preferred_logp"].stat
        cols = {{k: v[None, :] for k, v in res.items["items"].columns.items()}}
        assert abs(float(stat(cols)[0]) - row.value) < 1e-9
        assert row.value < 0 and row.ci_low <= row.value <= row.ci_high and row.n == 6
        print(json.dumps({{"value": row.value, "n": row.n}}))
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["n"] == 6
