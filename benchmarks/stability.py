"""Does energy-based training collapse? jem, jeat and robust-jem over seeds and two data sets.

Every run is `jeat train --preset cpu-<method>` at 3x the preset's budget (12,000 training images
instead of 4,000, the presets' 3 epochs), test accuracy on 2,000 test images after each epoch.
Data sets: CIFAR-10 (32x32 RGB) and CIFAR-10 as 28x28 grayscale (benchmarks/make_gray28.py; built
on first use under --out). Arms:

- ``default``: the presets as shipped (stabilisers and guard policy ``rollback-lr``);
- ``warn``: the same runs with recovery off (``guard.policy=warn``: the guard only logs). Until
  its first trigger a run is bit-identical to its default twin (the guard only reads metrics), so
  a default run without any guard event *is* its warn twin, and only runs with events are rerun.
  Conversely, a default run is not trained again when the current guard, replayed over its warn
  twin's metrics (benchmarks/guard_replay.py), does not fire: that warn run *is* the default run;
- ``bn-running``: cpu-jem and cpu-jeat (BN CNN) with ``method.sgld.bn=running`` (SGLD and the
  negatives' loss forward see BN running statistics, as generation does), seeds 0-1, CIFAR-10:
  against ``default`` (``batch``), the measurement issue 15 asks for;
- ``stab-*`` (``--arms stabilisers``): the unpenalised cpu-jem of ``old``, seed 0, CIFAR-10,
  recovery off, with one other stabiliser each (STABILISERS): which of them alone prevents the
  collapse the energy L2 prevents;
- ``old``: cpu-jem without the stabiliser (``method.energy_l2=0``, the preset before the
  stability issue) under ``warn`` and under ``rollback-lr``: what detection and recovery do on a
  run that really collapses.

A run is *collapsed* when, at any epoch, its test accuracy has lost more than 60 % of its best gain
over chance so far, or is more than 10 points below its best so far on two epochs in a row (or on
the last), each fall also beyond 3 standard errors on the test set, or is non-finite, or the run
stopped; *caught* when a guard event comes no later than
the collapse's first epoch. A mid-run collapse counts even if the run climbs back later. A *false
alarm* is a guard event (replayed: the current guard) on a recovery-off run that did not collapse.

    python benchmarks/stability.py --data ../shared/data [--out runs/stability] [--arms default warn old]
    python benchmarks/stability.py --report-only

One job at a time (two torch jobs slow each other 2-4x). Resumable: finished runs are skipped, a
killed run continues from its checkpoint. Writes ``benchmarks/results/stability_cpu.md`` after
every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from guard_replay import first_trigger

from jeat.config import GuardConfig
from jeat.training.checkpoint import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "stability_cpu.md"
METHODS = ("jem", "jeat", "jempp", "robust-jem")
DATASETS = ("cifar10", "gray28", "digits28")
# The guard's thresholds were chosen on the first group; the second was never used to choose them.
SELECTION, HELD_OUT = ("cifar10", "gray28"), ("digits28",)
NPZ_SETS = {"gray28": "cifar10-gray28", "digits28": "digits28"}  # data sets built under OUT/data/
# digits28 has 1,497 training images, not 12,000: 24 epochs give about the steps of the others' 3 (~280)
EPOCHS = {"digits28": 24}
SEEDS = (0, 1, 2)
BUDGET = ["--set", "data.train_limit=12000", "--set", "data.test_limit=2000", "--set", "eval_robust_n=0",
          "--set", "log_every=10", "--set", "checkpoint_every=25"]  # fmt: skip
COLLAPSE_DROP = 0.10
CHANCE, LEARNED_LOST, CHANCE_LEARNED = 0.1, 0.6, 0.05  # every data set here has 10 classes
Z = GuardConfig().test_acc_z  # a fall within Z standard errors on the test set is sampling noise
# One stabiliser at a time on cpu-jem without the energy L2 (the `old` arm's JEM, which collapses),
# recovery off: JEM++'s proximal sampler with Gaussian seeds (cpu-robust-jem's 5 x 5), SADA-JEM's
# adaptive SAM (rho 2), JEM's Adam 1e-4 with warm-up (100 steps: JEM's 1000 exceed this budget).
STABILISERS = {
    "stab-pyld": ["method.sgld.sampler=pyld", "method.sgld.init=gaussian", "method.sgld.clamp=true",
                  "method.sgld.noise=0", "method.sgld.steps=5", "method.sgld.inner_steps=5"],
    "stab-sam": ["optim.sam_rho=2", "optim.sam_adaptive=true"],
    "stab-adam": ["optim.name=adam", "optim.lr=1e-4", "optim.weight_decay=0", "optim.schedule=constant",
                  "optim.warmup_steps=100"],
}  # fmt: skip


def run_name(arm: str, method: str, dataset: str, seed: int) -> str:
    return f"{arm}/{method}-{dataset}-s{seed}"


def plan(arms: list[str], seeds: list[int], methods: list[str], datasets: list[str]) -> list[tuple]:
    """(arm, method, dataset, seed) in the order they run: seed 0 of the defaults, the old JEM on
    CIFAR-10 seed 0 (a real collapse, with and without recovery), then the other seeds."""
    jobs = []
    for s in seeds:
        if "default" in arms:
            jobs += [("default", m, d, s) for d in datasets for m in methods]
        if "old" in arms and "cifar10" in datasets and s == seeds[0]:
            jobs += [("old-warn", "jem", "cifar10", s), ("old-rollback", "jem", "cifar10", s)]
    if "warn" in arms:
        jobs += [("warn", m, d, s) for s in seeds for d in datasets for m in methods]
    if "stabilisers" in arms:  # each stabiliser alone on the unpenalised JEM that collapses (seed 0), no recovery
        jobs += [(a, "jem", "cifar10", seeds[0]) for a in STABILISERS]
    if "bn-running" in arms:  # issue 15: SGLD on the BN CNN with running instead of batch statistics
        jobs += [("bn-running", m, "cifar10", s) for s in seeds[:2] for m in ("jem", "jeat")]
    if "old" in arms:
        jobs += [(a, "jem", d, s) for d in datasets for s in seeds for a in ("old-warn", "old-rollback")
                 if (d, s) != ("cifar10", seeds[0])]  # fmt: skip
    return jobs


def command(arm: str, method: str, dataset: str, seed: int, data: str, out: Path) -> list[str]:
    run = out / run_name(arm, method, dataset, seed)
    cmd = [sys.executable, "-m", "jeat", "train", "--no-progress"]
    if (run / "checkpoint.pt").exists():
        return cmd + ["--resume", str(run)]
    cmd += ["--preset", f"cpu-{method}", "--seed", str(seed), "--out", str(run.parent), "--name", run.name, *BUDGET]
    if dataset in EPOCHS:
        cmd += ["--epochs", str(EPOCHS[dataset])]
    cmd += (
        ["--data", data]
        if dataset == "cifar10"
        else ["--dataset", "npz", "--data", str(out / "data" / NPZ_SETS[dataset])]
    )
    if arm in ("warn", "old-warn"):
        cmd += ["--set", "guard.policy=warn"]
    if arm.startswith("old"):
        cmd += ["--set", "method.energy_l2=0"]
    if arm == "bn-running":
        cmd += ["--set", "method.sgld.bn=running"]
    if arm in STABILISERS:
        cmd += ["--set", "method.energy_l2=0", "--set", "guard.policy=warn"]
        cmd += [a for kv in STABILISERS[arm] for a in ("--set", kv)]
    return cmd


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
    logged = [r for r in rows if r.get("kind") == "guard"]
    warn_only = json.loads((run / "config.json").read_text())["guard"]["policy"] == "warn"
    events = replayed(run) if warn_only else logged
    final = accs[-1] if accs else float("nan")
    best = max(accs) if accs else float("nan")
    onset = collapse_epoch(accs, summary.get("test_images"))
    collapsed = not math.isfinite(final) or onset is not None or summary.get("status") == "diverged"
    # Caught: a guard event no later than the collapse's first epoch.
    caught = bool(events) and (onset is None or events[0]["step"] <= epochs[onset]["step"])
    return {"best": best, "final": final, "accs": accs, "collapsed": collapsed, "caught": caught, "logged": logged,
            "status": summary.get("status"), "events": events, "time_s": summary.get("train_time_s", 0.0),
            "false_alarm": bool(events) and not collapsed and warn_only}  # fmt: skip


def collapse_epoch(accs: list[float], n: int | None = None) -> int | None:
    """The epoch a collapse (module docstring) is known at, judged against the best so far; None if none.
    With the test set's size ``n`` a fall must also exceed Z standard errors (sampling noise)."""
    for i in range(1, len(accs)):
        best = max(accs[:i])

        def fell(a: float, best: float = best) -> float:  # the fall beyond the noise margin
            noise = Z * math.sqrt((best * (1 - best) + a * (1 - a)) / n) if n and math.isfinite(a) else 0.0
            return (best - a) > noise

        lost = (best - accs[i]) / (best - CHANCE) if best - CHANCE >= CHANCE_LEARNED and fell(accs[i]) else 0.0
        below = [a < best - COLLAPSE_DROP and fell(a) for a in accs[i : i + 2]]
        if not math.isfinite(accs[i]) or lost > LEARNED_LOST:
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


