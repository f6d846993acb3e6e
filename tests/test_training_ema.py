"""The weight average (training/ema.py): its update rule, exact resume, and which weights the run,
loading, evaluation and sampling use. Also the optional TensorBoard sink."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch
from conftest import make_npz_dir, tiny_config
from torch import nn

from jeat.loading import load_trained
from jeat.training import CheckpointError, Trainer
from jeat.training.ema import EMA


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_npz_dir(tmp_path_factory.mktemp("ema") / "data", n_train=64, n_test=16, size=16)


def _fit(cfg, run_dir, resume=False, max_steps=None):
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume, progress=False)
    try:
        trainer.fit(max_steps=max_steps)
    finally:
        trainer.close()
    return trainer


def test_update_follows_the_formula_with_its_warmup_ramp():
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    ema = EMA(net, decay=0.9, warmup=10)
    expected = {k: v.clone().float() for k, v in net.state_dict().items()}
    for t in range(30):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
            net[1].running_mean.add_(1.0)
            net[1].num_batches_tracked.add_(1)
        d = min(0.9, (1 + t) / (10 + t))  # 0.1, 0.18, ... then 0.9 from t = 81/9... capped at decay
        assert ema.rate() == pytest.approx(d)
        ema.update(net)
        for k, v in net.state_dict().items():
            if v.is_floating_point():
                expected[k] = d * expected[k] + (1 - d) * v
            else:
                expected[k] = v.clone()
    for k, v in expected.items():
        assert torch.allclose(ema.shadow[k], v.to(ema.shadow[k].dtype), atol=1e-6), k
    assert ema.shadow["1.num_batches_tracked"].item() == 30  # integers are copied, not averaged
    assert EMA(net, decay=0.9, warmup=1).rate() == 0.9  # warmup 1: no ramp


def test_applied_swaps_in_the_average_and_restores_the_weights():
    net = nn.Linear(3, 2)
    ema = EMA(net, decay=0.5)
    live = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        ema.shadow["weight"].fill_(7.0)
    with ema.applied(net):
        assert torch.all(net.weight == 7.0)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in live.items())
    with pytest.raises(ValueError, match="decay"):
        EMA(net, decay=1.0)


def test_resume_continues_the_same_average_bit_for_bit(data, tmp_path):
    def cfg():
        c = tiny_config(data, tmp_path, epochs=2)
        c.ema.decay = 0.8
        return c

    straight = _fit(cfg(), tmp_path / "straight")
    _fit(cfg(), tmp_path / "resumed", max_steps=3)  # mid-epoch: the shadow comes from the checkpoint
    resumed = _fit(cfg(), tmp_path / "resumed", resume=True)
    assert straight.ema.updates == resumed.ema.updates == 8
    for k, v in straight.ema.shadow.items():
        assert torch.equal(v, resumed.ema.shadow[k]), k
    assert not torch.equal(straight.ema.shadow["backbone.fc.weight"], straight.model.state_dict()["backbone.fc.weight"])


def test_run_reports_and_saves_which_weights_it_used(data, tmp_path):
    c = tiny_config(data, tmp_path, epochs=1)
    c.ema.decay = 0.8
    t = _fit(c, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["weights"] == "ema" and summary["ema"]["updates"] == 4
    epoch = [json.loads(ln) for ln in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()][-1]
    assert {"test_acc", "test_acc_raw"} <= epoch.keys()

    for source in (tmp_path / "run", tmp_path / "run" / "model.safetensors"):  # checkpoint.pt, then safetensors
        auto = load_trained(source)
        assert auto.weights == "ema"
        assert torch.equal(auto.model.state_dict()["backbone.fc.weight"], t.ema.shadow["backbone.fc.weight"])
        raw = load_trained(source, weights="raw")
        assert raw.weights == "raw"
        assert torch.equal(raw.model.state_dict()["backbone.fc.weight"], t.model.state_dict()["backbone.fc.weight"])

    plain = tiny_config(data, tmp_path, epochs=1)
    _fit(plain, tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["weights"] == "raw"
    assert load_trained(tmp_path / "plain").weights == "raw"
    with pytest.raises(CheckpointError, match="trained without ema"):
        load_trained(tmp_path / "plain", weights="ema")


def test_evaluation_and_sampling_say_which_weights(data, tmp_path):
    from jeat.evaluation import evaluate
    from jeat.sampling.generate import generate_from_checkpoint

    c = tiny_config(data, tmp_path, epochs=1)
    c.ema.decay = 0.8
    _fit(c, tmp_path / "run")
    opts = {
        "robustness.pgd_steps": "1",
        "robustness.energy_steps": "1",
        "robustness.cw_steps": "1",
        "robustness.cw_l2_steps": "1",
    }
    m = evaluate(tmp_path / "run", suites="robustness", n=8, batch_size=8, data=str(data), progress=False,
                 options=opts, weights="raw")  # fmt: skip
    assert m["weights"] == "raw" and "(raw weights)" in (tmp_path / "run" / "eval" / "report.md").read_text()
    res = generate_from_checkpoint(tmp_path / "run", per_class=1, steps=2, batch_size=10, seed_dist="uniform")
    assert res.extra["weights"] == "ema"


class _FakeWriter:
    def __init__(self, log_dir, purge_step=None):
        self.log_dir, self.purge_step, self.scalars, self.texts = log_dir, purge_step, [], []
        _FakeWriter.last = self

    def add_scalar(self, tag, value, step):
        self.scalars.append((tag, value, step))

    def add_text(self, tag, text, step):
        self.texts.append((tag, text, step))

    def flush(self):
        pass

    def close(self):
        self.closed = True


def test_tensorboard_gets_the_logged_metrics_when_importable(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=_FakeWriter))
    _fit(tiny_config(data, tmp_path, epochs=1), tmp_path / "run")
    w = _FakeWriter.last
    assert w.log_dir == str(tmp_path / "run" / "tensorboard") and w.closed
    tags = {t for t, _, _ in w.scalars}
    assert {"train/loss", "train/acc", "epoch/test_acc"} <= tags
    assert [s for t, _, s in w.scalars if t == "train/loss"] == [1, 2, 3, 4]
    _fit(tiny_config(data, tmp_path, epochs=2), tmp_path / "run", resume=True)
    assert _FakeWriter.last.purge_step == 4  # events after the checkpoint are dropped on resume


def test_no_tensorboard_package_means_no_sink(data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import raises ImportError
    t = _fit(tiny_config(data, tmp_path, epochs=1), tmp_path / "run")
    assert t.run.sinks == [] and not (tmp_path / "run" / "tensorboard").exists()


def test_tensorboard_event_file_is_written_with_the_real_package(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _fit(tiny_config(data, tmp_path, epochs=1), tmp_path / "run")
    acc = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    assert "epoch/test_acc" in acc.Tags()["scalars"]


def test_copy_first_starts_the_average_at_the_first_updated_weights_as_dats_averaged_model():
    from jeat.training.ema import EMA

    model = torch.nn.Linear(3, 2)
    ema = EMA(model, 0.999, warmup=10, copy_first=True)
    with torch.no_grad():
        model.weight.add_(1.0)
    w1 = model.weight.detach().clone()
    ema.update(model)
    assert torch.equal(ema.shadow["weight"], w1)  # n = 0: a copy, the initial weights forgotten
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)  # n = 1: decay (1 + 1) / (10 + 1)
    d = 2 / 11
    assert torch.allclose(ema.shadow["weight"], d * w1 + (1 - d) * model.weight)
