"""The validation split (issue 34): the test set only reports, every decision of a run reads held-out
training images, and the split is the same for a resume, a re-run and the later commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_npz_dir, tiny_config, write_npz

from jeat.config import TrainConfig
from jeat.data import load_dataset
from jeat.data.split import SplitError, draw_split, jem_split, load_split, stratified_split, training_part
from jeat.overrides import apply_override
from jeat.training import Trainer
from jeat.training.checkpoint import load_checkpoint
from jeat.training.guard import DivergenceError


def _cfg(data: Path, out: Path, **changes):
    cfg = tiny_config(data, out, name="r", **changes)
    cfg.data.valid_size = changes.get("data__valid_size", 16)
    return cfg


@pytest.fixture
def data80(tmp_path: Path) -> Path:
    """80 training images (16 held out leave 64: four 16-image batches per epoch), 32 test images."""
    return make_npz_dir(tmp_path / "data", n_train=80, n_test=32)


def _learnable(root: Path, n_train: int = 80, n_test: int = 32, seed: int = 0) -> Path:
    """4 classes told apart by a per-class colour under noise: at lr 0.3 a model learns them unevenly, so
    its validation accuracy rises and falls (the guard has decisions to take)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(60, 196, (4, 1, 1, 3))
    root.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 4
        x = np.clip(base[y] + rng.normal(0, 30, (n, 16, 16, 3)), 0, 255).astype(np.uint8)
        np.savez(root / f"{name}.npz", x=x, y=y.astype(np.int64))
    return root


def test_split_is_stratified_seeded_and_disjoint():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    s = stratified_split(labels, 10, seed=0)
    counts = torch.bincount(labels[torch.tensor(s.valid)], minlength=3).tolist()
    assert counts == [5, 3, 2] and len(set(s.valid)) == 10 and s.valid == sorted(s.valid)
    assert stratified_split(labels, 10, seed=0).valid == s.valid  # a re-run draws the same images
    assert stratified_split(labels, 10, seed=1).valid != s.valid  # the run's seed draws them
    # Largest remainder: 7 of 100 -> 3.5, 2.1, 1.4 -> 3 + 2 + 1 = 6, the leftover to the largest remainder.
    assert torch.bincount(labels[torch.tensor(stratified_split(labels, 7, 0).valid)]).tolist() == [4, 2, 1]
    for bad in (0, 100, 101, -1):
        with pytest.raises(SplitError, match="data.valid_size"):
            stratified_split(labels, bad, seed=0)


def test_a_recorded_split_refuses_other_data(tmp_path):
    x, _ = write_npz(tmp_path / "a" / "train.npz", 40)
    full = load_dataset("npz", "train", root=tmp_path / "a")
    split = stratified_split(full.labels, 8, 0)
    train, valid = split.apply(full)
    assert len(train) == 32 and len(valid) == 8
    assert not set(map(bytes, train.images.numpy())) & set(map(bytes, valid.images.numpy()))
    write_npz(tmp_path / "b" / "train.npz", 40, seed=7, num_classes=3)
    with pytest.raises(SplitError, match="point --data at the data the run was trained on"):
        split.apply(load_dataset("npz", "train", root=tmp_path / "b"))


def test_a_run_records_its_split_and_trains_without_those_images(data80, tmp_path):
    t = Trainer(_cfg(data80, tmp_path / "runs"), progress=False)
    summary = t.fit()
    split = load_split(t.run.path)
    assert split is not None and len(split.valid) == 16 and len(t.valid_set) == 16 and len(t.train_set) == 64
    full = load_dataset("npz", "train", root=data80)
    assert torch.equal(training_part(full, t.run.path).images, t.train_set.images)
    held = {bytes(im) for im in full.images[torch.tensor(split.valid)].numpy()}
    assert not held & {bytes(im) for im in t.train_set.images.numpy()}
    rec = t.run.records("epoch")[-1]
    assert "valid_acc" in rec and "test_acc" in rec
    assert summary["valid_images"] == 16 and summary["test_images"] == 32 and summary["selection"] == "validation"
    assert summary["valid_acc"] == rec["valid_acc"] and summary["test_acc"] == rec["test_acc"]
    assert summary["best_valid_acc"] is not None and summary["test_acc_best_valid"] is not None
    assert "default" in summary["weights_used_by_commands"] and "best_test_acc" not in summary


