"""benchmarks/speed/eval_allocator.py: two evaluations compare equal only when every metric is, whatever
their output paths and timings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "speed"))
bench = pytest.importorskip("eval_allocator")


def _metrics(out: str, fid: float) -> dict:
    return {"out_dir": out, "created": out, "timing_s": {"fid": len(out)}, "options": {"fid.cache_dir": out},
            "suites": {"fid": {"fid": fid, "reference_cache": out + "/ref.npz"}}}  # fmt: skip


def test_paths_and_timings_are_ignored_and_a_changed_metric_is_named():
    a, b = _metrics("/tmp/system-0", 226.6), _metrics("/tmp/cached-0", 226.6)
    assert bench.stable(a) == bench.stable(b) and bench.differences(bench.stable(a), bench.stable(b)) == []
    c = _metrics("/tmp/cached-1", 226.60000001)
    assert bench.differences(bench.stable(a), bench.stable(c)) == ["/suites/fid/fid"]


def test_arguments_are_required_and_out_is_refused(capsys):
    with pytest.raises(SystemExit):
        bench.main(["--pairs", "1"])
    assert "arguments after --" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--", "RUN", "--out", "x"])
    assert "--out is chosen per process" in capsys.readouterr().err
