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
study_runs = pytest.importorskip("study_runs")
study_read = pytest.importorskip("study_read")
study_plan = pytest.importorskip("study_plan")
shared = pytest.importorskip("shared")


def _study(tmp_path, seeds):
    ns = argparse.Namespace(data="DATA", out=str(tmp_path), scale="medium", seeds=seeds, archive=str(tmp_path / "a"))
    return study.Study(ns)


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
               "amp_why": "amp=auto: fp32, bf16 held for method 'jem'", "threads": 2, "train_time_s": 600}  # fmt: skip
    (run / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "jem-s1").mkdir()
    (tmp_path / "jem-s1" / "checkpoint.pt").write_bytes(b"")
    page = tmp_path / "runs.md"
    study_runs.write_progress(tmp_path, ["jem-s0", "jem-s1", "pgd-s0"], page, "--seeds 0 1")
    text = page.read_text()
    assert "| jem-s0 | ok | 8 | 41.0% | 39.5% | fp32 (held) | 2 | 10 min |" in text
    assert "| jem-s1 | started (resumable) |" in text and "| pgd-s0 | not run |" in text
    (tmp_path / "claims").mkdir()
    (tmp_path / "claims" / "pgd-s0").write_text("host boot 1\n")
    study_runs.write_progress(tmp_path, ["pgd-s0"], page, "--seeds 0 1")
    assert "| pgd-s0 | running |" in page.read_text()


def test_workers_share_the_runs_and_never_take_a_held_one(tmp_path, monkeypatch):
    """Two workers (the same command started twice): a run another live worker holds is skipped, neither
    trained nor marked complete; its claim is released when its holder ends, and a claim whose process is
    gone is taken over."""
    s = _study(tmp_path, [0])
    done = []
    monkeypatch.setattr(s, "sh", lambda cmd, out, skip_done=True: done.append(cmd) or True)
    with shared.claimed(tmp_path / "claims" / "jem-s0") as mine:  # the other worker: this live process
        assert mine
        with shared.claimed(tmp_path / "claims" / "jem-s0") as again:
            assert not again  # exclusive
        s.run()
    held = str(tmp_path / "jem-s0")
    assert not any(a in (held, "jem-s0") or a.startswith(held + "/") for c in done for a in c)
    assert not s.complete("jem-s0").is_file() and any(str(tmp_path / "jempp-s0") in c for c in done)
    assert s.complete("pgd-s0").is_file() and not (tmp_path / "claims" / "jem-s0").exists()
    # a worker killed mid-run leaves its claim: a dead process on this host is taken over, another host's never
    (tmp_path / "claims" / "jem-s0").write_text(f"{shared.socket.gethostname()} {shared._boot_id()} 999999999\n")
    (tmp_path / "claims" / "jempp-s0").write_text(f"other-host {shared._boot_id()} 1\n")
    s.complete("jempp-s0").unlink()  # as if it had not finished
    (tmp_path / "claims" / "pgd-s0").write_text("")  # a claim being written right now: not stale
    s.complete("pgd-s0").unlink()
    done.clear()
    s.run()
    assert s.complete("jem-s0").is_file() and not s.complete("jempp-s0").is_file()
    assert (tmp_path / "claims" / "jempp-s0").is_file() and not s.complete("pgd-s0").is_file()


def test_a_stage_with_its_own_output_leaves_whole_command_and_exit_pairs_in_the_shared_log(tmp_path):
    log, out = tmp_path / "study.log", tmp_path / "run" / "stages.log"
    st = shared.Stages(log, "t")
    assert st.sh([sys.executable, "-c", "print('hel' + 'lo'); open(r'%s', 'w')" % (tmp_path / "d")], tmp_path / "d",
                 output=out)  # fmt: skip
    assert not st.sh([sys.executable, "-c", "import sys; sys.exit(3)"], tmp_path / "never", output=out)
    lines = log.read_text().splitlines()
    assert [ln[:2] for ln in lines] == ["$ ", "# ", "$ ", "# "] and lines[3].startswith("# exit 3, ")
    assert "hello" in out.read_text() and "hello" not in log.read_text()
    assert study_report.study_hours(log) is not None  # the page's wall time reads the pairs


