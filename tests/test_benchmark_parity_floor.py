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


def test_state_after_the_run_and_shape_mismatches_fail_rather_than_raise():
    assert common.Diff.of(torch.zeros(8), torch.zeros(16)).rel == float("inf")  # a drifted batch size
    bn = torch.nn.BatchNorm1d(3)
    bn(torch.randn(4, 3))  # moves its running statistics
    ours = {"net.bn.running_mean": bn.running_mean.clone(), "net.bn.running_var": bn.running_var.clone()}
    ref_model = torch.nn.Sequential(bn)
    a, b = common.bn_pair(ours, ref_model, lambda k: "net.bn." + k.split(".")[-1])
    assert torch.equal(a, b)
    with pytest.raises(KeyError, match="without a jeat counterpart"):
        common.bn_pair({}, ref_model, lambda k: k)
    assert common.bn_pair(ours, torch.nn.Linear(2, 2), lambda k: k) is None  # no BN: nothing to compare


def test_bf16_rows_are_drift_beside_the_float32_floor_never_pass_or_fail():
    report = pytest.importorskip("report")
    row = {"checks": {"loss": {"max_rel": 2e-3, "pass": False}}, "settings": {"steps": 30, "model": "WRN", "batch": 8},
           "date": "2026-12-06"}  # fmt: skip
    f32 = {"checks": {"loss": {"max_rel": 1e-7, "fp32_floor": 5e-8}}}
    text = "\n".join(report._bf16({"jem": {"parity-bf16": row, "parity-float32": f32}}))
    assert "loss 2.0e-03 (fp32 floor 5.0e-08)" in text and "FAIL" not in text and "pass" not in text
    assert report._bf16({"jem": {"parity-float32": f32}}) == []  # no bf16 row: no section
