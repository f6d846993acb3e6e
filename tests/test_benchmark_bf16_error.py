"""benchmarks/precision/bf16_error.py: one EBM step under each precision policy against float64. The
comparison only means something if every policy walks the same chains: the same buffer draw and the same
SGLD noise in every dtype, so fp32 sits at rounding distance from float64 and another noise draw does not."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_npz_dir, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "precision"))
bf16_error = pytest.importorskip("bf16_error")


def test_noise_is_the_same_stream_in_float32_and_float64():
    with bf16_error.float32_noise(3):
        a = torch.randn_like(torch.zeros(1000))
    with bf16_error.float32_noise(3):
        b = torch.randn_like(torch.zeros(1000, dtype=torch.float64))
    assert b.dtype == torch.float64 and torch.equal(a.double(), b)
    with bf16_error.float32_noise(4):
        assert not torch.equal(torch.randn_like(torch.zeros(1000)), a)


@pytest.mark.parametrize("method", ["jem", "jeat"])  # jeat: an energy attack's random start before the chains
def test_fp32_step_sits_at_rounding_distance_from_float64_and_other_noise_does_not(tmp_path, method):
    from jeat.config import TrainConfig
    from jeat.data import load_dataset
    from jeat.training import train

    data = make_npz_dir(tmp_path / "data")
    cfg = tiny_config(data, tmp_path, epochs=1, method__name=method, model__arch="jem-cnn-small")
    train(cfg, run_dir=tmp_path / "run", progress=False)
    run = tmp_path / "run"
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    ds = load_dataset(cfg.data.name, "train", cfg.data.root, False, cfg.data.test_file, cfg.data.image_size)
    x, y = ds.images[:16].float() / 255.0, ds.labels[:16].long()
    g64, x64, _ = bf16_error.one_step(run, cfg, ds, x, y, torch.float64, False, False, 0, 0)
    g32, x32, _ = bf16_error.one_step(run, cfg, ds, x, y, torch.float32, False, False, 0, 0)
    other, x_other, _ = bf16_error.one_step(run, cfg, ds, x, y, torch.float64, False, False, 0, 1)
    assert float((x32 - x64).norm() / x64.norm()) < 1e-4
    assert float((g32 - g64).norm() / g64.norm()) < 1e-3
    assert float((x_other - x64).norm() / x64.norm()) > 1e-3  # another noise draw is another chain
