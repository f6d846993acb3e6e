"""benchmarks/stability/stability.py's judge: when a run counts as collapsed, caught, or a false alarm."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "stability"))
import stability_judge as stability  # noqa: E402  (the judge; stability.py runs the study)

# The digits28 recovery-off twins (seed 0, benchmarks/results/stability_cpu.md), first epochs.
JEM = [0.107, 0.213, 0.167, 0.447, 0.37, 0.117, 0.053, 0.137, 0.21, 0.317, 0.477]
JEMPP = [0.153, 0.143, 0.357, 0.33, 0.367, 0.607, 0.713, 0.823, 0.647, 0.733, 0.72, 0.86, 0.967]


def test_a_mid_run_collapse_counts_even_if_the_run_climbs_back():
    assert stability.collapse_epoch(JEM) == 5  # 44.7 -> 11.7 %: 95 % of the gain lost; final 47.7 is its best


def test_a_one_epoch_dip_is_not_a_collapse_but_a_persisting_drop_or_a_last_epoch_drop_is():
    assert stability.collapse_epoch(JEMPP) is None
    assert stability.collapse_epoch([0.5, 0.8, 0.65, 0.66, 0.8]) == 3  # two epochs 10+ points down: known at the second
    assert stability.collapse_epoch([0.5, 0.8, 0.85, 0.7]) == 3  # the last epoch cannot recover
    assert stability.collapse_epoch([0.1, 0.12, 0.11]) is None  # never learned: not a collapse (status says so)
    assert stability.collapse_epoch([0.3, float("nan")]) == 1


def _run(path: Path, accs: list[float], policy: str, valid: list[float] | None = None) -> Path:
    """A recorded run: ``accs`` the test accuracies (what the judge reads), ``valid`` the validation
    accuracies (what the guard reads; the same as the test ones unless given)."""
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"status": "warned", "train_time_s": 60.0}))
    (path / "config.json").write_text(json.dumps({"guard": {"policy": policy}, "method": {}}))
    valid = accs if valid is None else valid
    rows = [{"kind": "epoch", "step": 10 * (i + 1), "epoch": i + 1, "valid_acc": v, "test_acc": a}
            for i, (a, v) in enumerate(zip(accs, valid, strict=True))]  # fmt: skip
    (path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_outcome_replays_the_current_guard_on_warn_runs(tmp_path):
    jem = stability.outcome(_run(tmp_path / "jem", JEM, "warn"))
    assert jem["collapsed"] and jem["caught"] and not jem["false_alarm"]
    assert jem["events"][0]["reason"] == "valid_acc_lost" and jem["events"][0]["step"] == 60
    jempp = stability.outcome(_run(tmp_path / "jempp", JEMPP, "warn"))
    assert not jempp["collapsed"] and jempp["events"] == [] and not jempp["false_alarm"]
    # A guard that fired on the dip (the old one-epoch rule) would be a false alarm.
    dip = stability.outcome(_run(tmp_path / "dip", [0.5, 0.8, 0.66, 0.75, 0.9], "warn"))
    assert not dip["collapsed"] and dip["events"] == []


def test_the_replayed_guard_reads_validation_accuracy_never_the_test_set(tmp_path):
    # The test accuracy collapses, the validation accuracy does not: the judge sees the collapse, the
    # guard (replayed as the loop runs it) does not fire, so the page would show it as SILENT.
    o = stability.outcome(_run(tmp_path / "split", JEM, "warn", valid=[0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.5, 0.55,
                                                                        0.55, 0.6, 0.6]))  # fmt: skip
    assert o["collapsed"] and o["events"] == [] and not o["caught"]


def test_a_step_trigger_on_a_run_that_did_not_collapse_is_a_false_alarm(tmp_path):
    run = _run(tmp_path / "spike", [0.5, 0.8, 0.85], "warn")
    spike = json.dumps({"kind": "step", "step": 5, "energy_x": 2e4, "acc": 0.5})  # one absurd interval
    (run / "metrics.jsonl").write_text(spike + "\n" + (run / "metrics.jsonl").read_text())
    o = stability.outcome(run)
    assert o["events"][0]["reason"] == "energy_bound" and not o["collapsed"] and o["false_alarm"]
    # The same events on a run that recovered by itself under rollback are not judged here: only warn runs.
    (run / "config.json").write_text(json.dumps({"guard": {"policy": "rollback-lr"}, "method": {}}))
    assert not stability.outcome(run)["false_alarm"]


def test_a_fall_within_the_test_sets_noise_is_not_a_collapse():
    # digits28 (300 test images), cpu-jeat with one thread: 15.7 -> 11.3 % near chance is 1.5 standard errors
    early = [0.157, 0.14, 0.12, 0.113, 0.113, 0.167, 0.233, 0.287, 0.427]
    assert stability.collapse_epoch(early, n=300) is None
    assert stability.collapse_epoch(early) == 2  # without the test set's size every fall counts
    assert stability.collapse_epoch(JEM, n=300) == 5  # a real collapse is far outside the noise


def test_recovery_effect_compares_final_accuracies_of_twins():
    ev = [{"reason": "valid_acc_lost"}]
    done = {
        ("default", "jem", "digits28", 0): {"events": ev, "final": 0.98, "status": "recovered"},
        ("warn", "jem", "digits28", 0): {"events": ev, "final": 0.503, "status": "warned"},
        ("default", "jeat", "digits28", 1): {"events": [], "final": 0.9, "status": "ok"},  # no action: no row
    }
    rows = stability.recovery_effect(done)
    assert rows[-1] == "| jem | digits28 | 0 | 98.0 (recovered) | 50.3 | +47.7 |" and len(rows) == 6


def test_a_verdict_within_one_of_the_judges_own_standard_errors_is_borderline(tmp_path):
    # robust-jem digits28 seed 3, recovery off (300 test images): 50.7 -> 27.0 % loses 58 % of the gain, under the
    # judge's 60 % by less than the lost share's standard error (9.5 points of it): the judge cannot tell.
    rjem = [0.11, 0.113, 0.113, 0.187, 0.507, 0.27, 0.447, 0.407, 0.283, 0.43, 0.373, 0.657]
    assert stability.collapse_epoch(rjem, n=300) is None
    assert (
        stability.collapse_epoch(rjem, n=300, shift=-1) == 5 and stability.collapse_epoch(rjem, n=300, shift=1) is None
    )
    assert stability.collapse_epoch(JEM, n=300, shift=1) == 5  # 95 % of the gain lost: clear at every reading
    assert stability.collapse_epoch(JEM, shift=1) == stability.collapse_epoch(JEM)  # no test-set size: no band

    def judged(name: str, accs: list[float]) -> dict:
        run = _run(tmp_path / name, accs, "warn")
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "test_images": 300}))
        return stability.outcome(run)

    border = judged("border", rjem)
    assert border["verdict"] == "borderline" and border["events"]  # the guard (50 % on the same numbers) fires
    assert border["false_alarm"] and not border["false_alarm_clear"]  # an alarm by the strict count only
    assert (
        judged("jem", JEM)["verdict"] == "collapsed" and judged("jempp", JEMPP)["verdict"] == "borderline"
    )  # 82.3 -> 64.7, 73.3: 10 points down by 1 SE
    assert judged("rising", [0.3, 0.5, 0.6, 0.58, 0.7])["verdict"] == "fine"
    silent = judged("silent", [0.1, 0.5, 0.8, 0.2, 0.2, 0.2])  # the guard replayed on these fires at epoch 4
    assert silent["verdict"] == "collapsed" and silent["caught"] and not silent["silent_clear"]


def test_every_run_trains_in_the_studys_one_pinned_precision(tmp_path, monkeypatch):
    """The pages' precision is bf16 where native; --amp none runs the fp32 arm (issue 38), never a mix."""
    runner = importlib.import_module("stability")  # the study's runner (``stability`` here is its judge)
    monkeypatch.setattr(runner, "AMP", "bf16")
    monkeypatch.setattr(runner, "RESULTS", runner.RESULTS)
    cmd = runner.command("default", "jem", "cifar10", 0, "DATA", tmp_path)
    assert [c for c in cmd if c.startswith("amp=")] == ["amp=bf16"]
    runner.set_results(tmp_path / "page.md", "none")
    cmd = runner.command("warn", "jeat", "digits28", 1, "DATA", tmp_path)
    assert [c for c in cmd if c.startswith("amp=")] == ["amp=none"]
    assert "amp pinned to fp32" in runner.report(tmp_path, [], "cmd")


