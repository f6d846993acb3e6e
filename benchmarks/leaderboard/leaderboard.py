"""One leaderboard for every method: the same CPU budget, the same evaluation (issue 12).

    python benchmarks/leaderboard/leaderboard.py --data ../shared/data [--out runs/leaderboard] [--seeds 0 1]
    python benchmarks/leaderboard/leaderboard.py --data ../shared/data --methods eb-jdat-ce --seeds 0  # an ablation
    python benchmarks/leaderboard/leaderboard.py --data ../shared/data --methods pgd jem --remeasure pgd jem  # anew
    python benchmarks/leaderboard/leaderboard.py --report-only

Every method trains from its ``cpu-*`` preset with the budget overridden to the same data and
epochs (BUDGET), then goes through the same stages: ``jeat evaluate`` (clean, PGD-20, C&W-inf,
AutoAttack standard on AA_N images, ECE), ``jeat generate`` (Eq. 17 SGLD from the class Gaussians,
PER_CLASS per class) and ``jeat evaluate --suite fid`` at that fixed N. Resumable: each stage is
skipped once its output exists (benchmarks/shared.py), a killed training resumes from its
checkpoint, and a run already complete in RESULTS (committed) is not run again. All stages of
one run come before the next; seed 0 of every method before seed 1.
docs/LEADERBOARD.md is rewritten from the finished stages after every model, with mean ± sd over
seeds, wall time and a sample grid per method.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import leaderboard_budget as B
from leaderboard_budget import (
    AA_N,
    BUDGET,
    BUFFERED,
    METHODS,
    N_EVAL,
    N_REF,
    OOD_SETS,
    PER_CLASS,
    SAMPLING,
    STARTS,
    VARIANTS,
    base,
    load_json,
    preset,
    settings,
)
from leaderboard_page import report
from shared import Stages  # benchmarks/ is on sys.path once leaderboard_budget is imported

from jeat.training.checkpoint import atomic_write_text


class Leaderboard:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.stages = Stages(self.out / "leaderboard.log", "leaderboard")

    def run_dir(self, method: str, seed: int) -> Path:
        return self.out / f"{method}-s{seed}"

    def train(self, method: str, seed: int) -> bool:
        run = self.run_dir(method, seed)
        if load_json(run / "summary.json").get("status") == "diverged":
            return False  # stopped by the guard: the page reports the stop, not its last checkpoint's numbers
        if (run / "checkpoint.pt").exists() and not (run / "summary.json").exists():
            cmd = ["jeat", "train", "--resume", str(run), "--no-progress"]
        else:
            init = []
            if base(method) in STARTS:
                start = self.out / f"{base(method)}-start-s{seed}"
                cmd = ["jeat", "train", "--preset", METHODS[STARTS[base(method)]], "--seed", str(seed),
                       "--data", self.args.data, "--out", str(self.out), "--name", start.name, "--no-progress",
                       *BUDGET]  # fmt: skip
                if not self.stages.sh(cmd, start / "summary.json"):
                    return False
                init = ["--init", str(start)]
            cmd = ["jeat", "train", "--preset", preset(method), "--seed", str(seed), "--data", self.args.data,
                   "--out", str(self.out), "--name", run.name, "--no-progress", *BUDGET, *init,
                   *settings(method)]  # fmt: skip
        return self.stages.sh(cmd, run / "summary.json")

    def ood(self, method: str, seed: int) -> bool:
        run = self.run_dir(method, seed)
        cmd = ["jeat", "evaluate", str(run), "--suite", "ood", "--n", str(N_EVAL), "--data", self.args.data,
               "--out", str(run / "ood"), "--no-progress", "--set", f"ood.sets={OOD_SETS}",
               "--set", "ood.scores=logpx,maxprob,grad_norm"]  # fmt: skip
        return self.stages.sh(cmd, run / "ood" / "metrics.json")

    def evaluate(self, method: str, seed: int) -> bool:
        run = self.run_dir(method, seed)
        cmd = ["jeat", "evaluate", str(run), "--suite", "robustness,calibration", "--n", str(N_EVAL), "--data",
               self.args.data, "--no-progress", "--name", run.name, "--set", f"robustness.aa_n={AA_N}",
               "--set", "robustness.pgd_steps=20", "--set", "robustness.attacks=pgd20,cw_linf",
               "--set", "robustness.torchattacks=0"]  # fmt: skip
        return self.stages.sh(cmd, run / "eval" / "metrics.json")

    def generate_and_fid(self, method: str, seed: int) -> bool:
        run = self.run_dir(method, seed)
        gen = run / "gen-joint"
        cmd = ["jeat", "generate", str(run), *SAMPLING, "--per-class", str(PER_CLASS), "--data", self.args.data,
               "--out", str(gen), "--no-progress"]  # fmt: skip
        if not self.stages.sh(cmd, gen / "samples.npz"):
            return False
        cmd = ["jeat", "evaluate", str(run), "--suite", "fid", "--samples", str(gen / "samples.npz"), "--data",
               self.args.data, "--out", str(gen / "eval"), "--no-progress", "--set", f"fid.n_ref={N_REF}",
               "--set", f"fid.cache_dir={self.out / 'fid-cache'}"]  # fmt: skip
        if base(method) in BUFFERED:  # the replay buffer's states too, as the JEM-family papers report both
            cmd += ["--set", "fid.buffer=true", "--set", f"fid.n_buffer={PER_CLASS * 10}"]
        return self.stages.sh(cmd, gen / "eval" / "metrics.json")

    def recorded(self, method: str, seed: int) -> bool:
        """Whether RESULTS (committed) already holds this run complete: a fresh checkout has no
        runs/, and its finished runs must not be trained again."""
        rec = load_json(B.RESULTS).get("runs", {}).get(f"{method}-s{seed}", {})
        if rec and method in (getattr(self.args, "remeasure", None) or []) and not self.run_dir(method, seed).is_dir():
            supersede(f"{method}-s{seed}", rec)  # kept, then measured again from scratch (e.g. for a later stage)
            return False
        if rec.get("measures", {}).get("status") == "diverged":
            return True
        # the OOD stage came later (issue 24): a run still on disk gets it; one recorded before without
        # its directory cannot (its row says so)
        ood_missing = "ood_auroc" not in rec.get("measures", {}) and self.run_dir(method, seed).is_dir()
        return bool(rec.get("fid_done")) and not ood_missing

    def run(self) -> None:
        # Every stage of a run before the next run: a run is recorded complete (RESULTS) or not at
        # all, so nothing depends on runs/ surviving until a later stage. Seed 0 of every method
        # first, so a page cut short by time compares all methods.
        for seed in self.args.seeds:
            for method in self.args.methods:
                if self.recorded(method, seed):
                    continue
                if self.train(method, seed) and self.evaluate(method, seed) and self.generate_and_fid(method, seed):
                    self.ood(method, seed)
                report(self.out, *page_scope(self.args))


def supersede(name: str, rec: dict) -> None:
    """Move a record that --remeasure replaces to SUPERSEDED (with the date) before its run starts."""
    old = load_json(B.SUPERSEDED)
    old.setdefault("runs", {}).setdefault(name, []).append({**rec, "superseded": time.strftime("%Y-%m-%d")})
    atomic_write_text(B.SUPERSEDED, json.dumps(old, indent=1, sort_keys=True) + "\n")
    runs = load_json(B.RESULTS)
    runs.get("runs", {}).pop(name, None)
    atomic_write_text(B.RESULTS, json.dumps(runs, indent=1, sort_keys=True) + "\n")


def page_scope(args) -> tuple[list[str], list[int]]:
    """The page always shows every method and seeds 0 and 1, whatever subset this call ran."""
    return [*METHODS, *(v for v in VARIANTS if v in args.methods)], sorted({0, 1, *args.seeds})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/leaderboard")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=[*METHODS, *VARIANTS])
    p.add_argument("--report-only", action="store_true")
    p.add_argument("--remeasure", nargs="+", default=[], metavar="METHOD",
                   help="measure these methods again from scratch even where RESULTS holds them complete (e.g. "
                   "rows recorded before the OOD stage, whose runs are gone); the old records move to "
                   "leaderboard_cpu_superseded.json")  # fmt: skip
    a = p.parse_args()
    if not a.report_only:
        Leaderboard(a).run()
    print(report(Path(a.out), *page_scope(a)))


if __name__ == "__main__":
    main()
