"""benchmarks/precision/precision.py's comparison: the difference of means, its standard error and the verdict."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "precision"))
precision = pytest.importorskip("precision")


def test_a_difference_inside_two_standard_errors_is_neutral():
    c = precision.compare([40.0, 42.0, 41.0], [40.5, 41.5, 42.5])
    assert c["diff"] == pytest.approx(0.5) and c["se"] == pytest.approx(math.sqrt(1 / 3 + 1 / 3))
    assert c["verdict"] == "neutral"


def test_a_difference_beyond_two_standard_errors_differs_and_one_seed_decides_nothing():
    assert precision.compare([80.0, 81.0, 80.5], [70.0, 71.0, 70.5])["verdict"] == "differs"
    one = precision.compare([80.0], [70.0, 71.0])
    assert one["verdict"] == "-" and "diff" not in one


def test_values_skip_diverged_runs_and_missing_seeds():
    records = {"jem-fp32-s0": {"measures": {"clean": 30.0}},
               "jem-fp32-s1": {"measures": {"clean": 10.0, "status": "diverged"}},
               "jem-bf16-s0": {"measures": {"clean": 29.0}}}  # fmt: skip
    assert precision.values(records, "jem" + precision.FP32, [0, 1, 2], "clean") == [30.0]
    assert precision.values(records, "jem" + precision.BF16, [0, 1], "clean") == [29.0]


def verdicts(records: dict) -> tuple[set[str], set[str], set[str]]:
    """(neutral, held, differs): methods with 3+ seeds a side whose every quality column (not the train time) the
    study calls neutral; held = those with a material difference against bf16 in some column; differs = 3+ seeds a
    side in every column and some column beyond 2 standard errors."""
    cols = [k for k, _ in precision.COLUMNS if k != "fid_buffer"]
    neutral, held, differs = set(), set(), set()
    for m in precision.METHODS:
        seeds, v, p = [0, 1, 2], precision.values, precision
        cells = {k: p.compare(v(records, m + p.FP32, seeds, k), v(records, m + p.BF16, seeds, k)) for k in cols}
        if all(c["verdict"] == "neutral" and c["n32"] >= 3 and c["n16"] >= 3 for c in cells.values()):
            (held if any(precision.material(k, c) for k, c in cells.items()) else neutral).add(m)
        elif all(c.get("n32", 0) >= 3 and c.get("n16", 0) >= 3 for c in cells.values()):
            if any(c["verdict"] == "differs" for c in cells.values()):
                differs.add(m)
    return neutral, held, differs


def test_a_material_difference_points_against_bf16_only():
    worse_fid = precision.compare([250.0, 240.0, 260.0], [290.0, 270.0, 300.0])
    assert precision.material("fid", worse_fid)
    better_fid = precision.compare([290.0, 270.0, 300.0], [250.0, 240.0, 260.0])
    assert not precision.material("fid", better_fid)  # lower FID in bf16 is no reason to hold it
    assert precision.material("ood_auroc", precision.compare([70.0, 60.0, 75.0], [50.0, 40.0, 60.0]))
    assert not precision.material("clean", precision.compare([30.0, 20.0, 25.0], [33.0, 24.0, 28.0]))


def test_amp_auto_trains_in_bf16_exactly_the_methods_the_study_proved_neutral():
    from jeat import get_preset
    from jeat.training.precision import BF16_DIFFERS, BF16_HELD, BF16_NEUTRAL, BF16_VARIANTS

    records = precision.load_json(precision.B.RESULTS).get("runs", {})
    neutral, held, differs = verdicts(records)
    # rule-neutral without a material difference: bf16 under amp=auto; with one: held in fp32, with its reason
    own = lambda names: names - set(BF16_VARIANTS)  # noqa: E731
    assert own(neutral) == set(BF16_NEUTRAL) and own(held) == set(BF16_HELD) and own(differs) == set(BF16_DIFFERS)
    for name, (verdict, _) in BF16_VARIANTS.items():  # a study row that trains as another method
        measured = {"neutral": neutral, "held": held, "differs": differs}
        assert name in measured[verdict], (name, verdict)
        method = get_preset(f"cpu-{name}").method.name
        assert method != name and (verdict == "neutral" or method not in BF16_NEUTRAL)  # never bf16 by the back door
    # A method whose bf16 rows drift away fails the proof (the check can fail).
    worse = {k: ({**r, "measures": {**r["measures"], "clean": r["measures"]["clean"] - 30}}
                 if k.startswith("pgd-bf16") else r) for k, r in records.items()}  # fmt: skip
    assert "pgd" not in verdicts(worse)[0] and "pgd" in verdicts(worse)[2]


def test_the_rules_false_differs_rate_is_the_t_distributions_not_the_normals():
    one, any_ = precision.null_rates(seeds=3, columns=7, trials=20_000)
    assert 0.10 < one < 0.14  # P(|t| > 2) for Welch's t with 3 a side (~4 df): 0.116; the normal's would be 0.046
    assert 1 - (1 - one) ** 7 - 0.02 < any_ < 1 - (1 - one) ** 7 + 0.02  # independent columns
    many, _ = precision.null_rates(seeds=30, columns=1, trials=20_000)
    assert 0.03 < many < 0.07  # with many seeds the rule is the normal's 2-sigma test


stability_arms = pytest.importorskip("stability_arms")
STABILITY_PAGE = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "stability_cpu.md"


def test_the_stability_page_is_read_row_by_row_as_its_totals_count_it():
    runs = [r for r in stability_arms.read_page(STABILITY_PAGE) if r.arm == "default" and r.seed in (0, 1, 2)]
    assert len(runs) == 36  # 4 methods x 3 data sets x 3 seeds
    first = next(r for r in runs if (r.method, r.data, r.seed) == ("jem", "cifar10", 0))
    assert (first.final, first.collapsed, first.events, first.status) == (22.7, False, False, "ok")
    digits = [r for r in runs if r.data == "digits28"]  # the page's Totals: 6 collapsed, 11 with guard events
    assert sum(r.collapsed for r in digits) == 6 and sum(r.events for r in digits) == 11


def test_a_rolled_back_run_counts_as_rolled_back_whatever_its_final_status(tmp_path):
    # jem/digits28 seed 0 was rolled back and ended `recovered`; the same run judged `stalled` afterwards is
    # still a rolled-back run (the count reads the guard's events, not the status)
    text = STABILITY_PAGE.read_text().splitlines()
    row = next(i for i, ln in enumerate(text) if ln.startswith("| default | jem | digits28 | 0 |"))
    assert text[row].endswith("| recovered | 4.1 min |")
    text[row] = text[row].replace("| recovered |", "| stalled |")
    page = tmp_path / "stalled.md"
    page.write_text("\n".join(text) + "\n")
    run = next(r for r in stability_arms.read_page(page) if (r.method, r.data, r.seed) == ("jem", "digits28", 0))
    assert run.rolled_back and run.status == "stalled"
    report = stability_arms.report(page, STABILITY_PAGE, [0], "test", tmp_path / "p.md")
    counts = next(ln for ln in report.splitlines() if ln.startswith("| jem | digits28 |")).split("|")
    assert counts[8].strip() == "1 of 1 / 1 of 1"  # rolled back and learned, on both sides


def test_a_page_whose_columns_changed_is_refused_by_name(tmp_path):
    page = tmp_path / "other.md"
    page.write_text(STABILITY_PAGE.read_text().replace("| final | collapsed |", "| last | collapsed |"))
    with pytest.raises(ValueError, match="other.md: no run table"):
        stability_arms.read_page(page)


def test_bf16_collapses_and_lost_accuracy_show_against_fp32(tmp_path):
    # fp32 = the committed page; bf16 = the same page with every cifar10 jem run collapsed at 10 %
    fp32 = STABILITY_PAGE
    text = fp32.read_text().splitlines()
    worse = []
    for ln in text:
        cells = ln.split("|")
        if ln.startswith("| default | jem | cifar10 |"):
            cells[8], cells[9] = " 10.0 ", " **yes** (caught) "
        worse.append("|".join(cells))
    bf16 = tmp_path / "bf16.md"
    bf16.write_text("\n".join(worse) + "\n")
    page = stability_arms.report(fp32, bf16, [0, 1, 2], "test", tmp_path / "p.md")
    row = next(ln for ln in page.splitlines() if ln.startswith("| jem | cifar10 |"))
    assert "-14.8 ±" in row and "**differs**" in row and "| 0 of 3 / 3 of 3 |" in row
    assert row.endswith("| 0 of 3 / 0 of 3 |")  # the last column: runs whose own verdict was `failed`
    same = next(ln for ln in page.splitlines() if ln.startswith("| jeat | cifar10 |"))
    assert "+0.0 ±" in same and "**neutral**" in same


@pytest.mark.parametrize(
    ("a", "n1", "b", "n2", "p"),  # two-sided p-values of scipy.stats.fisher_exact for the same tables
    [(6, 8, 1, 5, 0.10256410256410256), (8, 10, 1, 6, 0.034965034965034975), (3, 12, 6, 12, 0.40032305828509895),
     (0, 12, 0, 12, 1.0), (12, 12, 0, 12, 7.39602301050679e-07)],
)  # fmt: skip
def test_the_collapse_rates_are_compared_by_fishers_exact_test(a, n1, b, n2, p):
    assert stability_arms.fisher_exact(a, n1, b, n2) == pytest.approx(p, rel=1e-9)
    assert stability_arms.fisher_exact(b, n2, a, n1) == pytest.approx(p, rel=1e-9)  # symmetric in the sides
    with pytest.raises(ValueError, match="not a 2x2 table"):
        stability_arms.fisher_exact(13, 12, 0, 12)


def test_the_totals_give_fishers_p_for_collapses_and_guard_events(tmp_path):
    page = stability_arms.report(STABILITY_PAGE, STABILITY_PAGE, [0, 1, 2], "test", tmp_path / "p.md")
    digits = next(ln for ln in page.splitlines() if ln.startswith("| digits28 | 12 / 12 |"))
    assert digits == (
        "| digits28 | 12 / 12 | 6 of 12 / 6 of 12 (p = 1.00) | 11 of 12 / 11 of 12 (p = 1.00) "
        "| 4 of 12 / 4 of 12 (p = 1.00) | 0 of 12 / 0 of 12 (p = 1.00) |"
    )
