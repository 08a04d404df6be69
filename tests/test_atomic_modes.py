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