def test_a_finished_run_whose_folder_is_lost_comes_back_from_the_archive(tmp_path, monkeypatch):
    """The study's committed archive: a lost run folder is restored (results only) and never trained again."""
    import shutil
    import subprocess

    runner = importlib.import_module("stability")
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "results" / "stability_x.md")
    out, archive = tmp_path / "runs", runner.archive_dir(tmp_path / "results" / "stability_x.md")
    job = ("warn", "jem", "digits28", 0)
    run = _run(out / runner.run_name(*job), JEM, "warn")
    (run / "checkpoint.pt").write_bytes(b"weights")
    before = stability.outcome(run)
    runner.archive_files(run, archive / runner.run_name(*job), runner.ARCHIVED)
    assert not (archive / runner.run_name(*job) / "checkpoint.pt").exists()  # never weights
    shutil.rmtree(out)
    assert runner.restore(out, archive, [job]) == [runner.run_name(*job)]
    assert stability.outcome(out / runner.run_name(*job)) == before
    trained = []
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: trained.append(cmd))
    (out / "data" / "digits28").mkdir(parents=True)
    (out / "data" / "digits28" / "test.npz").write_bytes(b"")
    argv = ["stability.py", "--data", "D", "--out", str(out), "--arms", "warn", "--methods", "jem",
            "--datasets", "digits28", "--seeds", "0", "--results", str(runner.RESULTS)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    runner.main()
    assert trained == []  # restored, so not trained again


def test_workers_started_with_one_command_share_the_runs(tmp_path):
    """Two workers of one study (OUT/claims/<run>, as the seeded study): a run another live worker holds is
    skipped, never trained twice, and a run that finished meanwhile is not trained again."""
    runner = importlib.import_module("stability")
    workers = importlib.import_module("stability_workers")
    out = tmp_path / "runs"
    jobs = [("default", m, "digits28", 0) for m in ("jem", "jeat", "jempp")]
    trained = []

    def train(job):  # the real one runs `jeat train`; this one records a finished run
        trained.append(job)
        _run(out / runner.run_name(*job), [0.2, 0.4, 0.6], "rollback")

    _run(out / runner.run_name(*jobs[2]), [0.2, 0.4], "rollback")  # finished before this worker started
    with workers.claimed(out / "claims" / runner.run_name(*jobs[0])) as mine:  # the other worker: this live process
        assert mine
        workers.work(out, jobs, train, tmp_path / "archive", wait=0)
    assert trained == [jobs[1]]  # not the held run, not the finished one
    workers.work(out, jobs, train, tmp_path / "archive", wait=0)  # the claim is released: its run is next
    assert trained == [jobs[1], jobs[0]]
    workers.work(out, jobs, train, tmp_path / "archive", wait=0)
    assert trained == [jobs[1], jobs[0]]  # every run finished: nothing trains again


def test_a_run_another_worker_finished_while_this_one_took_its_claim_is_not_trained_again(tmp_path, monkeypatch):
    import contextlib

    runner = importlib.import_module("stability")
    workers = importlib.import_module("stability_workers")
    out, job = tmp_path / "runs", ("default", "jem", "digits28", 0)
    real = workers.claimed

    @contextlib.contextmanager
    def late(path):  # the other worker finishes the run and releases its claim just before this one takes it
        _run(out / runner.run_name(*job), [0.2, 0.4], "rollback")
        with real(path) as mine:
            yield mine

    monkeypatch.setattr(workers, "claimed", late)
    trained = []
    workers.work(out, [job], trained.append, tmp_path / "archive", wait=0)
    assert trained == []
