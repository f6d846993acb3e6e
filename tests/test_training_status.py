"""A run's status is always true (issue 26): a finished run that never learned is `failed`, not ok."""

from __future__ import annotations

import json

from conftest import make_npz_dir, tiny_config

from jeat.cli import main
from jeat.training import Trainer


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