def test_resume_keeps_the_split_and_refuses_another(data80, tmp_path):
    cfg = _cfg(data80, tmp_path / "runs", epochs=2)
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=5)
    first = load_split(t.run.path).valid
    cfg.seed = 3  # a resumed run keeps the split it was trained with, whatever seed it is resumed with
    r = Trainer(cfg, t.run.path, resume=True, progress=False)
    assert load_split(r.run.path).valid == first and len(r.train_set) == 64
    cfg.data.valid_size = 8
    with pytest.raises(SplitError, match="a run keeps its split"):
        Trainer(cfg, t.run.path, resume=True, progress=False)
    cfg.data.valid_size, cfg.data.valid_rule = 16, "jem"
    with pytest.raises(SplitError, match="data.valid_rule=stratified"):
        Trainer(cfg, t.run.path, resume=True, progress=False)


def test_jem_rule_holds_out_what_jems_get_data_holds_out():
    # train_wrn_ebm.py / JEM++'s utils.py: np.random.seed(1234); np.random.shuffle(all_inds); first n_valid.
    # (benchmarks/parity/split.py runs the references' own get_data on CIFAR-10's labels: identical.)
    state = np.random.get_state()
    np.random.seed(1234)
    inds = list(range(500))
    np.random.shuffle(inds)
    np.random.set_state(state)
    labels = torch.arange(500) % 10
    s = jem_split(labels, 50)
    assert s.valid == sorted(inds[:50]) and s.rule == "jem" and s.seed == 1234
    assert draw_split(labels, 50, seed=7, rule="jem").valid == s.valid  # the run's seed does not move it
    assert draw_split(labels, 50, seed=7).valid != s.valid  # stratified, the default
    with pytest.raises(SplitError, match="data.valid_rule"):
        draw_split(labels, 50, 0, rule="random")


def test_paper_presets_hold_out_their_references_split():
    from jeat import get_preset

    for name in ("paper-jem", "paper-jempp", "paper-eb-jdat", "paper-robust-jem", "paper-jeat", "paper-prejeat"):
        d = get_preset(name).data
        assert (d.valid_size, d.valid_rule) == (5000, "jem"), name
    for name in ("paper-trades", "paper-dat", "paper-sadajem", "paper-free"):
        assert get_preset(name).data.valid_size == 0, name
    assert get_preset("cpu-jem").data.valid_rule == "stratified"
    cfg = get_preset("cpu-jem")
    cfg.data.valid_rule = "random"
    from jeat.validation import validate

    with pytest.raises(ValueError, match="data.valid_rule must be stratified or jem"):
        validate(cfg)


def test_a_run_logs_how_its_validation_predictions_spread(data80, tmp_path):
    t = Trainer(_cfg(data80, tmp_path / "runs", epochs=1), progress=False)
    t.fit()
    (rec,) = t.run.records("epoch")
    # the largest share of the 16 validation images given one class: what the guard's dead-model check reads
    assert 0.25 <= rec["valid_top_share"] <= 1.0 and rec["valid_top_share"] * 16 == round(rec["valid_top_share"] * 16)
    model_preds = t.model.eval()(t.valid_set.images.float().div(255)).argmax(1)
    assert rec["valid_top_share"] == torch.bincount(model_preds).max().item() / 16


def _noise_test_set(data: Path, out: Path) -> Path:
    """The same training images; the test set replaced by noise of another size and other labels."""
    out.mkdir(parents=True)
    (out / "train.npz").write_bytes((data / "train.npz").read_bytes())
    rng = np.random.default_rng(123)
    np.savez(out / "test.npz", x=rng.integers(0, 256, (48, 16, 16, 3), dtype=np.uint8),
             y=rng.integers(0, 4, 48).astype(np.int64))  # fmt: skip
    return out