def _events(evs: list[dict]) -> str:
    if not evs:
        return "none"
    return "; ".join(f"{e['reason']}@{e['step']} ({e['quantity']} {e['value']:.3g}) -> {e['action']}"
                     + (f" to step {e['to_step']}, lr x{e['lr_scale']:g}" if "to_step" in e else "")
                     for e in evs)  # fmt: skip


def thread_env(threads: int | None) -> dict[str, str]:
    """The children's environment with ``threads`` CPU threads. The thread count changes the order of
    reductions, so a default run and its warn twin are bit-identical only at the same count."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def set_results(path: Path) -> None:
    global RESULTS
    RESULTS = path


def _threads(out: Path, jobs: list[tuple]) -> str:
    """The CPU threads the finished runs used (their summaries; older runs did not record it)."""
    seen = set()
    for job in jobs:
        f = out / run_name(*job) / "summary.json"
        if f.exists():
            seen.add(json.loads(f.read_text()).get("threads"))
    known = sorted(t for t in seen if t is not None)
    return (" / ".join(f"{t} thread{'s' if t > 1 else ''}" for t in known) or "threads not recorded") + (
        " (some runs did not record it)" if None in seen and known else ""
    )


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


def report(out: Path, jobs: list[tuple], cmdline: str) -> str:
    lines = [
        "# Stability of energy-based training on CPU (issue 11)",
        "",
        f"Command: `{cmdline}` (resumable; this file is rewritten after every run).",
        "",
        "Budget per run: `jeat train --preset cpu-<method>` with 12,000 training images (3x the presets' 4,000) "
        "x 3 epochs, batch 128, amp=auto (bf16 on a CPU with AMX, else fp32); test accuracy on 2,000 test images "
        "after each epoch. Data: CIFAR-10 "
        "(`../shared/data`), CIFAR-10 as 28x28 grayscale (`benchmarks/make_gray28.py`) and, held out, handwritten "
        "digits upscaled to 28x28 (`benchmarks/make_digits28.py`, scikit-learn's 8x8 set: 1,497 train / 300 test; "
        f"{EPOCHS['digits28']} epochs, about the same number of steps). "
        f"The guard's thresholds were chosen on {' and '.join(SELECTION)} (selection group); {', '.join(HELD_OUT)} "
        "was never used to choose them (held-out group). Collapsed = at any epoch, more than "
        f"{LEARNED_LOST * 100:.0f} % of the best gain over chance so far lost (once >= {CHANCE_LEARNED * 100:.0f} "
        f"points), or more than {COLLAPSE_DROP * 100:.0f} points below the best so far on two epochs in a row (or "
        f"the last), each fall also beyond {Z:g} standard errors on the run's test set, or non-finite, or stopped; "
        "a mid-run collapse counts even if the run climbs back. "
        "Caught = a guard event at or before the collapse's first epoch. False alarm = a guard event on a "
        "recovery-off run that did not collapse. Guard events of warn runs are the current guard "
        "replayed over the run's metrics (`benchmarks/guard_replay.py`; the run's path does not depend on the "
        f"guard). Machine: 2 CPU cores, torch 2.13.0+cpu, {_threads(out, jobs)} per run.",
        "",
        "| arm | method | data | seed | test acc per epoch | best | final | collapsed | guard events -> action | "
        "status | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    done = {}
    for arm, method, dataset, seed in jobs:
        run = out / run_name(arm, method, dataset, seed)
        o = outcome(run)
        twin = stand_in(out, arm, method, dataset, seed) if o is None else None
        if twin is not None:  # the warn run stands in: same path, and the current guard never fires on it
            o = {**twin, "events": [], "status": "ok (= warn run)"}
        if o is None and arm == "warn":
            twin = outcome(out / run_name("default", method, dataset, seed))
            if twin is not None and not twin["events"]:
                lines.append(f"| warn | {method} | {dataset} | {seed} | = default (no trigger: identical run) "
                             f"| | | {'yes' if twin['collapsed'] else 'no'} | none | | |")  # fmt: skip
                done[(arm, method, dataset, seed)] = twin
                continue
        if o is None:
            lines.append(f"| {arm} | {method} | {dataset} | {seed} | not run yet | | | | | | |")
            continue
        done[(arm, method, dataset, seed)] = o
        accs = " / ".join(f"{a * 100:.1f}" for a in o["accs"])
        col = ("**yes**" + (" (caught)" if o["caught"] else " (SILENT)")) if o["collapsed"] else "no"
        lines.append(f"| {arm} | {method} | {dataset} | {seed} | {accs} | {o['best'] * 100:.1f} | "
                     f"{o['final'] * 100:.1f} | {col} | {_events(o['events'])} | {o['status']} | "
                     f"{o['time_s'] / 60:.1f} min |")  # fmt: skip
    lines += ["", "## Totals", "",
              "| arm | data | runs done | collapsed | silent collapses | runs with guard events | false alarms |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in dict.fromkeys(j[0] for j in jobs):
        for data in dict.fromkeys(j[2] for j in jobs if j[0] == arm):
            rs = [o for k, o in done.items() if k[0] == arm and k[2] == data]
            group = "held out" if data in HELD_OUT else "selection"
            fa = str(sum(o.get("false_alarm", False) for o in rs)) if arm in ("warn", "old-warn") else "-"
            lines.append(
                f"| {arm} | {data} ({group}) | {len(rs)} of {sum(j[0] == arm and j[2] == data for j in jobs)} | "
                f"{sum(o['collapsed'] for o in rs)} | {sum(o['collapsed'] and not o['caught'] for o in rs)} | "
                f"{sum(bool(o['events']) for o in rs)} | {fa} |"
            )
    lines += recovery_effect(done)
    text = "\n".join(lines) + "\n"
    notes = RESULTS.with_name(RESULTS.stem + "_notes.md")
    if notes.exists():
        text += "\n" + notes.read_text()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, text)
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("JEAT_DATA"), help="CIFAR-10 root (default $JEAT_DATA)")
    p.add_argument("--out", default="runs/stability")
    arms = ["default", "warn", "bn-running", "stabilisers", "old"]
    p.add_argument("--arms", nargs="+", default=arms, choices=arms)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per run (OMP_NUM_THREADS; default: torch's). Use one value for a whole "
                   "study: twins are compared bit for bit (1 lets two studies share 2 cores)")  # fmt: skip
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="markdown rewritten after every run (default benchmarks/results/stability_cpu.md); a "
                   "partial study (--datasets digits28) names its own: it lists only what --out holds")  # fmt: skip
    a = p.parse_args()
    set_results(a.results)
    out = Path(a.out)
    jobs = plan(a.arms, a.seeds, a.methods, a.datasets)
    cmdline = "python benchmarks/stability.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    if a.report_only:
        print(report(out, jobs, cmdline))
        return
    if not a.data:
        p.error("--data (or JEAT_DATA) is required to train")
    gray, digits = out / "data" / NPZ_SETS["gray28"], out / "data" / NPZ_SETS["digits28"]
    if "gray28" in a.datasets and not (gray / "test.npz").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_gray28.py"), "--data", a.data, "--out",
                        str(gray)], check=True)  # fmt: skip
    if "digits28" in a.datasets and not (digits / "test.npz").exists():
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "make_digits28.py"), "--out", str(digits)],
                       check=True)  # fmt: skip
    for job in jobs:
        arm, method, dataset, seed = job
        run = out / run_name(*job)
        if outcome(run) is not None or stand_in(out, *job) is not None:
            continue
        if arm == "warn":  # identical to the default twin until a trigger: rerun only twins with events
            twin = outcome(out / run_name("default", method, dataset, seed))
            if twin is None or not twin["events"]:
                continue
        cmd = command(*job, a.data, out)
        print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd)}", flush=True)
        run.parent.mkdir(parents=True, exist_ok=True)
        with open(out / "log.txt", "a") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, env=thread_env(a.threads))
        report(out, jobs, cmdline)
    print(report(out, jobs, cmdline))


if __name__ == "__main__":
    main()
