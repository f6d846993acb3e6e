"""Exact resume, the run directory and load_trained (checkpoint safety: test_foundation_checkpoint_safety.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from conftest import make_npz_dir, tiny_config

from jeat.config import TrainConfig
from jeat.loading import load_trained
from jeat.training import CheckpointError, RunDir, Trainer, load_checkpoint, save_checkpoint


def _fit(cfg, run_dir, resume=False, max_steps=None):
    trainer = Trainer(cfg, run_dir=run_dir, resume=resume, progress=False)
    try:
        out = trainer.fit(max_steps=max_steps)
    finally:
        getattr(trainer, "close", lambda: None)()
    return trainer, out


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs"


def _step_records(run_dir: Path) -> list[dict]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    return [r for r in rows if r["kind"] == "step"]


# ---------------------------------------------------------------------------- exact resume


@pytest.fixture(scope="module")
def resume_data(tmp_path_factory) -> Path:
    # 64 training images, batches of 16: 4 steps per epoch, 2 epochs = 8 steps.
    return make_npz_dir(tmp_path_factory.mktemp("resume") / "data", n_train=64, n_test=16, size=16)


@pytest.mark.parametrize(
    ("method", "stop"),
    [("standard", 3), ("standard", 4), ("noise", 5)],
    ids=["mid-epoch", "epoch-boundary", "noise-rng"],
)
def test_resume_is_bit_identical(resume_data, tmp_path, method, stop):
    def cfg():
        c = tiny_config(resume_data, tmp_path, epochs=2)
        c.optim.schedule = "cyclic"  # the LR changes every step: the scheduler state must be restored
        c.method.name = method  # 'noise' draws from the global RNG: its state must be restored too
        return c

    straight, _ = _fit(cfg(), tmp_path / "straight")
    assert straight.global_step == 8

    first, out = _fit(cfg(), tmp_path / "resumed", max_steps=stop)
    assert out == {"stopped_at_step": stop} and first.global_step == stop
    resumed, _ = _fit(cfg(), tmp_path / "resumed", resume=True)
    assert resumed.global_step == 8 and resumed.epoch == 2

    _assert_same_state(straight.model.state_dict(), resumed.model.state_dict())  # incl. BN running stats
    opt_a, opt_b = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    for k in opt_a:
        assert torch.equal(opt_a[k]["momentum_buffer"], opt_b[k]["momentum_buffer"])
    assert straight.opt.param_groups[0]["lr"] == resumed.opt.param_groups[0]["lr"]

    # The log: every step exactly once, with the very same numbers as the uninterrupted run.
    a, b = _step_records(tmp_path / "straight"), _step_records(tmp_path / "resumed")
    assert [r["step"] for r in b] == list(range(1, 9))
    for ra, rb in zip(a, b, strict=True):
        assert (ra["loss"], ra["acc"], ra["lr"]) == (rb["loss"], rb["acc"], rb["lr"])
    epochs = [json.loads(ln) for ln in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if r["kind"] == "epoch"] == [1, 2]


def test_resume_after_a_kill_drops_log_lines_beyond_the_checkpoint(resume_data, tmp_path):
    def cfg():
        return tiny_config(resume_data, tmp_path, epochs=2)

    straight, _ = _fit(cfg(), tmp_path / "straight")
    run = tmp_path / "killed"
    _fit(cfg(), run, max_steps=2)
    shutil.copy(run / "checkpoint.pt", tmp_path / "step2.pt")
    _fit(cfg(), run, resume=True, max_steps=6)  # logs steps 3..6 (and epoch 1) ...
    shutil.copy(tmp_path / "step2.pt", run / "checkpoint.pt")  # ... but "dies" with the step-2 checkpoint on disk
    assert [r["step"] for r in _step_records(run)] == list(range(1, 7))

    resumed, _ = _fit(cfg(), run, resume=True)
    assert [r["step"] for r in _step_records(run)] == list(range(1, 9))  # no duplicated steps
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]
    _assert_same_state(straight.model.state_dict(), resumed.model.state_dict())


def test_truncate_log_drops_lines_after_the_checkpoint(tmp_path):
    run = RunDir(tmp_path)
    for r in [("step", 1, 0), ("step", 2, 0), ("epoch", 2, 1), ("step", 3, 1), ("step", 4, 1), ("epoch", 4, 2)]:
        run.log({"kind": r[0], "step": r[1], "epoch": r[2]})
    run.truncate_log(3)
    assert [(r["kind"], r["step"]) for r in run.records()] == [("step", 1), ("step", 2), ("epoch", 2), ("step", 3)]
    # A checkpoint on the last step of epoch 1 (step 2, 0 epochs completed) precedes that epoch's line.
    run.truncate_log(2, epoch=0)
    assert [(r["kind"], r["step"]) for r in run.records()] == [("step", 1), ("step", 2)]
    assert sorted(q.name for q in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_resume_from_a_checkpoint_on_an_epochs_last_step_keeps_one_epoch_line(resume_data, tmp_path):
    def cfg():
        return tiny_config(resume_data, tmp_path, epochs=2)

    run = tmp_path / "run"
    _fit(cfg(), run, max_steps=4)  # the last step of epoch 1: checkpoint with epoch 0, step_in_epoch 4
    shutil.copy(run / "checkpoint.pt", tmp_path / "step4.pt")
    _fit(cfg(), run, resume=True, max_steps=5)  # logs epoch 1's line at step 4, then step 5 ...
    shutil.copy(tmp_path / "step4.pt", run / "checkpoint.pt")  # ... and dies with the step-4 checkpoint
    _fit(cfg(), run, resume=True)
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]


def test_checkpoint_holds_the_full_training_state(resume_data, tmp_path):
    trainer, _ = _fit(tiny_config(resume_data, tmp_path, epochs=2), tmp_path / "run", max_steps=3)
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    for key in ("model", "optimizer", "scheduler", "method", "rng", "epoch", "step_in_epoch", "global_step", "config"):
        assert key in ckpt
    assert (ckpt["epoch"], ckpt["step_in_epoch"], ckpt["global_step"]) == (0, 3, 3)
    assert TrainConfig.from_dict(json.loads(ckpt["config"])) == trainer.cfg
    assert ckpt["num_classes"] == 4 and list(ckpt["image_shape"]) == [3, 16, 16]
    _assert_same_state(ckpt["model"], trainer.model.state_dict())
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.endswith(".tmp")]


def test_a_resumed_epoch_counts_the_time_it_ran_before_the_checkpoint(resume_data, tmp_path):
    """summary.json's train_time_s sums the epochs' times: an epoch resumed mid-way must include the part
    before its checkpoint, and its images/s must read only the images this process trained on."""
    run = tmp_path / "run"
    _fit(tiny_config(resume_data, tmp_path, epochs=1), run, max_steps=2)  # mid-epoch checkpoint (step 2 of 4)
    ckpt = load_checkpoint(run / "checkpoint.pt")
    assert ckpt["step_in_epoch"] == 2 and ckpt["epoch_time_s"] > 0
    ckpt["epoch_time_s"] = 1000.0  # stands for a long first half, so that the sum is visible
    save_checkpoint(run / "checkpoint.pt", ckpt)
    _, summary = _fit(tiny_config(resume_data, tmp_path, epochs=1), run, resume=True)
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    (epoch,) = [r for r in rows if r["kind"] == "epoch"]
    assert 1000.0 < epoch["train_time_s"] < 1000.0 + 600 and summary["train_time_s"] == epoch["train_time_s"]
    assert epoch["images_per_s"] > 32 / 600  # 2 steps x 16 images over this process's seconds, not over 1000+
    assert load_checkpoint(run / "checkpoint.pt")["epoch_time_s"] == 0.0  # an epoch's end starts the count again


# ---------------------------------------------------------------------------- a finished run


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("finished")
    data = make_npz_dir(base / "data", n_train=32, n_test=16, size=16, channels=None)  # grayscale
    trainer, summary = _fit(tiny_config(data, base, epochs=1), base / "run")
    return trainer, summary, base / "run"


def test_run_directory_contents(finished_run):
    trainer, summary, run = finished_run
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "checkpoint.pt", "model.safetensors",
                                               "summary.json"}  # fmt: skip
    assert TrainConfig.from_dict(json.loads((run / "config.json").read_text())) == trainer.cfg
    assert json.loads((run / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["steps"] == 2 and summary["train_images"] == 32 and 0 <= summary["test_acc"] <= 1
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [(r["kind"], r["step"]) for r in rows] == [("step", 1), ("step", 2), ("epoch", 2)]
    assert {"loss", "acc", "lr"} <= rows[0].keys() and "test_acc" in rows[-1]


@pytest.mark.parametrize("target", ["run dir", "checkpoint.pt", "model.safetensors"])
def test_load_trained(finished_run, target):
    trainer, _, run = finished_run
    path = {"run dir": run, "checkpoint.pt": run / "checkpoint.pt", "model.safetensors": run / "model.safetensors"}
    loaded = load_trained(path[target])
    assert not loaded.model.training
    assert loaded.model.in_channels == 1 and loaded.model.num_classes == 4
    assert loaded.config == trainer.cfg and loaded.run_dir == run
    assert loaded.class_names == ["0", "1", "2", "3"]
    _assert_same_state(loaded.model.state_dict(), {k: v.cpu() for k, v in trainer.model.state_dict().items()})
    x = torch.rand(3, 1, 16, 16)
    trainer.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), trainer.model(x), rtol=1e-5, atol=1e-6)
    assert (loaded.checkpoint is None) == (target == "model.safetensors")


def test_load_trained_from_a_dir_with_only_safetensors(finished_run, tmp_path):
    trainer, _, run = finished_run
    shutil.copy(run / "model.safetensors", tmp_path)
    shutil.copy(run / "config.json", tmp_path)
    loaded = load_trained(tmp_path)
    _assert_same_state(loaded.model.state_dict(), trainer.model.state_dict())


def test_load_trained_errors(finished_run, tmp_path):
    _, _, run = finished_run
    with pytest.raises(CheckpointError, match="no checkpoint.pt or model.safetensors"):
        load_trained(tmp_path)
    shutil.copy(run / "model.safetensors", tmp_path)
    with pytest.raises(CheckpointError, match="config.json"):
        load_trained(tmp_path / "model.safetensors")


def test_a_fresh_run_refuses_a_directory_with_a_checkpoint_and_drops_a_stale_log(npz_dir, tmp_path):
    run = tmp_path / "run"
    Trainer(tiny_config(npz_dir, tmp_path), run, progress=False).fit(max_steps=2)
    with pytest.raises(FileExistsError, match="--resume"):
        Trainer(tiny_config(npz_dir, tmp_path), run, progress=False)
    # A run that died before its first checkpoint: its log must not be appended to.
    (run / "checkpoint.pt").unlink()
    stale = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert stale
    Trainer(tiny_config(npz_dir, tmp_path), run, progress=False).fit(max_steps=2)
    steps = [r["step"] for r in RunDir(run).records("step")]
    assert steps == sorted(set(steps)) and steps[-1] == 2


def test_resume_with_a_new_learning_rate_uses_it(npz_dir, tmp_path):
    """The divergence recipe `--resume RUN --set optim.lr=...` must change the lr, not be ignored."""
    run = tmp_path / "run"
    cfg = tiny_config(npz_dir, tmp_path, epochs=2)
    Trainer(cfg, run, progress=False).fit(max_steps=2)
    same = Trainer(tiny_config(npz_dir, tmp_path, epochs=2), run, resume=True, progress=False)
    assert same.opt.param_groups[0]["lr"] == cfg.optim.lr  # constant schedule: unchanged
    lower = tiny_config(npz_dir, tmp_path, epochs=2)
    lower.optim.lr = cfg.optim.lr / 10
    t = Trainer(lower, run, resume=True, progress=False)
    assert t.opt.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr / 10)
    t.fit(max_steps=3)
    assert t.opt.param_groups[0]["lr"] == pytest.approx(cfg.optim.lr / 10)