def _fake_run(root, name, test_acc, pgd20, fid_joint, logpx):
    run = root / name
    (run / "eval").mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"preset": "cpu-jem", "test_acc": test_acc, "train_time_s": 60,
                                                  "train_images": 1000, "epochs": 2, "amp": "none"}))  # fmt: skip
    rob = {"clean": {"accuracy": 100 * test_acc, "se": 1.5, "n": 100}, "pgd20": {"accuracy": pgd20, "se": 0.5}}
    (run / "eval" / "metrics.json").write_text(json.dumps({"suites": {"robustness": rob}}))
    (run / "gen-joint" / "eval").mkdir(parents=True)
    (run / "gen-joint" / "eval" / "metrics.json").write_text(json.dumps({"suites": {"fid": {"fid": fid_joint}}}))
    (run / "ood-claim9").mkdir()
    sets = {s: {"logpx": {"auroc": logpx}} for s in ("uniform", "gaussian")}
    (run / "ood-claim9" / "metrics.json").write_text(json.dumps({"suites": {"ood": {"sets": sets}}}))


def test_two_scale_results_give_mean_and_sd_per_scale_and_never_invent_a_number(tmp_path, monkeypatch):
    small, medium = tmp_path / "small", tmp_path / "medium"
    _fake_run(small, "jem-s0", 0.20, 5.0, 300.0, 0.40)
    _fake_run(small, "jem-s1", 0.30, 7.0, 280.0, 0.60)
    _fake_run(medium, "jem-s0", 0.45, 9.0, 200.0, 0.70)  # one seed at medium: its value ± its own SE
    (medium / "jem-s1").mkdir()  # seed 1 trained, its evaluation still running: seed 0's cell keeps its SE
    (medium / "jem-s1" / "summary.json").write_text(json.dumps({"preset": "cpu-jem", "test_acc": 0.5}))
    compute = tmp_path / "compute.json"
    compute.write_text(json.dumps({"jem": {"passes_per_image": 12.0}}))
    monkeypatch.setattr(study_report, "COMPUTE", compute)
    dest = tmp_path / "docs" / "RESULTS.md"
    scales = [study_report.Scale("small", small, study.SCALES["small"], [0, 1]),
              study_report.Scale("medium", medium, study.SCALES["medium"], [0, 1])]  # fmt: skip
    study_report.write_results(scales, dest, ["jem", "pgd"], [], "cmd")
    text = dest.read_text()
    # robustness: two seeds -> mean ± sd; one run -> value ± its standard error; missing -> not run
    assert "| jem | small | 25.0 ± 7.1% (2 seeds) | 6.0 ± 1.4% (2 seeds) |" in text
    assert "| jem | small | cpu-jem | fp32 | ?; ? | 25.0 ± 7.1 (2 seeds) |" in text  # models table: precision, status
    assert "| jem | medium | 45.0% ± 1.5 | 9.0% ± 0.5 |" in text
    assert "| pgd | small | not run | not run | not run | not run | not run |" in text
    assert "| jem | small | joint | 290.0 ± 14.1 (2 seeds) |" in text  # claim 5's FID, sampler named
    assert "| jem | small | 50.0 ± 14.1 (2 seeds) | not run | not run |" in text  # claim 9: mean over sets
    assert (dest.parent / "img" / "study" / "compute.png").is_file()
    assert "![compute](img/study/compute.png)" in text
    assert "a line joins a model's scales" in text
    # One scale only (the unseeded small study): names without seeds; the figure still places each method
    (dest.parent / "img" / "study" / "compute.png").unlink()
    _fake_run(tmp_path / "plain", "jem", 0.25, 6.0, 250.0, 0.5)
    study_report.write_results([study_report.Scale("small", tmp_path / "plain", study.SCALES["small"])], dest,
                               ["jem"], [], "cmd")  # fmt: skip
    assert "| jem | small | 25.0% ± 1.5 |" in dest.read_text()
    assert (dest.parent / "img" / "study" / "compute.png").is_file() and "a line joins" not in dest.read_text()
    # a model whose passes were never counted gets no point (nothing invented): no figure at all here
    compute.write_text(json.dumps({}))
    (dest.parent / "img" / "study" / "compute.png").unlink()
    study_report.write_results(scales, dest, ["jem", "pgd"], [], "cmd")
    assert not (dest.parent / "img" / "study" / "compute.png").exists() and "![compute]" not in dest.read_text()


