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


def test_interleaved_rows_are_their_own_and_say_so():
    o = run.parser().parse_args(["--speed", "--interleave", "--weat-steps", "10"])
    assert run._key("speed", "weat", o) == "speed-interleaved-attack10"
    assert run._key("speed", "eb-jdat", o) == "speed"  # EB-JDAT's module times its two sides one after the other
    r = _run(1.3, (True, True))
    r["speed"]["order"] = "interleaved"
    row = report._speed({"trades": {"speed-interleaved": r}})[2]
    assert "steps interleaved" in row and "jeat's cached / jeat's cached" in row
    o = run.parser().parse_args(["--speed", "--interleave", "--jeat-set", "fold_bn=false"])
    assert run._key("speed", "weat", o) == "speed-interleaved-set-fold_bn=false"
    r["settings"]["jeat_set"] = ["fold_bn=false"]
    assert "jeat `fold_bn=false`" in report._speed({"weat": {"speed-x": r}})[2]


def test_a_bf16_speed_row_is_its_own_and_names_both_precisions():
    o = run.parser().parse_args(
        ["--speed", "--channels-last", "--interleave", "--jeat-amp", "bf16", "--methods", "trades"]
    )
    key = run._key(run._base_key(o), "trades", o)
    assert key == "speed-bf16-interleaved"  # never the fp32 row's "speed-interleaved"
    assert run._base_key(run.parser().parse_args(["--jeat-amp", "bf16", "--methods", "jem"])) == "parity-bf16"
    r = _run(4.4, (True, True))
    r["settings"]["jeat_amp"] = "bf16"
    row = report._speed({"trades": {key: r, "speed": _run(1.3)}})[3]
    assert "jeat in bf16 autocast, reference float32" in row and "**4.40**" in row
    with pytest.raises(SystemExit, match="float32 runs only"):  # the reference runs in float32
        run._base_key(run.parser().parse_args(["--jeat-amp", "bf16", "--dtype", "float64", "--methods", "jem"]))


def test_train_interleaved_alternates_the_sides_and_times_each_alone():
    import time

    import torch

    interleave = pytest.importorskip("interleave")
    order = []

    class Trainer:
        model = torch.nn.Linear(1, 1)

        def train_step(self, x, y):
            order.append(("jeat", int(x)))
            time.sleep(0.01)
            return {"loss": x.float()}

    lab = [(torch.tensor(i), torch.tensor(0)) for i in range(3)]
    ref, ours = interleave.train_interleaved(lambda b: order.append(("ref", int(b[0][0]))), Trainer(), lab)
    assert order == [(side, i) for i in range(3) for side in ("ref", "jeat")]
    assert ours["losses"] == [0.0, 1.0, 2.0]
    assert ours["times"] == sorted(ours["times"]) and ours["wall"] >= 0.03 > ref["wall"]  # jeat's sleeps only
    assert len(ref["times"]) == len(ours["times"]) == 3


def test_interleave_runs_jeat_one_step_per_reference_step_with_its_own_rng():
    import torch

    interleave = pytest.importorskip("interleave")
    order, draws = [], {"ref": [], "jeat": []}
    ref_model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(ref_model.parameters(), lr=0.1)
    il = interleave.Interleave(lambda: ref_model)

    def jeat_loop():
        torch.manual_seed(123)  # as jeat's Trainer seeds itself
        for i in range(3):
            order.append(("jeat", i))
            draws["jeat"].append(float(torch.rand(())))
            interleave.after_jeat_step()
        return {"losses": [0.0, 1.0, 2.0]}

    torch.manual_seed(7)
    with il.running(jeat_loop):
        for i in range(3):  # the reference's loop: one optimizer step per iteration
            order.append(("ref", i))
            draws["ref"].append(float(torch.rand(())))
            ref_model(torch.ones(2)).sum().backward()
            opt.step()
    out = il.finish()
    assert order == [(side, i) for i in range(3) for side in ("ref", "jeat")]
    torch.manual_seed(7)
    assert draws["ref"] == [float(torch.rand(())) for _ in range(3)]  # jeat's draws did not move its stream
    torch.manual_seed(123)
    assert draws["jeat"] == [float(torch.rand(())) for _ in range(3)]
    assert len(out["times"]) == len(il.ref["times"]) == 3 and out["losses"] == [0.0, 1.0, 2.0]


def test_interleave_says_when_the_reference_steps_twice_per_iteration():
    import torch

    interleave = pytest.importorskip("interleave")
    ref_model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(ref_model.parameters(), lr=0.1)
    il = interleave.Interleave(lambda: ref_model)

    def jeat_loop():
        interleave.after_jeat_step()
        return {"losses": [0.0]}

    with il.running(jeat_loop):
        for _ in range(2):
            opt.step()
    with pytest.raises(RuntimeError, match="2 optimizer steps for jeat's 1"):
        il.finish()
