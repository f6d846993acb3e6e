"""benchmarks/leaderboard/leaderboard.py's page: numbers read from the stage outputs, mean ± sd, wall times."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "leaderboard"))
import leaderboard  # noqa: E402
import leaderboard_budget  # noqa: E402  (the paths the tests redirect)
import leaderboard_page  # noqa: E402


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _run(root: Path, name: str, clean: float, fid: float | None, buffer_fid: float | None = None) -> None:
    run = root / name
    _write(run / "summary.json", {"status": "ok", "train_time_s": 120.0})
    rob = {"clean": {"accuracy": clean}, "pgd20": {"accuracy": clean / 2}, "autoattack": {"accuracy": 1.0}}
    _write(run / "eval" / "metrics.json", {"suites": {"robustness": rob, "calibration": {"clean": {"ece": 0.05}}}})
    if fid is not None:
        suite = {"fid": fid, **({"buffer": {"fid": buffer_fid}} if buffer_fid is not None else {})}
        _write(run / "gen-joint" / "eval" / "metrics.json", {"suites": {"fid": suite}})


@pytest.fixture
def page(tmp_path, monkeypatch):
    monkeypatch.setattr(leaderboard_budget, "PAGE", tmp_path / "docs" / "LEADERBOARD.md")
    monkeypatch.setattr(leaderboard_budget, "IMG", tmp_path / "docs" / "img")
    monkeypatch.setattr(leaderboard_budget, "RESULTS", tmp_path / "results" / "leaderboard.json")
    return tmp_path / "docs" / "LEADERBOARD.md"


def test_measures_reads_every_column_and_skips_what_is_missing(tmp_path):
    _run(tmp_path, "jem-s0", 30.0, 200.0, 150.0)
    m = leaderboard_page.measures(tmp_path / "jem-s0")
    assert m["clean"] == 30.0 and m["pgd20"] == 15.0 and m["autoattack"] == 1.0
    assert m["fid"] == 200.0 and m["fid_buffer"] == 150.0
    assert m["ece"] == pytest.approx(5.0) and m["train_min"] == 2.0 and m["status"] == "ok"
    assert "cw_linf" not in m  # not measured: no cell is invented
    assert leaderboard_page.measures(tmp_path / "absent") == {}


def test_ood_column_and_a_stage_two_run_counting_its_start(tmp_path):
    _run(tmp_path, "dat-s1", 30.0, 200.0)
    _write(tmp_path / "dat-s1" / "ood" / "metrics.json", {"suites": {"ood": {"mean_auroc": {"logpx": 0.625}}}})
    _write(tmp_path / "dat-start-s1" / "summary.json", {"status": "ok", "train_time_s": 60.0})
    m = leaderboard_page.measures(tmp_path / "dat-s1")
    assert m["ood_auroc"] == 62.5  # percent
    assert m["start_train_min"] == 1.0 and m["train_min"] == 3.0  # 2 min of DAT + 1 min of its pgd start


def test_report_gives_mean_sd_over_seeds_one_seed_and_not_run(tmp_path, page):
    out = tmp_path / "runs"
    _run(out, "jem-s0", 30.0, 200.0)
    _run(out, "jem-s1", 34.0, None)  # FID of seed 1 not yet measured
    (out / "leaderboard.log").write_text(
        f"$ jeat train --preset cpu-jem --out {out} --name jem-s0\n# exit 0, 120 s\n"
        f"$ jeat evaluate {out}/jem-s0 --suite robustness\n# exit 0, 60 s\n"
        f"$ jeat train --preset cpu-jem --out {out} --name jem-s1\n# exit 0, 240 s\n"
    )
    text = leaderboard.report(out, ["jem", "pgd"], [0, 1])
    assert page.read_text() == text
    jem = next(line for line in text.splitlines() if line.startswith("| jem |"))
    cells = [c.strip() for c in jem.split("|")[1:-1]]
    assert cells[2] == "32.0 ± 2.8%"  # clean: mean and sample sd of 30 and 34
    assert cells[6] == "200.0 (1 seed)"  # FID: only seed 0 measured, and the page says so
    assert cells[4] == "-"  # C&W-inf never measured
    assert cells[9] == "-"  # OOD AUROC not measured
    assert cells[11] == "3.0 min (1 seed)"  # wall time of all stages: only seed 0 has all its stages
    pgd = next(line for line in text.splitlines() if line.startswith("| pgd |"))
    assert "not run" in pgd


def test_the_page_is_rebuilt_from_the_committed_results_once_the_runs_are_gone(tmp_path, page):
    out = tmp_path / "runs"
    _run(out, "jem-s0", 30.0, 200.0)
    (out / "leaderboard.log").write_text(f"$ jeat train --out {out} --name jem-s0\n# exit 0, 120 s\n")
    first = leaderboard.report(out, ["jem"], [0, 1])
    saved = json.loads(leaderboard_budget.RESULTS.read_text())["runs"]["jem-s0"]
    assert saved["fid_done"] and saved["stages"][0]["s"] == 120.0 and saved["measures"]["clean"] == 30.0
    shutil.rmtree(out)  # a fresh checkout: runs/ is not in git
    assert leaderboard.report(out, ["jem"], [0, 1]) == first
    _run(out, "jem-s1", 34.0, None)  # a new seed adds to what was saved, and keeps seed 0
    jem = next(line for line in leaderboard.report(out, ["jem"], [0, 1]).splitlines() if line.startswith("| jem |"))
    assert "32.0 ± 2.8%" in jem and "200.0 (1 seed)" in jem


def test_stage_records_attribute_each_stage_to_its_run(tmp_path):
    log = tmp_path / "leaderboard.log"
    log.write_text(
        "$ jeat train --preset cpu-eb-jdat --seed 1 --out runs/leaderboard --name eb-jdat-s1 --no-progress\n"
        "epoch 1: test acc 0.2\n# exit 0, 300 s\n"
        "$ jeat generate runs/leaderboard/eb-jdat-s1 --out runs/leaderboard/eb-jdat-s1/gen-joint\n# exit 0, 60 s\n"
        "$ jeat train --preset cpu-jem --seed 1 --out runs/leaderboard --name jem-s1\n# exit 0, 600 s\n"
        "# jem-s1 moved to runs/leaderboard-superseded (a fix)\n"
        "$ jeat train --preset cpu-jem --seed 1 --out runs/leaderboard --name jem-s1\n# exit 0, 120 s\n"
    )
    stages = leaderboard_page.stage_records(log)
    assert [st["s"] for st in stages["eb-jdat-s1"]] == [300.0, 60.0] and stages["eb-jdat-s1"][1]["rc"] == 0
    assert stages["eb-jdat-s1"][1]["cmd"].startswith("jeat generate runs/leaderboard/eb-jdat-s1")
    assert [st["s"] for st in stages["jem-s1"]] == [120.0]  # the superseded run's 600 s no longer count


def test_a_run_the_guard_stopped_is_not_evaluated_from_its_last_checkpoint(tmp_path):
    args = type("Args", (), {"out": str(tmp_path), "data": "data", "seeds": [0], "methods": ["jem"]})()
    board = leaderboard.Leaderboard(args)
    _write(board.run_dir("jem", 0) / "summary.json", {"status": "diverged"})
    (board.run_dir("jem", 0) / "checkpoint.pt").write_bytes(b"")
    board.stages.sh = lambda *a, **k: pytest.fail("a stopped run must not be resumed or evaluated")
    assert board.train("jem", 0) is False


def _run_over_records(tmp_path, done: dict, **args) -> list[tuple]:
    """Run a leaderboard whose committed results hold ``done``; the (method, seed) pairs it trains."""
    _write(leaderboard_budget.RESULTS, {"runs": done})
    board = leaderboard.Leaderboard(type("Args", (), {"out": str(tmp_path / "runs"), "data": "data", **args})())
    ran = []
    board.train = lambda m, s: ran.append((m, s)) or False
    board.run()
    return ran


def test_a_run_complete_in_the_committed_results_is_not_run_again(tmp_path, page):
    done = {"jem-s0": {"measures": {"clean": 30.0}, "fid_done": True, "stages": []},
            "jem-s1": {"measures": {"clean": 31.0}, "fid_done": False, "stages": []}}  # fmt: skip
    ran = _run_over_records(tmp_path, done, seeds=[0, 1], methods=["jem"])
    assert ran == [("jem", 1)]  # seed 1 lacks its FID: its stages run (each skipped if its output exists)


def test_remeasure_runs_a_recorded_method_again_and_keeps_its_old_record(tmp_path, page, monkeypatch):
    monkeypatch.setattr(leaderboard_budget, "SUPERSEDED", tmp_path / "results" / "superseded.json")
    done = {"jem-s0": {"measures": {"clean": 30.0}, "fid_done": True, "stages": []},
            "pgd-s0": {"measures": {"clean": 41.0}, "fid_done": True, "stages": []}}  # fmt: skip
    ran = _run_over_records(tmp_path, done, seeds=[0], methods=["jem", "pgd"], remeasure=["jem"])
    assert ran == [("jem", 0)]  # pgd is recorded and not named: skipped
    old = json.loads(leaderboard_budget.SUPERSEDED.read_text())["runs"]["jem-s0"]
    assert old[0]["measures"] == {"clean": 30.0} and "superseded" in old[0]
    assert "jem-s0" not in json.loads(leaderboard_budget.RESULTS.read_text())["runs"]


def test_an_ablation_trains_with_its_settings_and_gets_its_own_table(tmp_path, page):
    out = tmp_path / "runs"
    args = type("Args", (), {"out": str(out), "data": "data", "seeds": [0], "methods": ["eb-jdat-ce"]})()
    board = leaderboard.Leaderboard(args)
    cmds = []
    board.stages.sh = lambda cmd, done: cmds.append(cmd) or False
    board.train("eb-jdat-ce", 0)
    assert cmds[0][cmds[0].index("--preset") + 1] == "cpu-eb-jdat"
    assert cmds[0][-2:] == ["--set", "method.ebjdat_attack=ce"]  # after the budget: nothing overrides it
    board.stages.sh = lambda cmd, done: cmds.append(cmd) or True
    board.generate_and_fid("eb-jdat-ce", 0)
    assert "fid.buffer=true" in cmds[-1]  # a variant of a buffered method gets its buffer's FID too
    _run(out, "eb-jdat-ce-s0", 20.0, 300.0, 250.0)
    text = leaderboard.report(out, *leaderboard.page_scope(args))
    main, ablations = text.split("### Ablations")
    assert "| eb-jdat |" in main and "not run" in main  # every method stays on the page of a subset run
    assert "eb-jdat-ce" not in main
    row = next(line for line in ablations.splitlines() if line.startswith("| eb-jdat-ce |"))
    assert "`method.ebjdat_attack=ce`" in row and "20.0% (1 seed)" in row
    # a later default run keeps the measured ablation on the page (it is in the committed results)
    default = type("Args", (), {"seeds": [0, 1], "methods": list(leaderboard.METHODS)})()
    assert "| eb-jdat-ce |" in leaderboard.report(out, *leaderboard.page_scope(default))