def test_the_study_runs_claim_9s_evaluation_on_its_ood_models(tmp_path, monkeypatch):
    s = _study(tmp_path, [0])
    for name in s.names(study.MODELS):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text("{}")
    done = []
    monkeypatch.setattr(s, "sh", lambda cmd, out, skip_done=True: done.append(cmd) or True)
    s.run()
    ood = [c[2] for c in done if c[:2] == ["jeat", "evaluate"] and "ood" in c]
    assert sorted(Path(p).name for p in ood) == sorted(f"{m}-s0" for m in study.OOD)
    # every stage succeeded: each run is marked complete in the archive, and a second pass runs nothing
    assert all(s.complete(n).is_file() for n in s.names(study.MODELS))
    assert "| jem-s0 |" in (tmp_path / "study_medium_runs.md").read_text()  # the runs page, beside the archive
    done.clear()
    s.run()
    assert done == []


def test_every_model_is_attacked_once_with_autoattack_only_where_table_2_needs_it(tmp_path, monkeypatch):
    s = _study(tmp_path, [0])
    done = []
    monkeypatch.setattr(s, "sh", lambda cmd, out, skip_done=True: done.append(cmd) or True)
    s.run()
    robust = [c for c in done if c[:2] == ["jeat", "evaluate"] and "robustness" in c[c.index("--suite") + 1]]
    runs = [Path(c[2]).name for c in robust]
    assert sorted(runs) == sorted(s.names(study.MODELS))  # one pass a run: PGD and C&W never run twice
    with_aa = sorted(Path(c[2]).name for c in robust if any(a.startswith("robustness.aa_n=") for a in c))
    assert with_aa == sorted(f"{m}-s0" for m in study.AUTOATTACK)
    assert all("robustness.autoattack=0" in c for c in robust if Path(c[2]).name not in with_aa)


def test_a_run_with_a_failed_stage_is_not_marked_complete(tmp_path, monkeypatch):
    s = _study(tmp_path, [0])
    fail = lambda cmd, out, skip_done=True: "aa_n" not in " ".join(cmd)  # noqa: E731
    monkeypatch.setattr(s, "sh", fail)
    s.run()
    assert not s.complete("pgd-s0").is_file()  # its AutoAttack stage failed
    assert s.complete("noise-8-s0").is_file()  # no AutoAttack stage


def test_compute_counts_every_network_pass_per_training_image(shared_data):
    """The profiler count against the presets' own settings: CE 1 pass, PGD-AT k attack steps + 1,
    JEM K SGLD steps + the negatives' and the data's passes."""
    compute = pytest.importorskip("compute")
    from jeat.presets import get_preset

    assert compute.passes_per_image("standard", str(shared_data), "small", 2)["passes_per_image"] == 1.0
    k = get_preset("cpu-pgd").method.attack.steps
    assert compute.passes_per_image("pgd", str(shared_data), "small", 2)["passes_per_image"] == k + 1


def test_claim_costs_follow_the_measured_passes_and_say_the_throughput_is_assumed(tmp_path, monkeypatch):
    paper_cost = pytest.importorskip("paper_cost")
    monkeypatch.setattr(paper_cost, "RECORD", tmp_path / "study_compute_paper.json")
    assert paper_cost.claim_costs() == []  # nothing measured: no table
    rec = {"standard": {"preset": "paper-standard", "arch": "wrn-28-10", "passes_per_image": 1.0, "epochs": 200,
                        "valid_size": 0},
           "pgd": {"preset": "paper-pgd", "arch": "wrn-28-10", "passes_per_image": 11.0, "epochs": 200,
                   "valid_size": 0}}  # fmt: skip
    (tmp_path / "study_compute_paper.json").write_text(json.dumps(rec))
    text = "\n".join(paper_cost.claim_costs())
    assert "*assumed*" in text
    # standard: 1e7 images x (2 x 1 + 1) passes x 10.48 GFLOP = 314 PFLOP = 0.4-0.9 h at 200-100 TFLOP/s
    assert "| standard | `paper-standard` (wrn-28-10) | 1 | 10,000,000 | 314 | 0.4-0.9 |" in text
    assert "| 1 | standard | 0.4-0.9 |" in text and "| 2 | pgd | 3.3-6.7 |" in text
    assert "| 3 |" not in text  # its JEM and JEAT costs were not measured


