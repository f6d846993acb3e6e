"""Divergence detection (every trigger forced on a tiny model) and recovery (rollback, reseed,
lower lr, retries, pruned checkpoints, events in metrics.jsonl and summary.json, resume)."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import counting_method, make_npz_dir, tiny_config

from jeat.methods import METHODS
from jeat.training import Trainer
from jeat.training.checkpoint import load_checkpoint
from jeat.training.guard import DivergenceError


@pytest.fixture
def npz_dir(tmp_path):
    """80 training images: 16 held out for validation (the epoch triggers read them) leave 64, four 16-image
    batches per epoch."""
    return make_npz_dir(tmp_path / "data", n_train=80, n_test=32)


def _valid_only(monkeypatch, accs):
    """Validation accuracy the next of ``accs`` (predictions spread over the classes), chance on the test set
    (which no decision reads)."""
    monkeypatch.setattr(Trainer, "evaluate_valid", lambda self, *a, **k: (next(accs), 0.3))
    monkeypatch.setattr(Trainer, "evaluate", lambda self, data, *a, **k: 0.25)


def _cfg(npz_dir, tmp_path, method="standard", **changes):
    changes.setdefault("data__valid_size", 16)
    cfg = tiny_config(npz_dir, tmp_path / "runs", name="r", **changes)
    cfg.method.name = method
    cfg.guard.warmup_checks, cfg.guard.gap_patience, cfg.guard.gap_growth = 2, 1, 0.0  # fire on the first bad check
    return cfg


def _faulty(fault, first: int, last: int = 10**9):
    """A Standard method whose metrics (or loss) go bad on calls first..last (1-based)."""

    class Faulty(counting_method()):
        name = "test-faulty"

        def corrupt(self, loss, m):
            m.update(energy_gap=torch.tensor(0.1), energy_x_data=torch.tensor(-2.0 + 0.01 * self.calls),
                     energy_x_neg=torch.tensor(-2.1), ce=torch.tensor(2.0))  # fmt: skip
            if first <= self.calls <= last:
                loss = fault(loss, m)
            return loss, m

    return Faulty


def _set(**values):
    def fault(loss, m):
        m.update({k: torch.tensor(v) for k, v in values.items()})
        return loss

    return fault


def _inf(loss, m):
    m["loss"] = (loss * float("inf")).detach()
    return loss * float("inf")


FAULTS = {
    "nonfinite": _inf,
    "energy_bound": _set(energy_x_neg=5e4),
    "energy_gap": _set(energy_gap=-172.0),  # the npz run: E(x_data) -189, E(x~) -17
    "energy_jump": _set(energy_x_data=-40.0),
    "ce_rise": _set(ce=31.0, acc=0.0),
}


@pytest.mark.parametrize("reason", sorted(FAULTS))
def test_each_trigger_fires_on_a_tiny_model(npz_dir, tmp_path, monkeypatch, reason):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(FAULTS[reason], first=4))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", guard__policy="stop")
    with pytest.raises(DivergenceError) as err:
        Trainer(cfg, progress=False).fit()
    assert err.value.reason == reason and err.value.step == 4, str(err.value)
    assert "step 4" in str(err.value) and err.value.quantity in str(err.value)


def test_valid_acc_drop_fires_and_rolls_back_to_the_best_epoch(npz_dir, tmp_path, monkeypatch):
    accs = iter([0.6, 0.45, 0.45, 0.55, 0.6])  # epochs 2-3 stay 10+ points down (43 % of the gain); then not
    _valid_only(monkeypatch, accs)
    # 16 validation images: 3 SE would be 50 points; batch-level triggers off (this is about the epoch ones)
    cfg = _cfg(npz_dir, tmp_path, epochs=3, guard__valid_acc_z=0.0, guard__ce_factor=1e9)
    t = Trainer(cfg, progress=False)
    summary = t.fit()
    assert summary["status"] == "recovered" and summary["epochs"] == 3
    (ev,) = summary["guard"]["events"]
    assert ev["reason"] == "valid_acc_drop" and ev["value"] == 0.45 and ev["reference"] == 0.6
    assert ev["to_checkpoint"] == "best.pt" and ev["to_step"] == 4  # the end of epoch 1 (4 steps per epoch)
    assert [r["valid_acc"] for r in t.run.records("epoch")] == [0.6, 0.55, 0.6]


def test_a_collapse_rolls_back_at_once(npz_dir, tmp_path, monkeypatch):
    accs = iter([0.6, 0.2, 0.55, 0.6])  # epoch 2 loses 80 % of the gain over chance: no waiting
    _valid_only(monkeypatch, accs)
    cfg = _cfg(npz_dir, tmp_path, epochs=3, guard__ce_factor=1e9, guard__valid_acc_z=0.0)  # 16 images: no margin
    summary = Trainer(cfg, progress=False).fit()
    (ev,) = summary["guard"]["events"]
    assert ev["reason"] == "valid_acc_lost" and ev["value"] == 0.2 and ev["to_step"] == 4


def test_forced_divergence_rolls_back_reseeds_lowers_lr_and_finishes(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_inf, first=6, last=6))  # one bad step
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", epochs=2, checkpoint_every=2)
    t = Trainer(cfg, progress=False)
    summary = t.fit()
    assert summary["status"] == "recovered" and summary["steps"] == 8 and summary["epochs"] == 2
    (ev,) = summary["guard"]["events"]
    assert ev["reason"] == "nonfinite" and ev["step"] == 6 and ev["action"] == "rollback-lr"
    assert ev["to_step"] == 4 and ev["retry"] == 1 and ev["lr_scale"] == 0.5 and ev["noise_seed"] != cfg.seed
    rows = [json.loads(ln) for ln in (t.run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in rows if r["kind"] == "guard"] == [ev]
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) == 8  # no duplicates after the rollback
    assert t.opt.param_groups[0]["initial_lr"] == pytest.approx(cfg.optim.lr * 0.5)
    assert json.loads((t.run.path / "summary.json").read_text())["guard"]["events"] == [ev]
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_policy_rollback_keeps_the_lr(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_inf, first=3, last=3))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", guard__policy="rollback")
    summary = Trainer(cfg, progress=False).fit()
    assert summary["guard"]["lr_scale"] == 1.0 and summary["guard"]["events"][0]["action"] == "rollback"


def test_after_max_retries_the_run_stops_with_a_usable_checkpoint(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_set(energy_gap=50.0), first=3))  # never recovers
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", epochs=2, checkpoint_every=1, guard__max_retries=2)
    t = Trainer(cfg, progress=False)
    with pytest.raises(DivergenceError) as err:
        t.fit()
    e = err.value
    assert e.reason == "energy_gap" and e.quantity == "energy_gap" and e.retries == 2
    assert "energy_gap" in str(e) and f"step {e.step}" in str(e) and "2 rollback(s)" in str(e)
    # Step 3 fails (back to 2), fails again (back to 1), step 2 passes (the gap is judged only after
    # warm-up), step 3 fails a third time: the newest state that passed is step 2. checkpoint.pt is it.
    good = load_checkpoint(t.run.checkpoint)
    assert good["global_step"] == load_checkpoint(e.checkpoint)["global_step"] == 2
    summary = json.loads((t.run.path / "summary.json").read_text())
    assert summary["status"] == "diverged"
    assert [ev["action"] for ev in summary["guard"]["events"]] == ["rollback-lr", "rollback-lr", "stop"]
    cfg.method.name = "standard"
    assert Trainer(cfg, t.run.path, resume=True, reseed=5, progress=False).fit()["status"] == "recovered"


def test_repeated_failures_go_further_back(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_set(energy_gap=50.0), first=4, last=5))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", checkpoint_every=1)
    summary = Trainer(cfg, progress=False).fit()
    # call 4 = step 4 -> back to 3; call 5 = step 4 again (before passing it) -> back to 2.
    assert [(e["step"], e["to_step"]) for e in summary["guard"]["events"]] == [(4, 3), (4, 2)]
    assert summary["status"] == "recovered" and summary["steps"] == 4


def test_checkpoint_pt_follows_a_rollback(npz_dir, tmp_path, monkeypatch):
    """Killed right after a rollback, `--resume` must continue from the rolled-back-to state, not
    from the newest (abandoned) one."""
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_set(energy_gap=50.0), first=3, last=4))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", checkpoint_every=1, epochs=2)
    epoch_fn = Trainer._epoch

    def kill_after_two_rollbacks(self, max_steps):
        if len(self.events) >= 2:
            raise KeyboardInterrupt
        return epoch_fn(self, max_steps)

    monkeypatch.setattr(Trainer, "_epoch", kill_after_two_rollbacks)
    t = Trainer(cfg, progress=False)
    with pytest.raises(KeyboardInterrupt):
        t.fit()
    assert [e["to_step"] for e in t.events] == [2, 1]  # the second failure went one further back
    assert load_checkpoint(t.run.checkpoint)["global_step"] == 1
    assert [s for s, _ in t.run.step_checkpoints()] == [0, 1]


def test_warn_policy_logs_the_onset_and_goes_on(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_set(energy_gap=-40.0), first=3))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", epochs=2, guard__policy="warn")
    summary = Trainer(cfg, progress=False).fit()
    assert summary["status"] == "warned" and summary["steps"] == 8
    assert [(e["reason"], e["step"], e["action"]) for e in summary["guard"]["events"]] == [("energy_gap", 3, "warn")]


def test_checkpoints_are_pruned_and_best_is_kept(npz_dir, tmp_path, monkeypatch):
    accs = iter([0.5, 0.45, 0.4])  # epoch 1 stays the best (drops smaller than valid_acc_drop)
    _valid_only(monkeypatch, accs)
    cfg = _cfg(npz_dir, tmp_path, epochs=3, checkpoint_every=1, guard__keep_checkpoints=2, guard__ce_factor=1e9)
    t = Trainer(cfg, progress=False)
    assert t.fit()["status"] == "ok"
    assert [s for s, _ in t.run.step_checkpoints()] == [11, 12]
    assert load_checkpoint(t.run.best_checkpoint)["global_step"] == 4
    assert load_checkpoint(t.run.checkpoint)["global_step"] == 12


def test_resume_keeps_guard_events_and_lr_scale(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-faulty", _faulty(_inf, first=3, last=3))
    cfg = _cfg(npz_dir, tmp_path, "test-faulty", epochs=2)
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=5)
    cfg.method.name = "standard"  # the fault counter would restart in a new method object
    resumed = Trainer(cfg, t.run.path, resume=True, progress=False)
    assert resumed.lr_scale == 0.5 and resumed.retries == 1 and len(resumed.events) == 1
    summary = resumed.fit()
    assert summary["status"] == "recovered" and len(summary["guard"]["events"]) == 1


def test_bad_policy_is_a_clear_error(npz_dir, tmp_path):
    cfg = _cfg(npz_dir, tmp_path, guard__policy="retry")
    with pytest.raises(ValueError, match="guard.policy"):
        Trainer(cfg, progress=False)
