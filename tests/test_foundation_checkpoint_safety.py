"""Safety of data: checkpoints and results written atomically (temp file + rename), and loading that never
runs pickled code (weights_only)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_config

from jeat.loading import load_trained
from jeat.training import CheckpointError, Trainer, load_checkpoint, save_checkpoint
from jeat.training.checkpoint import atomic_write_bytes, atomic_write_json, atomic_write_text


class _Payload:
    """Unpickling this creates a directory: harmless, but proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


# ---------------------------------------------------------------------------- atomic writes


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def test_atomic_write_failure_keeps_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "checkpoint.pt"
    atomic_write_bytes(target, lambda f: f.write(b"old contents"))

    def broken(f):
        f.write(b"half of the new")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, broken)
    assert target.read_bytes() == b"old contents"
    assert _listing(tmp_path) == ["checkpoint.pt"]


def test_atomic_write_interrupted_at_rename(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    atomic_write_text(target, "old")

    def no_replace(src, dst):
        raise KeyboardInterrupt  # killed between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", no_replace)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and _listing(tmp_path) == ["config.json"]


def test_save_checkpoint_failure_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"w": torch.arange(4), "step": 1})

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("cannot pickle this")

    with pytest.raises(RuntimeError, match="cannot pickle this"):  # torch.save fails mid-write
        save_checkpoint(path, {"w": torch.zeros(10_000), "bad": Unpicklable()})
    state = load_checkpoint(path)
    assert torch.equal(state["w"], torch.arange(4)) and state["step"] == 1
    assert _listing(tmp_path) == ["checkpoint.pt"]


def test_atomic_writes_succeed_and_create_parents(tmp_path):
    path = tmp_path / "a" / "b" / "summary.json"
    atomic_write_json(path, {"t": torch.tensor([1.0, 2.0]), "p": Path("/x"), "n": 3})
    assert json.loads(path.read_text()) == {"t": [1.0, 2.0], "p": "/x", "n": 3}
    atomic_write_json(path, {"n": 4})
    assert json.loads(path.read_text()) == {"n": 4} and _listing(path.parent) == ["summary.json"]
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, {"x": torch.ones(2)})
    save_checkpoint(ckpt, {"x": torch.zeros(3)})
    assert torch.equal(load_checkpoint(ckpt)["x"], torch.zeros(3))


# ---------------------------------------------------------------------------- code-free loading


def test_checkpoint_that_would_execute_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": {"w": torch.ones(1)}, "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to load") as e:
        load_checkpoint(path)
    assert "mkdir" in str(e.value)  # names the blocked callable
    assert not marker.exists()
    with pytest.raises(CheckpointError):
        load_trained(path)
    assert not marker.exists()
    # The payload is real: an unrestricted load would have run it.
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_resume_refuses_a_malicious_checkpoint(npz_dir, tmp_path):
    marker = tmp_path / "pwned"
    run = tmp_path / "run"
    Trainer(tiny_config(npz_dir, tmp_path, epochs=2), run, progress=False).fit(max_steps=1)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    state["method"] = {"buffer": _Payload(marker)}
    torch.save(state, run / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="refusing"):
        Trainer(tiny_config(npz_dir, tmp_path, epochs=2), run_dir=run, resume=True, progress=False)
    assert not marker.exists()


def test_unreadable_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    good = tmp_path / "good.pt"
    torch.save({"x": torch.ones(100)}, good)
    data = good.read_bytes()
    for name, content in (("truncated.pt", data[: len(data) // 2]), ("empty.pt", b""), ("text.pt", b"hello")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_checkpoint(tmp_path / name)


def test_numpy_arrays_in_a_checkpoint_are_refused(tmp_path):
    # weights_only allows tensors and plain data; arrays must be saved as tensors.
    path = tmp_path / "np.pt"
    torch.save({"a": np.zeros(3)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