def _decisions(t: Trainer, summary: dict) -> dict:
    epochs = t.run.records("epoch")
    # the runs live in two directories: a stop's last_good names its file, compared by name
    events = [{**e, "last_good": Path(e["last_good"]).name} if e.get("last_good") else e
              for e in summary["guard"]["events"]]  # fmt: skip
    return {
        "events": events,
        "status": summary["status"],
        "valid": [r["valid_acc"] for r in epochs],
        "best_step": t.best_step,
        "best_file_step": load_checkpoint(t.run.best_checkpoint)["global_step"],
        "steps": [s for s, _ in t.run.step_checkpoints()],
        "weights": {k: v.clone() for k, v in t.model.state_dict().items()},
    }


def test_swapping_the_test_set_for_noise_changes_no_decision(tmp_path):
    # A guard on a hair trigger (any fall of the validation accuracy rolls back to best.pt with new noise),
    # so that the runs take decisions: rollbacks, their targets, best.pt, the final stop or finish. None of
    # them may depend on the test set.
    changes = dict(epochs=8, checkpoint_every=2, guard__valid_acc_drop=0.0, guard__valid_acc_patience=1,
                   guard__valid_acc_z=0.0, guard__policy="rollback", guard__max_retries=4, optim__lr=0.3)  # fmt: skip
    data = _learnable(tmp_path / "learnable")

    def run(root: Path, out: Path) -> tuple[Trainer, dict]:
        t = Trainer(_cfg(root, out, **changes), progress=False)
        try:
            t.fit()
        except DivergenceError:
            pass
        return t, json.loads((t.run.path / "summary.json").read_text())

    real, sa = run(data, tmp_path / "a")
    noisy, sb = run(_noise_test_set(data, tmp_path / "noise"), tmp_path / "b")
    a, b = _decisions(real, sa), _decisions(noisy, sb)
    assert len(a["events"]) >= 2, "the guard took no decision: the test would prove nothing"
    assert [r["test_acc"] for r in real.run.records("epoch")] != [r["test_acc"] for r in noisy.run.records("epoch")]
    wa, wb = a.pop("weights"), b.pop("weights")
    assert a == b
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_without_a_split_decisions_are_off_and_said_so(npz_dir, tmp_path, capsys):
    cfg = tiny_config(npz_dir, tmp_path / "runs", name="r", epochs=2)
    t = Trainer(cfg, progress=False)
    summary = t.fit()
    assert "data.valid_size=0" in capsys.readouterr().err
    assert not t.run.best_checkpoint.exists() and load_split(t.run.path) is None
    assert summary["selection"].startswith("none") and summary["valid_images"] == 0
    assert summary["best_valid_acc"] is None and summary["test_acc"] is not None


def test_failed_verdict_reads_validation_or_training_accuracy_never_test(data80, npz_dir, tmp_path, monkeypatch):
    # Validation at chance, test perfect: failed, and the message names validation accuracy.
    monkeypatch.setattr(Trainer, "evaluate_valid", lambda self, *a, **k: (0.25, 0.3))
    monkeypatch.setattr(Trainer, "evaluate", lambda self, data, *a, **k: 1.0)
    cfg = _cfg(data80, tmp_path / "a", guard__fail_min_valid=10, guard__enabled=False)
    summary = Trainer(cfg, progress=False).fit()
    assert summary["status"] == "failed" and "validation accuracy on 16 held-out" in summary["failure"]
    # No split: the verdict reads the epochs' training accuracy (random labels here: near chance), once there
    # are as many training images as a validation set would need (fail_min_valid).
    many = make_npz_dir(tmp_path / "many", n_train=128, n_test=16)
    cfg = tiny_config(many, tmp_path / "b", name="r", guard__enabled=False)
    monkeypatch.setattr(Trainer, "evaluate", lambda self, data, *a, **k: 1.0)  # a perfect test set changes nothing
    t = Trainer(cfg, progress=False)
    t.fit()
    rows = t.run.records("epoch")
    expect_failed = max(r["train_acc"] for r in rows) < 0.25 + cfg.guard.fail_margin
    s = json.loads((t.run.path / "summary.json").read_text())
    assert (s["status"] == "failed") is expect_failed
    if expect_failed:
        assert "training accuracy (no validation split" in s["failure"]


