"""Tests that need CUDA (issue 25): skipped on machines without it; benchmarks/gpu/gpu_check.py runs them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import make_npz_dir, tiny_config

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("method", ["pgd", "jem", "dat"])
@pytest.mark.parametrize("amp", ["none", "bf16"])
def test_training_steps_on_cuda_are_finite(tmp_path, method, amp):
    from jeat.training import Trainer

    data = make_npz_dir(tmp_path / "data", n_train=64, n_test=16, size=16)
    cfg = tiny_config(data, tmp_path / "runs", epochs=1)
    cfg.device, cfg.amp, cfg.method.name = "cuda", amp, method
    if method == "dat":
        cfg.data.outdist, cfg.method.attack.norm, cfg.method.attack.eps = "uniform", "l2", 0.5
    tr = Trainer(cfg, progress=False)
    tr.fit(max_steps=3)
    losses = [r["loss"] for r in tr.run.records("step")]
    assert losses and all(math.isfinite(v) for v in losses)
    assert next(tr.model.parameters()).device.type == "cuda"


def test_attacks_and_sampling_agree_between_cpu_and_cuda():
    from jeat.attacks import pgd
    from jeat.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn-small").eval()
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8)
    cpu = pgd(model, x, y, 0.5, 0.1, 5, random_start=False, norm="l2")
    gpu = pgd(model.cuda(), x.cuda(), y.cuda(), 0.5, 0.1, 5, random_start=False, norm="l2").cpu()
    assert (cpu - gpu).abs().max() < 1e-3
