"""Files written by lorafair follow the process umask (not tempfile's 0600), and fsync helpers work."""

import os
import stat

from lorafair.run import atomic


def test_atomic_files_and_temp_dirs_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    atomic._UMASK = None
    try:
        atomic.atomic_write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
        d = atomic.make_temp_dir(tmp_path, ".adapter.")
        assert stat.S_IMODE(d.stat().st_mode) == 0o750
        (d / "f").write_bytes(b"y")
        atomic.fsync_tree(d)
    finally:
        os.umask(old)
        atomic._UMASK = None
    assert not list(tmp_path.glob(".a.txt.*.tmp"))


def test_json_is_strict_nan_and_inf_become_null(tmp_path):
    import json

    import numpy as np

    atomic.atomic_write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32("nan"),
                                                   "d": np.array([np.inf, 2.0]), "e": "NaN"})
    text = (tmp_path / "x.json").read_text()
    obj = json.loads(text, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
    assert obj == {"a": None, "b": [1.0, None], "c": None, "d": [None, 2.0], "e": "NaN"}
    atomic.atomic_write_jsonl(tmp_path / "x.jsonl", [{"v": float("-inf")}])
    assert json.loads((tmp_path / "x.jsonl").read_text()) == {"v": None}