def test_the_archive_rewrites_the_same_page_without_the_run_folders(tmp_path, monkeypatch):
    """The committed archive must hold everything the page reads, and never a run's weights."""
    from PIL import Image

    runs, archive = tmp_path / "runs", tmp_path / "archive"
    _fake_run(runs, "jem-s0", 0.20, 5.0, 300.0, 0.40)
    _fake_run(runs, "jem-s1", 0.30, 7.0, 280.0, 0.60)
    (runs / "jem-s0" / "checkpoint.pt").write_bytes(b"weights")
    (runs / "jem-s0" / "model.safetensors").write_bytes(b"weights")
    Image.new("RGB", (640, 640), (200, 10, 10)).save(runs / "jem-s0" / "gen-joint" / "grid.png")
    (runs / "jem-s0" / "gen-joint" / "samples.npz").write_bytes(b"samples")
    for name in ("jem-s0", "jem-s1"):
        assert study_runs.archive_run(runs / name, archive / name)
    assert study_runs.archive_run(runs / "jem-s0", archive / "jem-s0") == []  # unchanged: nothing rewritten
    kept = {p.relative_to(archive).as_posix() for p in archive.rglob("*") if p.is_file()}
    assert "jem-s0/summary.json" in kept and "jem-s0/gen-joint/eval/metrics.json" in kept
    assert "jem-s0/ood-claim9/metrics.json" in kept and "jem-s0/gen-joint/grid.png" in kept
    assert not any(k.endswith((".pt", ".safetensors", ".npz")) for k in kept)
    with Image.open(archive / "jem-s0" / "gen-joint" / "grid.png") as im:
        assert max(im.size) <= 256
    compute = tmp_path / "compute.json"
    compute.write_text(json.dumps({"jem": {"passes_per_image": 12.0}}))
    monkeypatch.setattr(study_report, "COMPUTE", compute)
    pages = []
    for src in (runs, archive):
        dest = tmp_path / src.name / "docs" / "RESULTS.md"
        scales = [study_report.Scale("small", src, study.SCALES["small"], [0, 1])]
        study_report.write_results(scales, dest, ["jem", "pgd"], [], "cmd")
        pages.append(dest.read_text())
    assert pages[0] == pages[1]


def test_a_fresh_machine_continues_the_archived_log_instead_of_replacing_it(tmp_path, monkeypatch):
    # 2026-12-06: a new machine's first archived stage replaced 1,624 committed lines of study.log with its two
    archive = tmp_path / "a"
    archive.mkdir()
    (archive / "study.log").write_text("$ jeat train --name old\n# exit 0, 60 s\n")
    out = tmp_path / "out"
    st = study.Study(argparse.Namespace(data="D", out=str(out), scale="medium", seeds=[0], archive=str(archive)))
    monkeypatch.setattr(study, "archive_run", lambda run, dest: [])
    assert st.sh([sys.executable, "-c", f"open(r'{out / 'r' / 'done'}', 'w')"], out / "r" / "done")
    lines = (archive / "study.log").read_text().splitlines()
    assert lines[:2] == ["$ jeat train --name old", "# exit 0, 60 s"] and len(lines) == 4
    # a machine that already has its log keeps it as it is
    (out / "study.log").write_text("$ mine\n")
    study.Study(argparse.Namespace(data="D", out=str(out), scale="medium", seeds=[0], archive=str(archive)))
    assert (out / "study.log").read_text() == "$ mine\n"


