"""benchmarks/study/study.py with --seeds: one run per model and seed, each trained with its own seed, and a
runs page that says what has and has not run (never a number nobody measured)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "study"))
study = pytest.importorskip("study")
study_report = pytest.importorskip("study_report")


def _study(tmp_path, seeds):
    return study.Study(argparse.Namespace(data="DATA", out=str(tmp_path), scale="medium", seeds=seeds))


def test_seeded_runs_are_named_per_seed_and_train_with_that_seed(tmp_path, monkeypatch):
    s = _study(tmp_path, [0, 1])
    names = s.names(["jem", "jempp"])
    assert names == ["jem-s0", "jempp-s0", "jem-s1", "jempp-s1"]
    assert s.model_of("jempp-s1") == ("jempp", ["--seed", "1"])
    assert s.model_of("jem-no-l2-s0") == ("jem-no-l2", ["--seed", "0"])
    cmds = []
    monkeypatch.setattr(s, "sh", lambda cmd, done, skip_done=True: cmds.append(cmd) or True)
    s.train("jem-no-l2-s1")
    cmd = cmds[0]
    assert cmd[cmd.index("--preset") + 1] == "cpu-jem" and cmd[cmd.index("--seed") + 1] == "1"
    assert "method.energy_l2=0" in cmd and cmd[cmd.index("--epochs") + 1] == str(study.SCALES["medium"]["epochs"])
    assert _study(tmp_path, None).names(["jem"]) == ["jem"]  # without --seeds: the small study's names


def test_the_runs_page_reports_only_what_ran(tmp_path):
    run = tmp_path / "jem-s0"
    run.mkdir()
    summary = {"status": "ok", "epochs": 8, "best_valid_acc": 0.41, "test_acc": 0.395, "amp": "none",
               "amp_why": "amp=auto: fp32", "train_time_s": 600}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "jem-s1").mkdir()
    (tmp_path / "jem-s1" / "checkpoint.pt").write_bytes(b"")
    page = tmp_path / "runs.md"
    study_report.write_progress(tmp_path, ["jem-s0", "jem-s1", "pgd-s0"], page, "--seeds 0 1")
    text = page.read_text()
    assert "| jem-s0 | ok | 8 | 41.0% | 39.5% | none (amp=auto: fp32) | 10 min |" in text
    assert "| jem-s1 | started (resumable) |" in text and "| pgd-s0 | not run |" in text
