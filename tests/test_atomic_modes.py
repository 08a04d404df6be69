"""Files written by lorafair follow the process umask (not tempfile's 0600), and fsync helpers work."""

import os
import stat

from lorafair import atomic


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


def test_leftovers_of_interrupted_writes_are_removed_on_resume(cli, recipe, tmp_path):
    out = tmp_path / "r"
    assert cli("run", recipe(), "--out", out, "--quiet")[0] == 0
    left = [out / "full-s0" / ".model.abc.tmp", out / "lora-r1-s0" / ".metrics.csv.x.tmp"]
    for p in left:
        p.write_bytes(b"half")
    (out / "lora-r1-s0" / ".adapter.123").mkdir()
    keep = out / "lora-r1-s0" / "notes.txt"
    keep.write_text("mine")
    assert cli("run", recipe(), "--out", out, "--quiet")[0] == 0
    assert not any(p.exists() for p in left) and not (out / "lora-r1-s0" / ".adapter.123").exists()
    assert keep.read_text() == "mine"


def test_weights_are_fsynced_before_the_marker_that_announces_them(cli, recipe, tmp_path, monkeypatch):
    import lorafair.adapt.checkpoint as runner

    events = []
    real_tree, real_json = runner.fsync_tree, runner.atomic_write_json
    monkeypatch.setattr(runner, "fsync_tree", lambda p: (events.append(("fsync", os.path.basename(str(p)))), real_tree(p)))
    monkeypatch.setattr(runner, "atomic_write_json",
                        lambda p, o: (events.append(("write", os.path.basename(str(p)))), real_json(p, o)))
    assert cli("run", recipe(), "--out", tmp_path / "r", "--quiet")[0] == 0
    markers = [i for i, e in enumerate(events) if e == ("write", "train.json")]
    fsyncs = [i for i, e in enumerate(events) if e[0] == "fsync"]
    assert len(markers) == 3  # full, lora-r1, lora-r4
    prev = -1
    for i in markers:  # between two markers, the second variant's weights were fsynced
        assert any(prev < j < i for j in fsyncs), events
        prev = i
