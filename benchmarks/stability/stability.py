"""Does energy-based training collapse? jem, jeat and robust-jem over seeds and two data sets.

Every run is `jeat train --preset cpu-<method>` at 3x the preset's budget (12,000 training images
instead of 4,000, the presets' 3 epochs), test accuracy on 2,000 test images after each epoch.
Data sets: CIFAR-10 (32x32 RGB) and CIFAR-10 as 28x28 grayscale (benchmarks/stability/make_gray28.py; built
on first use under --out). Arms:

- ``default``: the presets as shipped (stabilisers and guard policy ``rollback-lr``);
- ``warn``: the same runs with recovery off (``guard.policy=warn``: the guard only logs). Until
  its first trigger a run is bit-identical to its default twin (the guard only reads metrics), so
  a default run without any guard event *is* its warn twin, and only runs with events are rerun.
  Conversely, a default run is not trained again when the current guard, replayed over its warn
  twin's metrics (benchmarks/stability/guard_replay.py), does not fire: that warn run *is* the default run;
- ``seeds-gaussian``: cpu-jem and cpu-jeat on the held-out digits28 with class-Gaussian SGLD seeds
  (``method.sgld.init=gaussian``, JEM++'s) instead of uniform noise, recovery off: is the seed
  distribution why they collapse there?
- ``bn-running``: cpu-jem and cpu-jeat (BN CNN) with ``method.sgld.bn=running`` (SGLD and the
  negatives' loss forward see BN running statistics, as generation does), seeds 0-1, CIFAR-10:
  against ``default`` (``batch``), the measurement issue 15 asks for;
- ``stab-*`` (``--arms stabilisers``): the unpenalised cpu-jem of ``old``, seed 0, CIFAR-10,
  recovery off, with one other stabiliser each (STABILISERS): which of them alone prevents the
  collapse the energy L2 prevents;
- ``old``: cpu-jem without the stabiliser (``method.energy_l2=0``, the preset before the
  stability issue) under ``warn`` and under ``rollback-lr``: what detection and recovery do on a
  run that really collapses.

What counts as collapsed, caught or a false alarm: ``stability_judge.py``.

    python benchmarks/stability/stability.py --data ../shared/data [--out runs/stability] [--arms default warn old]
    python benchmarks/stability/stability.py --report-only

Needs scikit-learn for digits28 (`pip install -c constraints.txt -e ".[bench]"`). One job at a time
(two torch jobs slow each other 2-4x). Resumable: finished runs are skipped, a
killed run continues from its checkpoint. Writes ``benchmarks/results/stability_cpu.md`` after
every run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import archive_files, write_page  # noqa: E402
from stability_archive import ARCHIVED, archive_dir, restore  # noqa: E402
from stability_judge import (  # noqa: E402
    CHANCE_LEARNED,
    COLLAPSE_DROP,
    LEARNED_LOST,
    Z,
    outcome,
    recovery_effect,
    run_name,
    stand_in,
)
from stability_workers import build_once, work  # noqa: E402

from jeat.training.precision import native_bf16  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "stability_cpu.md"
METHODS = ("jem", "jeat", "jempp", "robust-jem")
DATASETS = ("cifar10", "gray28", "digits28")
# The guard's thresholds were chosen on the first group; the second was never used to choose them.
SELECTION, HELD_OUT = ("cifar10", "gray28"), ("digits28",)
NPZ_SETS = {"gray28": "cifar10-gray28", "digits28": "digits28"}  # data sets built under OUT/data/
# Validation split (issue 34: the guard decides on it, the judge reads the test set): the cpu-* presets'
# 2,000 held-out images, but 300 on digits28 (1,497 training images; 300 is the size of its test set).
VALID = {"digits28": 300}
# digits28 keeps 1,197 images to train on, not 12,000: 31 epochs of 9 steps give about the steps of the
# others' 3 epochs of 93 (~280)
EPOCHS = {"digits28": 31}
SEEDS = (0, 1, 2)
BUDGET = ["--set", "data.train_limit=12000", "--set", "data.test_limit=2000", "--set", "eval_robust_n=0",
          "--set", "log_every=10", "--set", "checkpoint_every=25"]  # fmt: skip
# The pages were measured under the old amp=auto (bf16 wherever native): pinned, since amp=auto now trains
# these methods in fp32 until the precision study proves bf16 neutral for them (training/precision.py).
# `--amp fp32` runs the same study in fp32 (issue 38: the EBM arms in both precisions), in its own folder.
AMP = "bf16" if native_bf16(torch.device("cpu")) else "none"
# One stabiliser at a time on cpu-jem without the energy L2 (the `old` arm's JEM, which collapses),
# recovery off: JEM++'s proximal sampler with Gaussian seeds (cpu-robust-jem's 5 x 5), SADA-JEM's
# adaptive SAM (rho 2), JEM's Adam 1e-4 with warm-up (100 steps: JEM's 1000 exceed this budget).
PRECISION_WORDS = {
    "bf16": "amp pinned to bf16 (autocast, on a CPU with native bf16: AMX)",
    "none": "amp pinned to fp32",
}
STABILISERS = {
    "stab-pyld": ["method.sgld.sampler=pyld", "method.sgld.init=gaussian", "method.sgld.clamp=true",
                  "method.sgld.noise=0", "method.sgld.steps=5", "method.sgld.inner_steps=5"],
    "stab-sam": ["optim.sam_rho=2", "optim.sam_adaptive=true"],
    "stab-adam": ["optim.name=adam", "optim.lr=1e-4", "optim.weight_decay=0", "optim.schedule=constant",
                  "optim.warmup_steps=100"],
}  # fmt: skip


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
    if "seeds-gaussian" in arms:  # only where uniform seeds failed: digits28, mostly black images
        jobs += [("seeds-gaussian", m, "digits28", s) for s in seeds if "digits28" in datasets for m in ("jem", "jeat")]
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
    cmd += ["--preset", f"cpu-{method}", "--seed", str(seed), "--out", str(run.parent), "--name", run.name, *BUDGET,
            "--set", f"amp={AMP}"]  # fmt: skip
    if dataset in EPOCHS:
        cmd += ["--epochs", str(EPOCHS[dataset])]
    if dataset in VALID:
        cmd += ["--set", f"data.valid_size={VALID[dataset]}"]
    cmd += (
        ["--data", data]
        if dataset == "cifar10"
        else ["--dataset", "npz", "--data", str(out / "data" / NPZ_SETS[dataset])]
    )
    if arm in ("warn", "old-warn", "seeds-gaussian"):
        cmd += ["--set", "guard.policy=warn"]
    if arm.startswith("old"):
        cmd += ["--set", "method.energy_l2=0"]
    if arm == "seeds-gaussian":
        cmd += ["--set", "method.sgld.init=gaussian"]
    if arm == "bn-running":
        cmd += ["--set", "method.sgld.bn=running"]
    if arm in STABILISERS:
        cmd += ["--set", "method.energy_l2=0", "--set", "guard.policy=warn"]
        cmd += [a for kv in STABILISERS[arm] for a in ("--set", kv)]
    return cmd


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


def set_results(path: Path, amp: str | None = None) -> None:
    global RESULTS, AMP
    RESULTS = path
    if amp is not None:
        AMP = amp


def _recorded(out: Path, jobs: list[tuple], key: str) -> set:
    """One field of the finished runs' summaries (None where a run did not record it)."""
    seen = set()
    for job in jobs:
        f = out / run_name(*job) / "summary.json"
        if f.exists():
            seen.add(json.loads(f.read_text()).get(key))
    return seen