def test_the_training_curves_come_from_the_largest_scale_whose_ebms_trained(tmp_path, monkeypatch):
    """A medium scale still training its first models must not take the small scale's curves off the page."""
    small, medium = tmp_path / "small", tmp_path / "medium"
    _fake_run(small, "jem-s0", 0.20, 5.0, 300.0, 0.40)
    _fake_run(medium, "standard-s0", 0.80, 0.0, 200.0, 0.40)  # no EBM trained at medium yet
    steps = [{"kind": "step", "step": s, "epoch": 0, "ce": 2.0 / s, "energy_gap": 0.1 * s} for s in (1, 2, 3)]
    steps.append({"kind": "epoch", "step": 3, "epoch": 0, "test_acc": 0.2})
    (small / "jem-s0" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps))
    monkeypatch.setattr(study_report, "COMPUTE", tmp_path / "none.json")
    dest = tmp_path / "docs" / "RESULTS.md"
    scales = [study_report.Scale("small", small, study.SCALES["small"], [0, 1]),
              study_report.Scale("medium", medium, study.SCALES["medium"], [0, 1])]  # fmt: skip
    study_report.write_results(scales, dest, ["jem", "standard"], [], "cmd")
    assert "JEM and JEAT training, scale `small`, first seed" in dest.read_text()
    assert (dest.parent / "img" / "study" / "ebm-training.png").is_file()
    _fake_run(medium, "jem-s0", 0.45, 9.0, 200.0, 0.70)
    (medium / "jem-s0" / "metrics.jsonl").write_text((small / "jem-s0" / "metrics.jsonl").read_text())
    study_report.write_results(scales, dest, ["jem", "standard"], [], "cmd")
    assert "JEM and JEAT training, scale `medium`, first seed" in dest.read_text()


def test_the_models_table_calls_a_stalled_run_stalled_though_its_summary_says_ok(tmp_path):
    run = tmp_path / "jeat-s0"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps({"status": "ok"}))
    flat = [{"kind": "epoch", "train_ce": 2.2, "valid_acc": a} for a in (0.2, 0.3, 0.25, 0.28)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    assert study_read.run_status(run) == "stalled (ok at training time)"
    flat[-1]["valid_acc"] = 0.4  # ten points of progress in the second half: learning, if slowly
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in flat))
    assert study_read.run_status(run) == "ok"


def test_the_models_table_calls_a_saturated_run_saturated_from_its_plans_energy_l2(tmp_path):
    # gaps pinned at cpu-jem's optimum -px_weight / energy_l2 = -10; the archive has no config.json, so the
    # plan's preset and --set changes say what the run trained with
    pinned = [{"kind": "epoch", "train_ce": 1.0, "valid_acc": a, "train_energy_gap": g}
              for a, g in ((0.4, -6.0), (0.5, -9.9), (0.6, -9.95), (0.7, -9.97))]  # fmt: skip
    for name, expected in (("jem-s0", "saturated (recovered at training time)"), ("jem-no-l2-s0", "recovered")):
        run = tmp_path / name
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({"status": "recovered"}))
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pinned))
        assert study_read.run_status(run) == expected, name  # jem-no-l2 sets energy_l2=0: no optimum
    assert study_plan.planned_config("jem-no-l2").method.energy_l2 == 0
    unknown = tmp_path / "unknown-s0"  # a run the plan does not name: its status as it is
    unknown.mkdir()
    (unknown / "summary.json").write_text(json.dumps({"status": "recovered"}))
    (unknown / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in pinned))
    assert study_read.run_status(unknown) == "recovered"


def test_train_times_from_two_machines_are_given_per_seed_not_averaged(tmp_path):
    runs = []
    for seed, (t, hw) in enumerate(
        [(600, "cpu: AMD EPYC (AVX512-BF16)"), (300, "cpu: Intel(R) Xeon(R) Processor (AMX)")]
    ):
        run = tmp_path / f"pgd-s{seed}"
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({"train_time_s": t, "hardware": hw}))
        runs.append(run)
    assert study_report.train_times(runs) == "10.0 min (AMD EPYC (AVX512-BF16)); 5.0 min (Intel Xeon (AMX))"
    (runs[1] / "summary.json").write_text(json.dumps({"train_time_s": 480, "hardware": "cpu: AMD EPYC (AVX512-BF16)"}))
    assert study_report.train_times(runs) == "9.0 ± 1.4 min (2 seeds)"  # one machine: mean ± sd
