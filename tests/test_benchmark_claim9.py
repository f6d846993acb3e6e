"""benchmarks/study/claim9_ood.py's page (AUROC per score averaged over the sets, mean ± sd over a method's runs)
and claim9_saturation.py's join of each run's AUROC with its energy-gap regime."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "study"))
claim9 = pytest.importorskip("claim9_ood")


def _run(name: str, method: str, logpx: float, label: str | None = None) -> dict:
    auroc = {s: {"logpx": logpx, "maxprob": 0.5, "grad_norm": 0.5} for s in claim9.SETS}
    return {"run": name, "method": method, "test_acc": 0.4, "auroc": auroc, **({"label": label} if label else {})}


def test_runs_of_one_method_pool_and_ablation_arms_keep_their_labels(monkeypatch, tmp_path):
    monkeypatch.setattr(claim9, "PAGE", tmp_path / "claim9_ood.md")  # no notes file beside it
    record = {"g": [_run("jem-s0", "jem", 0.6), _run("jem-s1", "jem", 0.8),
                    _run("jempp-no-l2-s0", "jempp", 0.3, "jempp-no-l2")]}  # fmt: skip
    text = claim9.report(record)
    jem = next(ln for ln in text.splitlines() if ln.startswith("| jem |"))
    assert "| 2 (jem-s0, jem-s1) |" in jem and "| 70.0 ± 14.1 |" in jem  # mean of sets, then over the runs
    arm = next(ln for ln in text.splitlines() if ln.startswith("| jempp-no-l2 |"))
    assert "| 30.0 |" in arm  # one run: no spread


def test_a_group_scored_on_fewer_sets_names_them_and_averages_over_those(monkeypatch, tmp_path):
    monkeypatch.setattr(claim9, "PAGE", tmp_path / "claim9_ood.md")
    gray = ("uniform", "gaussian", "constant", "interp")  # single-channel data: no grayscale or permuted set
    run = _run("jempp-gray28-s0", "jempp", 0.5)
    run["auroc"] = {
        s: {"logpx": v, "maxprob": 0.5, "grad_norm": 0.5} for s, v in zip(gray, (0.1, 0.2, 0.3, 0.6), strict=True)
    }
    text = claim9.report({"gray28": [run], "rgb": [_run("jem-s0", "jem", 0.6)]})
    assert "## gray28; sets: uniform, gaussian, constant, interp" in text and "## rgb\n" in text
    header = next(ln for ln in text.splitlines() if ln.startswith("| method |"))
    assert "permuted" not in header and "interp: log p(x)" in header
    row = next(ln for ln in text.splitlines() if ln.startswith("| jempp |"))
    assert "| 30.0 |" in row and row.count("|") == header.count("|")  # (10 + 20 + 30 + 60) / 4


def test_unknown_sets_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["claim9_ood.py", "--sets", "uniform,svhn", "--report-only"])
    with pytest.raises(SystemExit):
        claim9.main()
    assert "unknown ['svhn']" in capsys.readouterr().err


def test_a_guard_stopped_run_is_not_scored_and_leaves_its_group(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(claim9, "PAGE", tmp_path / "claim9_ood.md")
    monkeypatch.setattr(claim9, "RECORD", tmp_path / "claim9_ood.json")
    run = tmp_path / "jempp-flip-crop-digits28-s2"
    run.mkdir()
    (run / "summary.json").write_text('{"status": "diverged", "method": "jempp", "test_acc": 0.47}')
    # scored earlier, before the rule: re-running on the run removes it
    claim9.RECORD.write_text('{"g": [' + json.dumps(_run(run.name, "jempp", 0.0)) + "]}")
    monkeypatch.setattr(claim9.subprocess, "call", lambda *a, **k: pytest.fail("a diverged run was evaluated"))
    monkeypatch.setattr(sys, "argv", ["claim9_ood.py", "--group", "g", "--by-name", str(run)])
    claim9.main()
    assert json.loads(claim9.RECORD.read_text()) == {"g": []}
    assert "not scored (status diverged" in capsys.readouterr().err


def test_claim9_saturation_joins_each_runs_auroc_with_its_gap_regime(tmp_path):
    claim9_saturation = pytest.importorskip("claim9_saturation")

    def run(name, gaps, l2=0.1):
        d = tmp_path / "runs" / "nested" / name
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps({"method": {"energy_l2": l2, "px_weight": 1.0}}))
        rows = [{"kind": "epoch", "train_energy_gap": g} for g in gaps]
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    run("pinned-s0", [-3.0, -9.9, -9.95, -10.0])
    run("tracking-s0", [0.3, 0.2, 0.2, 0.3])
    run("no-l2-s0", [-40.0, -50.0, -60.0, -70.0], l2=0.0)  # no optimum: not judged, not counted
    auroc = lambda u, g: {"uniform": {"logpx": u}, "gaussian": {"logpx": g}}  # noqa: E731
    records = [{"run": "pinned-s0", "method": "jem", "auroc": auroc(1.0, 0.9)},
               {"run": "tracking-s0", "method": "jempp", "auroc": auroc(0.1, 0.3)},
               {"run": "no-l2-s0", "method": "jem", "auroc": auroc(0.5, 0.5)},
               {"run": "gone-s0", "method": "jem", "auroc": auroc(0.5, 0.5)}]  # fmt: skip
    page = claim9_saturation.report("digits28 test", records, [tmp_path / "runs"], 0.9)
    assert "| pinned-s0 | jem | **yes** | -3.0 / -9.9 / -9.9 / -10.0 | 100.0 / 90.0 | 95.0 |" in page
    assert "| tracking-s0 | jempp | no | 0.3 / 0.2 / 0.2 / 0.3 | 10.0 / 30.0 | 20.0 |" in page
    assert "no-l2-s0 |" not in page and "Not found under the run roots (not judged): gone-s0." in page
    assert "saturated 95.0 (n=1; 95.0-95.0); not saturated 20.0 (n=1; 20.0-20.0)" in page
