"""A run's status is always true (issue 26): a finished run that never learned is `failed`, not ok."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import make_npz_dir, tiny_config

from jeat.cli import main
from jeat.training import Trainer
from jeat.training.summary import stall_reason


def test_a_run_at_chance_is_failed_and_the_cli_exits_non_zero(tmp_path, capsys):
    # lr 0: the weights never move, so the validation accuracy stays at chance on 200 held-out images
    data = make_npz_dir(tmp_path / "data", n_train=264, n_test=16, size=16)
    rc = main(["train", "--preset", "tiny", "--dataset", "npz", "--data", str(data), "--epochs", "1", "--device",
               "cpu", "--out", str(tmp_path), "--name", "dead", "--no-progress", "--set", "optim.lr=1e-12",
               "--set", "guard.fail_margin=0.5", "--set", "data.valid_size=200"])  # fmt: skip
    summary = json.loads((tmp_path / "dead" / "summary.json").read_text())
    assert rc == 3 and summary["status"] == "failed"
    assert "did not learn" in summary["failure"] and "chance (0.250" in summary["failure"]
    assert "validation accuracy on 200 held-out training images" in summary["failure"]
    assert "FAILED" in capsys.readouterr().err


def test_a_learning_run_is_not_failed_and_a_small_validation_set_is_not_judged(tmp_path):
    data = make_npz_dir(tmp_path / "data", n_train=264, n_test=16, size=16)
    cfg = tiny_config(data, tmp_path, epochs=1, data__valid_size=200)
    cfg.guard.fail_margin = 0.0  # any accuracy >= chance counts as learned
    t = Trainer(cfg, run_dir=tmp_path / "ok", progress=False)
    t.fit()
    s = json.loads((tmp_path / "ok" / "summary.json").read_text())
    assert (s["status"] == "failed") == (s["best_valid_acc"] < 0.25)
    small = make_npz_dir(tmp_path / "small", n_train=80, n_test=200, size=16)
    cfg = tiny_config(small, tmp_path, epochs=1, data__valid_size=16)
    cfg.guard.fail_margin = 0.9  # unreachable, but 16 validation images cannot judge it (200 test images do not count)
    t = Trainer(cfg, run_dir=tmp_path / "small-run", progress=False)
    assert t.fit()["status"] != "failed"


ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "benchmarks" / "results" / "study"


def _epochs(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r.get("kind") == "epoch"]


def test_the_medium_jeat_run_that_sat_at_chance_cross_entropy_is_stalled_and_learning_runs_are_not():
    # measured: cpu-jeat at the medium scale, CE 2.2 and 18-29 % validation accuracy for 7 of 8 epochs
    jeat = _epochs(STUDY / "medium" / "jeat-s0")
    why = stall_reason(jeat, "valid_acc", 10, 0.9, 0.05, "validation accuracy")
    assert why and "last 4 of 8 epochs" in why and "0.266" in why and "0.292" in why
    # EBMs that learn, if slowly: small runs whose accuracy rose, and the medium JEM whose CE fell
    for run in ("small/jeat-s1", "small/robust-jem-s0", "small/robust-jem-s1", "small/jem-s0", "medium/jem-s0"):
        assert stall_reason(_epochs(STUDY / run), "valid_acc", 10, 0.9, 0.05, "v") is None, run
    # methods that do not log their cross-entropy term are not judged, and too few epochs are not a trend
    assert stall_reason(_epochs(STUDY / "medium" / "standard-s0"), "valid_acc", 10, 0.9, 0.05, "v") is None
    assert stall_reason(jeat[:3], "valid_acc", 10, 0.9, 0.05, "v") is None


def test_a_synthetic_stall_each_condition_matters():
    flat = [{"train_ce": 2.2, "valid_acc": a} for a in (0.2, 0.3, 0.25, 0.28)]
    assert stall_reason(flat, "valid_acc", 10, 0.9, 0.05, "v")
    rising = [dict(r, valid_acc=a) for r, a in zip(flat, (0.2, 0.3, 0.25, 0.36), strict=True)]
    assert stall_reason(rising, "valid_acc", 10, 0.9, 0.05, "v") is None  # 6 points of progress
    learning_ce = [dict(r, train_ce=c) for r, c in zip(flat, (2.2, 2.2, 2.2, 2.0), strict=True)]
    assert stall_reason(learning_ce, "valid_acc", 10, 0.9, 0.05, "v") is None  # 2.0 < 0.9 ln 10


def test_a_stalled_run_says_so_keeps_its_model_and_exits_zero(tmp_path, capsys):
    # lr ~0 on a JEM: the cross-entropy stays at ln 4 and the accuracy flat for 4 epochs; fail_margin -1
    # turns the did-not-learn verdict off so that only the stall can speak
    data = make_npz_dir(tmp_path / "data", n_train=264, n_test=16, size=16)
    rc = main(["train", "--preset", "tiny", "--dataset", "npz", "--data", str(data), "--epochs", "4", "--device",
               "cpu", "--out", str(tmp_path), "--name", "flat", "--no-progress", "--set", "optim.lr=1e-12",
               "--set", "method.name=jem", "--set", "model.arch=jem-cnn-small", "--set", "guard.fail_margin=-1",
               "--set", "data.valid_size=200", "--set", "data.batch_size=16"])  # fmt: skip
    summary = json.loads((tmp_path / "flat" / "summary.json").read_text())
    assert rc == 0 and summary["status"] == "stalled", summary["status"]
    assert "the run stalled" in summary["stall"] and "ln 4" in summary["stall"]
    assert (tmp_path / "flat" / "model.safetensors").exists()
    assert "STALLED" in capsys.readouterr().err