def _threads(out: Path, jobs: list[tuple]) -> str:
    """The CPU threads the finished runs used (their summaries; older runs did not record it)."""
    seen = _recorded(out, jobs, "threads")
    known = sorted(t for t in seen if t is not None)
    return (" / ".join(f"{t} thread{'s' if t > 1 else ''}" for t in known) or "threads not recorded") + (
        " (some runs did not record it)" if None in seen and known else ""
    )


def _hardware(out: Path, jobs: list[tuple]) -> str:
    """The CPUs the finished runs trained on (bf16 rounds differently with AMX, AVX512-BF16 or neither)."""
    known = sorted(h for h in _recorded(out, jobs, "hardware") if h is not None)
    return "; ".join(known) if known else "CPU not recorded (runs before 2026-12-06)"


def report(out: Path, jobs: list[tuple], cmdline: str) -> str:
    lines = [
        "# Stability of energy-based training on CPU (issues 11, 26 and 34)",
        "",
        f"Command: `{cmdline}` (resumable; this file is rewritten after every run).",
        "",
        "Budget per run: `jeat train --preset cpu-<method>` with 12,000 training images (3x the presets' 4,000) "
        f"x 3 epochs, batch 128, {PRECISION_WORDS[AMP]}. After each "
        "epoch: validation accuracy on 2,000 images held out of the training set (the preset's "
        "`data.valid_size`; every guard decision reads it) and test accuracy on 2,000 test images (what the "
        "collapse judge reads; no decision of a run does). Data: CIFAR-10 "
        "(`../shared/data`), CIFAR-10 as 28x28 grayscale (`benchmarks/stability/make_gray28.py`) and, held out, "
        "handwritten digits upscaled to 28x28 (`benchmarks/stability/make_digits28.py`, scikit-learn's 8x8 set: "
        "1,497 train / 300 test; "
        f"{VALID['digits28']} of the training images held out for validation, {EPOCHS['digits28']} epochs of the "
        "other 1,197, about the same number of steps). "
        f"The guard's thresholds were chosen on {' and '.join(SELECTION)} (selection group); {', '.join(HELD_OUT)} "
        "was never used to choose them (held-out group). Collapsed = at any epoch, more than "
        f"{LEARNED_LOST * 100:.0f} % of the best gain over chance so far lost (once >= {CHANCE_LEARNED * 100:.0f} "
        f"points), or more than {COLLAPSE_DROP * 100:.0f} points below the best so far on two epochs in a row (or "
        f"the last), each fall also beyond {Z:g} standard errors on the run's test set, or non-finite, or stopped; "
        "a mid-run collapse counts even if the run climbs back. The judge's own test set is a sample: each run "
        "is also judged with every threshold moved one of its standard errors each way (`stability_judge.py`); "
        "*borderline* = the two readings disagree, so neither a guard event nor its absence there is evidence "
        "about the guard, and the last two columns count the clear cases only. "
        "Caught = a guard event at or before the collapse's first epoch. False alarm = a guard event on a "
        "recovery-off run that did not collapse. Guard events of warn runs are the current guard "
        "replayed over the run's metrics (`benchmarks/stability/guard_replay.py`; the run's path does not depend on "
        f"the guard). Machine: 2 CPU cores ({_hardware(out, jobs)}), torch 2.13.0+cpu, {_threads(out, jobs)} "
        "per run.",
        "",
        "| arm | method | data | seed | test acc per epoch | valid acc per epoch (the guard's) | best | final | "
        "collapsed | guard events -> action | status | train time |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
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
                             f"| | | | {'yes' if twin['collapsed'] else 'no'} | none | | |")  # fmt: skip
                done[(arm, method, dataset, seed)] = twin
                continue
        if o is None:
            lines.append(f"| {arm} | {method} | {dataset} | {seed} | not run yet | | | | | | | |")
            continue
        done[(arm, method, dataset, seed)] = o
        accs = " / ".join(f"{a * 100:.1f}" for a in o["accs"])
        valid = " / ".join(f"{a * 100:.1f}" for a in o.get("valid", [])) or "-"
        col = ("**yes**" + (" (caught)" if o["caught"] else " (SILENT)")) if o["collapsed"] else "no"
        if o.get("verdict") == "borderline":
            col += ", borderline"
        lines.append(f"| {arm} | {method} | {dataset} | {seed} | {accs} | {valid} | {o['best'] * 100:.1f} | "
                     f"{o['final'] * 100:.1f} | {col} | {_events(o['events'])} | {o['status']} | "
                     f"{o['time_s'] / 60:.1f} min |")  # fmt: skip
    lines += ["", "## Totals", "",
              "| arm | data | runs done | collapsed | silent collapses | runs with guard events | false alarms | "
              "borderline (judge's noise) | clear collapses: silent | clear non-collapses: false alarms |",
              "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for arm in dict.fromkeys(j[0] for j in jobs):
        for data in dict.fromkeys(j[2] for j in jobs if j[0] == arm):
            rs = [o for k, o in done.items() if k[0] == arm and k[2] == data]
            group = "held out" if data in HELD_OUT else "selection"
            # false alarms: only where the guard only warned (a warn row may be its event-free default twin)
            off = arm in ("warn", "old-warn") or (rs and all(o.get("recovery_off") for o in rs))
            fa = str(sum(o.get("false_alarm", False) for o in rs)) if off else "-"
            fa_clear = str(sum(o.get("false_alarm_clear", False) for o in rs)) if off else "-"
            clear = sum(o.get("verdict") == "collapsed" for o in rs)
            lines.append(
                f"| {arm} | {data} ({group}) | {len(rs)} of {sum(j[0] == arm and j[2] == data for j in jobs)} | "
                f"{sum(o['collapsed'] for o in rs)} | {sum(o['collapsed'] and not o['caught'] for o in rs)} | "
                f"{sum(bool(o['events']) for o in rs)} | {fa} | {sum(o.get('verdict') == 'borderline' for o in rs)} | "
                f"{sum(o.get('silent_clear', False) for o in rs)} of {clear} | {fa_clear} |"
            )
    lines += recovery_effect(done)
    return write_page(RESULTS, lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("JEAT_DATA"), help="CIFAR-10 root (default $JEAT_DATA)")
    p.add_argument("--out", default="runs/stability")
    arms = ["default", "warn", "seeds-gaussian", "bn-running", "stabilisers", "old"]
    p.add_argument("--arms", nargs="+", default=arms, choices=arms)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    p.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads per run (OMP_NUM_THREADS; default: torch's). Use one value for a whole "
                   "study: twins are compared bit for bit (1 lets two studies share 2 cores)")  # fmt: skip
    p.add_argument("--amp", choices=("bf16", "none"), default=AMP,
                   help="the precision every run trains in (default: bf16 where native, the pages' precision; "
                   "none = fp32, for the precision study's arm, with its own --out and --results)")  # fmt: skip
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="markdown rewritten after every run (default benchmarks/results/stability_cpu.md); a "
                   "partial study (--datasets digits28) names its own: it lists only what --out holds")  # fmt: skip
    a = p.parse_args()
    set_results(a.results, a.amp)
    out = Path(a.out)
    jobs = plan(a.arms, a.seeds, a.methods, a.datasets)
    cmdline = "python benchmarks/stability/stability.py " + " ".join(a for a in sys.argv[1:] if a != "--report-only")
    if a.report_only:
        print(report(out, jobs, cmdline))
        return
    if not a.data:
        p.error("--data (or JEAT_DATA) is required to train")
    makers = {"gray28": [str(HERE / "make_gray28.py"), "--data", a.data], "digits28": [str(HERE / "make_digits28.py")]}
    folders = {d: out / "data" / NPZ_SETS[d] for d in makers if d in a.datasets}
    build_once(out, {f: [sys.executable, *makers[d], "--out", str(f)] for d, f in folders.items()})
    archive = archive_dir(RESULTS)
    for name in restore(out, archive, jobs):
        print(f"restored from {archive}: {name}", flush=True)

    def train(job: tuple) -> None:
        run = out / run_name(*job)
        cmd = command(*job, a.data, out)
        print(f"[{time.strftime('%H:%M:%S')}] {' '.join(cmd)}", flush=True)
        run.parent.mkdir(parents=True, exist_ok=True)
        with open(out / "log.txt", "a") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False, env=thread_env(a.threads))
        if (run / "summary.json").is_file():
            archive_files(run, archive / run_name(*job), ARCHIVED)
        report(out, jobs, cmdline)

    work(out, jobs, train, archive)
    print(report(out, jobs, cmdline))


if __name__ == "__main__":
    main()
