"""Every method end to end through the Trainer; replay-buffer resume; divergence guard; plot."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import counting_method, tiny_config

from jeat.cli import main as cli_main
from jeat.methods import METHODS
from jeat.training import Trainer
from jeat.training.checkpoint import load_checkpoint
from jeat.training.guard import DivergenceError

ALL = ["standard", "noise", "pgd", "fgsm", "prejeat", "jeat", "jem", "robust-jem", "jempp", "trades", "weat",
       "eb-jdat"]  # fmt: skip
BUFFERED = ("jeat", "jem", "robust-jem", "jempp", "eb-jdat")


def cfg_for(npz_dir, tmp_path, method, **changes):
    cfg = tiny_config(npz_dir, tmp_path / "runs", name=method, **changes)
    cfg.method.name = method
    cfg.method.attack.steps = 2
    cfg.method.sgld.steps, cfg.method.sgld.buffer_size = 2, 64
    if method in ("robust-jem", "jempp", "eb-jdat"):
        s = cfg.method.sgld
        s.init, s.sampler, s.inner_steps = "gaussian", "pyld", 2  # JEM++'s proximal sampler, as the presets
    return cfg


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JEAT_CACHE", str(tmp_path / "cache"))  # ClassGaussian cache


@pytest.mark.parametrize("method", ALL)
def test_each_method_trains_two_steps(npz_dir, tmp_path, method):
    cfg = cfg_for(npz_dir, tmp_path, method)
    cfg.method.track_energy = True
    t = Trainer(cfg, progress=False)
    p0 = [p.detach().clone() for p in t.model.parameters()]
    assert t.fit(max_steps=2) == {"stopped_at_step": 2}
    assert any(not torch.equal(a, b) for a, b in zip(p0, t.model.parameters(), strict=True))
    rows = [json.loads(ln) for ln in (t.run.path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    for key in ("loss", "acc", "dx_energy_xy_mean", "dtheta_energy_x_std"):
        assert all(key in r and r[key] == r[key] for r in rows), key
    state = load_checkpoint(t.run.checkpoint)
    if method in BUFFERED:
        assert state["method"]["buffer"]["x"].shape == (64, 3, 16, 16)
        assert "energy_x_neg" in rows[-1]


@pytest.mark.parametrize("method", ["jeat", "robust-jem", "jempp", "jem+sam", "trades", "weat", "eb-jdat"])
def test_resume_is_exact_with_the_replay_buffer(npz_dir, tmp_path, method):
    method, _, sam = method.partition("+")
    cfg = cfg_for(npz_dir, tmp_path, method, epochs=2)  # 4 steps per epoch: crosses an epoch
    if sam:  # SADA-JEM: adaptive SAM, and the data term on its own un-augmented batch
        cfg.optim.sam_rho, cfg.optim.sam_adaptive, cfg.method.px_data = 2.0, True, "clean"
    straight = Trainer(cfg, tmp_path / "a", progress=False)
    straight.fit(max_steps=6)
    Trainer(cfg, tmp_path / "b", progress=False).fit(max_steps=3)
    resumed = Trainer(cfg, tmp_path / "b", resume=True, progress=False)
    resumed.fit(max_steps=6)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    if method not in BUFFERED:
        return
    assert torch.equal(straight.method.negatives.buffer.x, resumed.method.negatives.buffer.x)
    assert torch.equal(straight.method.negatives.buffer.labels, resumed.method.negatives.buffer.labels)


class _InfAfterTwo(counting_method()):
    name = "test-inf"

    def corrupt(self, loss, metrics):
        if self.calls >= 3:
            loss = loss * float("inf")
            metrics["loss"] = loss.detach()
        return loss, metrics


def test_guard_names_step_and_quantity_and_keeps_a_loadable_checkpoint(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-inf", _InfAfterTwo)
    cfg = cfg_for(npz_dir, tmp_path, "test-inf", checkpoint_every=1, guard__policy="stop")
    t = Trainer(cfg, progress=False)
    with pytest.raises(DivergenceError) as err:
        t.fit()
    e = err.value
    assert e.step == 3 and e.quantity == "loss" and "step 3" in str(e) and "loss" in str(e)
    assert e.checkpoint == str(t.run.step_checkpoint(2))
    assert load_checkpoint(t.run.checkpoint)["global_step"] == 2  # checkpoint.pt is the same good state
    state = load_checkpoint(e.checkpoint)
    assert state["global_step"] == 2  # written after the last passing check
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    # recovery: resume from it with a working method
    cfg.method.name = "standard"
    resumed = Trainer(cfg, t.run.path, resume=True, reseed=1, progress=False)
    assert resumed.global_step == 2
    assert resumed.fit(max_steps=3) == {"stopped_at_step": 3}


def test_guard_bounds_energies(npz_dir, tmp_path):
    cfg = cfg_for(npz_dir, tmp_path, "jem")
    cfg.guard.max_energy = 1e-6  # every energy is 'too large'
    with pytest.raises(DivergenceError) as err:
        Trainer(cfg, progress=False).fit()
    assert err.value.step == 1 and "energy" in err.value.quantity


def test_plot_energy_changes(npz_dir, tmp_path, capsys):
    cfg = cfg_for(npz_dir, tmp_path, "prejeat", epochs=2)
    cfg.method.track_energy = True
    t = Trainer(cfg, progress=False)
    t.fit()
    epochs = t.run.records("epoch")
    assert len(epochs) == 2 and all("train_dx_energy_xy_mean" in r for r in epochs)
    assert cli_main(["plot", "energy-changes", str(t.run.path)]) == 0
    png = t.run.path / "energy_changes.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = str(t.run.path / "metrics.jsonl")
    assert cli_main(["plot", "energy-changes", metrics, "--out", str(tmp_path / "f.png")]) == 0
    assert (tmp_path / "f.png").is_file()


def test_plot_without_tracking_is_a_clear_error(npz_dir, tmp_path, capsys):
    cfg = cfg_for(npz_dir, tmp_path, "standard")
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=1)
    assert cli_main(["plot", "energy-changes", str(t.run.path)]) == 1
    assert "track_energy" in capsys.readouterr().err


def _fake_run(path, gap_key=True):
    path.mkdir()
    rows = [{"kind": "step", "step": s, "epoch": 0, "loss": 2.0 - s / 10, **({"energy_gap": -s} if gap_key else {})}
            for s in (1, 2, 3)] + [{"kind": "epoch", "step": 3, "epoch": 1, "test_acc": 0.3}]  # fmt: skip
    rows.append({"kind": "guard", "step": 2, "reason": "energy_gap", "action": "rollback-lr"})
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_plot_curves_of_several_runs(tmp_path, capsys):
    a, b = _fake_run(tmp_path / "a"), _fake_run(tmp_path / "b", gap_key=False)
    assert cli_main(["plot", "curves", str(a), "--compare", str(b)]) == 0
    assert (a / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = tmp_path / "c.png"
    assert cli_main(["plot", "curves", str(b), "--keys", "loss,test_acc", "--out", str(out)]) == 0 and out.is_file()


def test_plot_curves_unknown_metric_is_a_clear_error(tmp_path, capsys):
    a = _fake_run(tmp_path / "a")
    assert cli_main(["plot", "curves", str(a), "--keys", "loss,nope"]) == 1
    err = capsys.readouterr().err
    assert "no metric ['nope']" in err and "energy_gap" in err
