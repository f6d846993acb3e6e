"""The parity harness's speed record: --repeat keeps the median run and every run's numbers; the
table says which allocator each side timed with and gives the range."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks" / "parity"))
run = pytest.importorskip("run")
report = pytest.importorskip("report")


def _run(ratio: float, cached: tuple[bool, bool] = (False, True)) -> dict:
    speed = {"ratio": ratio, "jeat_img_s": 10.0 * ratio, "reference_img_s": 10.0,
             "malloc_cached": {"reference": cached[0], "jeat": cached[1]}}  # fmt: skip
    return {"speed": speed, "settings": {"model": "WRN-28-2", "batch": 64, "precision": "float32"},
            "channels_last": True}  # fmt: skip


def test_pooled_keeps_the_median_run_and_all_ratios():
    pooled = run._pooled([_run(1.4), _run(1.1), _run(1.25)])
    assert pooled["speed"]["ratio"] == 1.25
    assert [r["ratio"] for r in pooled["speed"]["repeats"]] == [1.4, 1.1, 1.25]
    assert run._pooled([_run(1.3), _run(1.1)])["speed"]["ratio"] == 1.1  # even count: the lower median


def test_speed_table_shows_the_range_and_each_sides_allocator():
    rows = report._speed({"jem": {"speed": run._pooled([_run(1.4), _run(1.1), _run(1.25)]),
                                  "speed-malloc-system": _run(0.9, (False, False))}})  # fmt: skip
    shipped, system = rows[2], rows[3]
    assert "**1.25** (1.10-1.40, 3 runs)" in shipped and "glibc defaults / jeat's cached" in shipped
    assert "**0.90** |" in system and "glibc defaults / glibc defaults" in system


def test_a_longer_weat_attack_is_a_row_of_its_own():
    o = run.parser().parse_args(["--speed", "--weat-steps", "10"])
    assert run._key("speed", "weat", o) == "speed-attack10"
    assert run._key("speed", "jem", o) == "speed"  # only WEAT's attack length is a harness option
    assert run._key("speed", "weat", run.parser().parse_args(["--speed"])) == "speed"
    default, longer = _run(1.2), _run(1.4)
    default["settings"]["attack_steps"], longer["settings"]["attack_steps"] = 3, 10
    rows = report._speed({"weat": {"speed-attack10": longer, "speed": default}})
    assert ", 3 attack steps" in rows[2] and "**1.20**" in rows[2]
    assert ", 10 attack steps" in rows[3] and "**1.40**" in rows[3]
