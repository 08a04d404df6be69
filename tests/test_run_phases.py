"""Per-phase wall time and peak memory (run_info.json "phases")."""

import mmap
import sys

import pytest
import torch

from lorafair.run.info import PhaseMeter, _peak_rss_kb


def test_phase_records_wall_time_and_its_own_peak_memory():
    meter = PhaseMeter(torch.device("cpu"))
    size = 192 * 2**20
    with meter.phase("big"):
        buf = mmap.mmap(-1, size)  # fresh pages, whatever the heap holds: every page written -> resident
        for off in range(0, size, mmap.PAGESIZE):
            buf[off] = 1
        buf.close()
    with meter.phase("small"):
        pass
    big, small = meter.phases["big"], meter.phases["small"]
    assert big["wall_s"] >= 0 and small["wall_s"] >= 0
    if sys.platform.startswith("linux"):
        assert big["rss_scope"] == small["rss_scope"] == "phase"
        # the peak is reset per phase: the small phase does not inherit the big one's 192 MiB
        assert big["peak_rss_mb"] - small["peak_rss_mb"] > 150, (big, small)
    assert "peak_gpu_allocated_mb" not in big  # CPU: no GPU figures


def test_a_phase_that_raises_is_still_recorded():
    meter = PhaseMeter(torch.device("cpu"))
    with pytest.raises(RuntimeError):
        with meter.phase("boom"):
            raise RuntimeError("x")
    assert "boom" in meter.phases and _peak_rss_kb() > 0
