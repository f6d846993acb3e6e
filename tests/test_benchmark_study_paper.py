"""benchmarks/study/study.py --scale paper: each model's paper-* preset as it stands, trained under torchrun
with the paper's batch split over the GPUs, refused where no GPU is; the CPU scales' commands unchanged."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks" / "study"))
study = pytest.importorskip("study")
study_plan = pytest.importorskip("study_plan")
study_read = pytest.importorskip("study_read")
study_report = pytest.importorskip("study_report")
compute = pytest.importorskip("compute")

from jeat.presets import get_preset  # noqa: E402


def _study(tmp_path, scale, gpus=1, seeds=(0,)):
    ns = argparse.Namespace(data="DATA", out=str(tmp_path / "runs"), scale=scale, seeds=list(seeds),
                            archive=str(tmp_path / "archive"), gpus=gpus)  # fmt: skip
    return study.Study(ns)


def _opt(cmd: list[str], flag: str) -> str | None:
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def test_the_paper_scale_trains_each_paper_preset_as_it_stands_with_its_batch_split_over_the_gpus(tmp_path):
    s = _study(tmp_path, "paper", gpus=4)
    names = s.names(study_plan.models_of("paper"))
    assert "jem-no-l2-s0" not in names and "jem-s0" in names and len(names) == len(study_plan.MODELS) - 1
    for name in names:
        model, _ = s.model_of(name)
        cmd = s.train_command(name)
        preset = get_preset(_opt(cmd, "--preset"))
        assert _opt(cmd, "--preset") == "paper-" + study_plan.MODELS[model][0].removeprefix("cpu-")
        assert cmd[:5] == ["torchrun", "--standalone", "--nproc_per_node", "4", "-m"] and cmd[5:7] == ["jeat", "train"]
        # the paper's global batch: 4 ranks x the per-rank batch
        assert 4 * int(_opt(cmd, "--batch-size")) == preset.data.batch_size
        # no CPU budget: the preset's epochs, the whole training set, the plan's cpu-only changes left out
        assert "--epochs" not in cmd and not any(a.startswith(("data.train_limit", "method.")) for a in cmd)
        assert _opt(cmd, "--seed") == "0"
    with pytest.raises(ValueError, match="jem-no-l2"):
        study_plan.preset_of("jem-no-l2", "paper")
    # one GPU: plain `jeat`, the preset's own batch
    cmd = _study(tmp_path, "paper").train_command("jeat-s0")
    assert cmd[:2] == ["jeat", "train"] and "--batch-size" not in cmd


def test_a_paper_run_with_a_checkpoint_resumes_under_the_same_launcher(tmp_path):
    s = _study(tmp_path, "paper", gpus=2)
    (s.run_dir("jem-s0")).mkdir(parents=True)
    (s.run_dir("jem-s0") / "checkpoint.pt").write_bytes(b"")
    assert s.train_command("jem-s0")[-5:] == ["jeat", "train", "--resume", str(s.run_dir("jem-s0")), "--no-progress"]
    assert s.train_command("jem-s0")[:4] == ["torchrun", "--standalone", "--nproc_per_node", "2"]


def test_a_batch_that_does_not_split_over_the_gpus_is_refused(tmp_path):
    with pytest.raises(SystemExit, match="batch 64 does not split over 3 GPUs"):
        _study(tmp_path, "paper", gpus=3).train_command("jem-s0")


def test_the_medium_scale_still_runs_exactly_the_archived_command(tmp_path):
    """The archive's study.log holds what the medium study ran (its frozen code): the plan must build the same."""
    log = (ROOT / "benchmarks/results/study/medium/study.log").read_text().splitlines()
    s = _study(tmp_path, "medium")
    s.out = Path("/work/runs/medium")  # the folder the archived commands name
    s.args.data = "/work/shared/data"
    for name in ("jem-no-l2-s0", "standard-s0", "jempp-s0"):
        ran = next(ln[2:] for ln in log if ln.startswith("$ jeat train --preset") and f"--name {name} " in ln)
        assert shlex.join(s.train_command(name)) == ran


