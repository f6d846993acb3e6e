"""Replay the divergence guard over recorded runs: where would it have fired?

    python benchmarks/stability/guard_replay.py runs/stability/warn/* [--set guard.gap_patience=2 ...]

The guard only reads metrics, so a run's ``metrics.jsonl`` is enough to judge thresholds without
training again. A step record is one guard interval when the run logged every
``guard.check_every`` steps (benchmarks/stability/stability.py does); the guard's extra check on an epoch's
last partial interval is not in the log, so this is close to, not exactly, what the loop sees.
Only the first trigger is meaningful: after it a rollback changes the run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from jeat.config import GuardConfig, TrainConfig
from jeat.overrides import apply_override
from jeat.training.guard import Guard, Trigger, absolute_trigger

NOT_METRICS = {"kind", "step", "epoch", "lr", "images_per_s"}


def first_trigger(
    metrics: Path, cfg: GuardConfig, chance: float = 0.1, energy_l2: float | None = None
) -> Trigger | None:
    if energy_l2 is None:  # the run's own energy L2 (it sets the gap's healthy band), from its config.json
        run_cfg = metrics.parent / "config.json"
        energy_l2 = json.loads(run_cfg.read_text())["method"].get("energy_l2", 0.0) if run_cfg.is_file() else 0.0
    guard = Guard(cfg, energy_l2)
    summary = metrics.parent / "summary.json"  # the validation set's size sets the epoch triggers' noise margin
    n = json.loads(summary.read_text()).get("valid_images") if summary.is_file() else None
    for line in metrics.read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "step":
            values = {k: float(v) for k, v in rec.items() if k not in NOT_METRICS and isinstance(v, (int, float))}
            trig = guard.check(values, rec["step"])
        elif rec.get("kind") == "epoch" and "valid_acc" in rec:  # the loop's epoch triggers read validation only
            trig = absolute_trigger({"valid_acc": rec["valid_acc"]}, rec["step"], cfg) or guard.check_epoch(
                rec["valid_acc"],
                rec["step"],
                chance,
                n,
                rec.get("valid_top_share"),  # absent before issue 34
            )
        else:
            continue  # guard events of the original run
        if trig is not None:
            return trig
    return None


def parse_overrides(pairs: list[str]) -> GuardConfig:
    """``FIELD=VALUE`` or ``guard.FIELD=VALUE``, parsed as `jeat train --set` parses them."""
    cfg = TrainConfig()
    for pair in pairs:
        apply_override(cfg, pair if pair.startswith("guard.") else f"guard.{pair}")
    return cfg.guard


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="run directories holding metrics.jsonl")
    p.add_argument("--set", action="append", default=[], metavar="guard.FIELD=VALUE")
    p.add_argument("--chance", type=float, default=0.1, help="chance accuracy (1 / classes)")
    args = p.parse_args()
    try:
        cfg = parse_overrides(args.set)
    except ValueError as e:
        p.error(str(e))
    for run in args.runs:
        if not (run / "metrics.jsonl").is_file():
            continue
        trig = first_trigger(run / "metrics.jsonl", cfg, args.chance)
        print(f"{run}: {trig.describe() if trig else 'no trigger'}")


if __name__ == "__main__":
    main()
