"""The parity harness's float32 tolerance: 10x the noise floor, the largest over the one-ulp control draws."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "parity"))
common = pytest.importorskip("common")


def _side(grad_scale: float, losses: list[float]) -> dict:
    return {"grads": {"w": torch.full((3,), grad_scale)}, "losses": losses, "times": [1.0], "wall": 1.0}


def _score(controls: list[dict]) -> dict:
    o = SimpleNamespace(dtype="float32", traj_rtol=1e-3)
    ours, ref = _side(1.0, [2.0, 1.0]), _side(1.03, [2.0, 1.0])  # gradients 3 % apart
    res = common.Result("m", {}, {})
    return common.score(res, o, ours, ref, {"w": "w"}, 8, None, controls).checks["gradients"] | {
        "settings": res.settings
    }


def test_the_largest_draw_sets_the_tolerance_and_each_draw_is_recorded():
    small, large = _side(1.001, [2.0, 1.0]), _side(1.005, [2.0, 1.0])  # jeat against itself: 0.1 %, 0.5 %
    one = _score([small])
    assert not one["pass"] and one["rtol"] == pytest.approx(10 * 0.001 / 1.0, rel=1e-3)
    both = _score([small, large])
    assert both["pass"] and both["rtol"] == pytest.approx(10 * 0.005, rel=1e-3)
    assert both["fp32_floors"] == pytest.approx([0.001, 0.005], rel=1e-3)
    assert both["settings"]["fp32_controls"] == 2


def test_without_controls_the_fixed_tolerance_holds():
    none = _score([])
    assert none["fp32_floor"] is None and none["rtol"] == common.STEP_RTOL and not none["pass"]