def test_old_guard_names_are_read_from_old_runs_and_refused_on_the_command_line():
    old = TrainConfig().to_dict()
    g = old["guard"]
    g["test_acc_drop"], g["test_acc_z"], g["fail_min_test"] = g.pop("valid_acc_drop"), g.pop("valid_acc_z"), 50
    g.pop("fail_min_valid")
    cfg = TrainConfig.from_dict(old)  # a config.json written before the rename
    assert cfg.guard.valid_acc_drop == 0.10 and cfg.guard.fail_min_valid == 50 and cfg.data.valid_size == 0
    with pytest.raises(ValueError, match="renamed 'guard.valid_acc_drop'"):
        apply_override(TrainConfig(), "guard.test_acc_drop=0.2")
    with pytest.raises(ValueError, match="data.valid_size must be >= 0"):
        from jeat.validation import validate

        c = TrainConfig()
        c.data.valid_size = -5
        validate(c)


def test_presets_hold_out_what_their_references_hold_out():
    from jeat import get_preset

    five_k = ("paper-jem", "paper-jeat", "paper-jeat-bn", "paper-prejeat", "paper-jempp", "paper-robust-jem",
              "paper-eb-jdat")  # fmt: skip
    none = ("paper-standard", "paper-pgd", "paper-fast", "paper-trades", "paper-weat", "paper-sadajem", "paper-dat")
    assert all(get_preset(p).data.valid_size == 5000 for p in five_k)
    assert all(get_preset(p).data.valid_size == 0 for p in none)
    assert all(get_preset(p).data.valid_size == 2000 for p in ("cpu-standard", "cpu-jem", "cpu-jeat", "cpu-trades"))


def test_evaluate_on_the_validation_split(data80, tmp_path, capsys):
    from jeat.cli import main

    t = Trainer(_cfg(data80, tmp_path / "runs"), progress=False)
    t.fit()
    out = tmp_path / "ev"
    assert main(["evaluate", str(t.run.path), "--suite", "calibration", "--on", "valid", "--n", "100",
                 "--out", str(out), "--no-progress", "--device", "cpu"]) == 0  # fmt: skip
    m = json.loads((out / "metrics.json").read_text())
    assert m["data"]["on"] == "valid" and m["data"]["n_test"] == 16 and "validation split" in m["data"]["selection"]
    capsys.readouterr()
    bare = Trainer(tiny_config(data80, tmp_path / "bare", name="r"), progress=False)
    bare.fit()
    assert main(["evaluate", str(bare.run.path), "--suite", "calibration", "--on", "valid", "--no-progress"]) == 1
    assert "has no validation split" in capsys.readouterr().err


def test_a_run_that_ends_at_chance_is_failed_even_if_it_learned_on_the_way(data80, tmp_path, monkeypatch):
    accs = iter([0.6, 0.25])  # learned, then a dead model at the end (validation only; test perfect)
    monkeypatch.setattr(Trainer, "evaluate_valid", lambda self, *a, **k: (next(accs), 0.3))
    monkeypatch.setattr(Trainer, "evaluate", lambda self, data, *a, **k: 1.0)
    cfg = _cfg(data80, tmp_path / "runs", epochs=2, guard__fail_min_valid=10, guard__enabled=False)
    summary = Trainer(cfg, progress=False).fit()
    assert summary["status"] == "failed" and summary["failure"].startswith("the run ended at chance")
    assert "its best was 0.600, kept in checkpoints/best.pt" in summary["failure"]
