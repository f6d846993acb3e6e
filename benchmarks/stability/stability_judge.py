"""What the stability study counts: when a run has collapsed, when the guard caught it, and when it
cried wolf.

A run is *collapsed* when, at any epoch, its test accuracy has lost more than 60 % of its best gain
over chance so far, or is more than 10 points below its best so far on two epochs in a row (or on
the last), each fall also beyond 3 standard errors on the test set, or is non-finite, or the run
stopped; *caught* when a guard event comes no later than
the collapse's first epoch. A mid-run collapse counts even if the run climbs back later. A *false
alarm* is a guard event (replayed: the current guard) on a recovery-off run that did not collapse.

The judge reads a sample too (300 test images on digits28), so a verdict near one of its thresholds is
itself noise. Each run is therefore also judged one standard error to each side (``collapse_epoch``'s
``shift``): *clearly collapsed* when even the lenient reading (lost share threshold + 1 SE of the lost share,
Z + 1, "learned" + 1 SE at chance) calls it collapsed, *clearly fine* when even the strict reading (every
threshold 1 SE the other way) does not, and *borderline* otherwise. The strict counts (one threshold) stay
on the page; the clear counts say which misses are the guard's and which are the judge's noise.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from guard_replay import first_trigger

from jeat.config import GuardConfig

COLLAPSE_DROP = 0.10
CHANCE, LEARNED_LOST, CHANCE_LEARNED = 0.1, 0.6, 0.05  # every data set here has 10 classes
# A fall within Z standard errors is sampling noise. The judge reads the *test* accuracy, an outside measurement
# of collapse; the guard it judges reads the validation accuracy (issue 34) and never the test set.
Z = GuardConfig().valid_acc_z


def run_name(arm: str, method: str, dataset: str, seed: int) -> str:
    return f"{arm}/{method}-{dataset}-s{seed}"


def replayed(run: Path) -> list[dict]:
    """The current guard's first trigger on a recorded run (a warn run's path does not depend on it)."""
    trig = first_trigger(run / "metrics.jsonl", GuardConfig(), CHANCE)
    return [{**trig.to_dict(), "action": "warn (replayed)"}] if trig else []


def outcome(run: Path) -> dict | None:
    """Per run: best/final test accuracy, collapsed, guard events, status, wall time. A warn run's
    events are the current guard replayed over its metrics; the events it logged are ``logged``."""
    if not (run / "summary.json").exists():
        return None
    summary = json.loads((run / "summary.json").read_text())
    rows = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines() if ln]
    epochs = [r for r in rows if r.get("kind") == "epoch"]
    accs = [r["test_acc"] for r in epochs]
    valid = [r["valid_acc"] for r in epochs if "valid_acc" in r]  # what the guard read (issue 34)
    logged = [r for r in rows if r.get("kind") == "guard"]
    warn_only = json.loads((run / "config.json").read_text())["guard"]["policy"] == "warn"
    events = replayed(run) if warn_only else logged
    final = accs[-1] if accs else float("nan")
    best = max(accs) if accs else float("nan")
    n = summary.get("test_images")
    stopped = not math.isfinite(final) or summary.get("status") == "diverged"
    onset = collapse_epoch(accs, n)
    collapsed = stopped or onset is not None
    # One standard error to each side of every threshold (module docstring): clear, or borderline.
    lenient, strict = collapse_epoch(accs, n, shift=1), collapse_epoch(accs, n, shift=-1)
    verdict = "collapsed" if stopped or lenient is not None else "fine" if strict is None else "borderline"
    # Caught: a guard event no later than the collapse's first epoch.
    caught = bool(events) and (onset is None or events[0]["step"] <= epochs[onset]["step"])
    clear_onset = lenient if lenient is not None else onset
    caught_clear = bool(events) and (clear_onset is None or events[0]["step"] <= epochs[clear_onset]["step"])
    return {"best": best, "final": final, "accs": accs, "valid": valid, "collapsed": collapsed, "caught": caught,
            "logged": logged,
            "status": summary.get("status"), "events": events, "time_s": summary.get("train_time_s", 0.0),
            "false_alarm": bool(events) and not collapsed and warn_only, "recovery_off": warn_only,
            "verdict": verdict, "silent_clear": verdict == "collapsed" and not caught_clear,
            "false_alarm_clear": bool(events) and verdict == "fine" and warn_only}  # fmt: skip


def collapse_epoch(accs: list[float], n: int | None = None, shift: int = 0) -> int | None:
    """The epoch a collapse (module docstring) is known at, judged against the best so far; None if none.
    With the test set's size ``n`` a fall must also exceed Z standard errors (sampling noise). ``shift``
    moves every threshold by that many of the judge's own standard errors: +1 is harder to call a collapse
    (lenient), -1 easier (strict); without ``n`` it has no effect."""
    for i in range(1, len(accs)):
        best = max(accs[:i])
        pair = math.sqrt((best * (1 - best) + accs[i] * (1 - accs[i])) / n) if n and math.isfinite(accs[i]) else 0.0

        def fell(a: float, best: float = best) -> bool:  # the fall beyond the noise margin
            noise = (Z + shift) * math.sqrt((best * (1 - best) + a * (1 - a)) / n) if n and math.isfinite(a) else 0.0
            return (best - a) > noise

        learned = CHANCE_LEARNED + shift * (math.sqrt(CHANCE * (1 - CHANCE) / n) if n else 0.0)
        gain = best - CHANCE
        has_learned = gain >= learned and gain > 0 and fell(accs[i])
        lost = (best - accs[i]) / gain if has_learned else 0.0
        threshold = LEARNED_LOST + shift * (pair / gain if gain > 0 else 0.0)  # the lost share's standard error
        below = [a < best - COLLAPSE_DROP - shift * pair and fell(a) for a in accs[i : i + 2]]
        if not math.isfinite(accs[i]) or (has_learned and lost > threshold):
            return i
        if all(below) and (len(below) == 2 or i == len(accs) - 1):
            return i + len(below) - 1  # a persisting drop is known at its second epoch
    return None


def stand_in(out: Path, arm: str, method: str, dataset: str, seed: int) -> dict | None:
    """A missing default run whose warn twin the current guard never fires on: that twin."""
    if arm != "default":
        return None
    twin = outcome(out / run_name("warn", method, dataset, seed))
    return twin if twin is not None and not twin["events"] else None


def recovery_effect(done: dict) -> list[str]:
    """What recovery changed, outcome against outcome: the final test accuracy of each default run
    the guard acted on minus that of its recovery-off twin (same run until the first trigger). A
    diverged default run counts with its last kept epoch, the checkpoint it leaves (best.pt)."""
    rows = []
    for (arm, method, data, seed), o in done.items():
        twin = done.get(("warn", method, data, seed))
        if arm == "default" and o["events"] and twin is not None and twin is not o:
            rows.append(f"| {method} | {data} | {seed} | {o['final'] * 100:.1f} ({o['status']}) | "
                        f"{twin['final'] * 100:.1f} | {(o['final'] - twin['final']) * 100:+.1f} |")  # fmt: skip
    if not rows:
        return []
    return ["", "## What recovery changed (default run against its recovery-off twin)", "",
            "| method | data | seed | final, default | final, recovery off | difference (points) |",
            "|---|---|---|---|---|---|", *rows]  # fmt: skip
