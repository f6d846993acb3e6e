"""benchmarks/gpu/gpu_check.py in its CPU smoke mode (issue 25): the script works before a GPU is spent on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_smoke_runs_every_item_and_writes_its_report(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks" / "gpu"))
    sys.modules.pop("gpu_check", None)
    import gpu_check

    rc = gpu_check.main(["--smoke", "--out", str(tmp_path), "--methods", "pgd,jempp,dat"])
    res = json.loads((tmp_path / "speed_gpu_smoke.json").read_text())
    assert rc == 0, res
    assert res["smoke"] and res["cuda_tests"]["rc"] == 0
    timed = [r for r in res["steps"] if "skipped" not in r]
    assert {(r["method"], r["precision"]) for r in timed} == {(m, p) for m in ("pgd", "jempp", "dat")
                                                              for p in ("fp32", "bf16")}  # fmt: skip
    assert all(r["step_s"] > 0 and r["floor_s"] > 0 for r in timed)
    assert [r["method"] for r in res["stability"]] == ["jeat", "jempp"]
    assert all(r["finite"] and r["steps"] == 2 for r in res["stability"])
    assert "fid" in res and "GPU check" in (tmp_path / "speed_gpu_smoke.md").read_text()
    assert not (ROOT / "benchmarks" / "results" / "speed_gpu_smoke.json").exists()
