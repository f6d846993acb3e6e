"""The speed runner runs end to end on its synthetic data with the presets as they are (it broke once when
the presets gained a validation split larger than its synthetic training set, and nothing noticed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_speed_runner_times_a_step_and_sampling(tmp_path):
    out = tmp_path / "speed.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "speed" / "speed.py"), "--device", "cpu", "--methods",
           "standard", "--modes", "fp32", "--batch", "8", "--sgld-steps", "1", "--sample-steps", "1",
           "--rounds", "1", "--warmup", "0", "--threads", "1", "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.with_suffix(".json").read_text())
    steps = [r for r in res["methods"] if "error" not in r]
    assert {r["method"] for r in steps} == {"standard"}, res["methods"]
    assert all(r["images_per_s"] > 0 for r in steps)
    assert res["sampling"] and "error" not in res["sampling"][0]