def test_the_paper_scale_refuses_to_start_without_gpus(tmp_path, monkeypatch):
    import torch

    args = argparse.Namespace(scale="paper", gpus=1)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(SystemExit, match="needs GPUs: 0 visible"):
        study.refuse_without_gpus(args)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(SystemExit, match="2 visible, --gpus 4"):
        study.refuse_without_gpus(argparse.Namespace(scale="paper", gpus=4))
    study.refuse_without_gpus(argparse.Namespace(scale="paper", gpus=2))  # enough: goes on
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    study.refuse_without_gpus(argparse.Namespace(scale="medium", gpus=1))  # CPU scales never ask


def test_plan_prints_the_unfinished_runs_and_trains_nothing(tmp_path, monkeypatch, capsys):
    archive = tmp_path / "archive"
    (archive / "standard-s0").mkdir(parents=True)
    (archive / "standard-s0" / "complete.txt").write_text("done\n")
    argv = ["study.py", "--data", "DATA", "--out", str(tmp_path / "runs"), "--scale", "paper", "--seeds", "0",
            "--gpus", "4", "--plan", "--archive", str(archive)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    monkeypatch.setattr(study.Study, "sh", lambda *a, **k: pytest.fail("--plan ran a stage"))
    study.main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(study_plan.models_of("paper")) - 1  # standard-s0 is complete
    assert all(ln.startswith("torchrun ") for ln in lines) and not any("standard-s0" in ln for ln in lines)
    assert not any((tmp_path / "runs").glob("*-s0"))


def test_a_run_is_judged_by_its_own_config_where_the_archive_has_it(tmp_path):
    """config.json is archived now; runs archived before it fall back to their CPU plan."""
    run = tmp_path / "jem-s0"
    run.mkdir()
    assert study_read.run_config(run).method.energy_l2 == study_plan.planned_config("jem").method.energy_l2 > 0
    (run / "config.json").write_text(json.dumps(get_preset("paper-jem").to_dict()))
    assert study_read.run_config(run).method.energy_l2 == 0 and study_read.run_config(run).model.arch.startswith("jem-")
    assert study_read.run_config(tmp_path / "not-a-model-s0") is None
    assert "config.json" in study.archive_run.__globals__["ARCHIVED"]


def test_the_report_and_the_cost_count_name_the_paper_scale(tmp_path):
    scale = study_report.Scale("paper", tmp_path, study_plan.SCALES["paper"], [0, 1])
    head = "\n".join(study_report.header([scale], "cmd"))
    assert "Scale `paper`: each model's paper-* preset as it stands" in head and "N=10000 test images" in head
    assert compute.paper_preset("jeat") == "paper-jeat" and "paper" not in compute.CPU_SCALES


def test_the_compute_figure_counts_a_paper_run_with_the_paper_presets_passes(tmp_path, monkeypatch):
    run = tmp_path / "paper" / "jeat-s0"
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"test_acc": 0.9, "train_images": 45_000, "epochs": 200}))
    cpu, paper = tmp_path / "cpu.json", tmp_path / "paper.json"
    cpu.write_text(json.dumps({"jeat": {"passes_per_image": 12.0}}))
    paper.write_text("{}")
    monkeypatch.setattr(study_report, "COMPUTE", cpu)
    monkeypatch.setattr(study_report, "PAPER_COMPUTE", paper)
    scale = study_report.Scale("paper", tmp_path / "paper", study_plan.SCALES["paper"], [0])
    # the cpu-* presets' count never stands in for the paper-* presets'
    assert study_report.compute_figure([scale], ["jeat"], tmp_path / "c.png") is None
    paper.write_text(json.dumps({"jeat": {"passes_per_image": 22.0}}))
    assert study_report.compute_figure([scale], ["jeat"], tmp_path / "c.png").is_file()
