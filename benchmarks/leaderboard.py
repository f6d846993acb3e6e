"""One leaderboard for every method: the same CPU budget, the same evaluation (issue 12).

    python benchmarks/leaderboard.py --data ../shared/data [--out runs/leaderboard] [--seeds 0 1]
    python benchmarks/leaderboard.py --data ../shared/data --methods eb-jdat-ce --seeds 0  # an ablation
    python benchmarks/leaderboard.py --data ../shared/data --methods pgd jem --remeasure pgd jem  # again, from scratch
    python benchmarks/leaderboard.py --report-only

Every method trains from its ``cpu-*`` preset with the budget overridden to the same data and
epochs (BUDGET), then goes through the same stages: ``jeat evaluate`` (clean, PGD-20, C&W-inf,
AutoAttack standard on AA_N images, ECE), ``jeat generate`` (Eq. 17 SGLD from the class Gaussians,
PER_CLASS per class) and ``jeat evaluate --suite fid`` at that fixed N. Resumable: each stage is
skipped once its output exists (benchmarks/stages.py), a killed training resumes from its
checkpoint, and a run already complete in RESULTS (committed) is not run again. All stages of
one run come before the next; seed 0 of every method before seed 1.
docs/LEADERBOARD.md is rewritten from the finished stages after every model, with mean ± sd over
seeds, wall time and a sample grid per method.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import time
from pathlib import Path

from stages import ROOT, Stages

from jeat.training.checkpoint import atomic_write_text

# method -> preset (its algorithm and hyper-parameters; the budget below replaces data and epochs)
METHODS = {
    "standard": "cpu-standard",
    "noise": "cpu-noise-8",
    "pgd": "cpu-pgd",
    "fgsm": "cpu-fgsm",
    "trades": "cpu-trades",
    "weat": "cpu-weat",
    "prejeat": "cpu-prejeat",
    "jeat": "cpu-jeat",
    "jem": "cpu-jem",
    "jempp": "cpu-jempp",
    "sadajem": "cpu-sadajem",
    "robust-jem": "cpu-robust-jem",
    "eb-jdat": "cpu-eb-jdat",
    "dat": "cpu-dat",
}
# Stage two: a method that starts from another's trained weights (--init); the start is trained
# with the same budget and seed (run `<method>-start-s<seed>`) and its training time is counted.
STARTS = {"dat": "pgd"}
# Ablations: a method with settings changed (variant -> method, settings), run only when named
# (--methods NAME) and reported in their own table under the leaderboard.
VARIANTS = {
    "eb-jdat-ce": ("eb-jdat", ["--set", "method.ebjdat_attack=ce"]),  # the reference's commented-out CE attack
}
BUFFERED = {"jeat", "jem", "jempp", "sadajem", "robust-jem", "eb-jdat"}  # methods with a replay buffer
TRAIN_LIMIT, EPOCHS = 10_000, 3
# amp=none: every row trains in fp32. amp=auto resolves per machine (bf16 on a CPU with AMX / avx512_bf16,
# fp32 on an AVX2 one), and session machines differ, so without the pin rows would differ in precision.
BUDGET = ["--epochs", str(EPOCHS), "--set", f"data.train_limit={TRAIN_LIMIT}", "--set", "eval_robust_n=0",
          "--set", "amp=none"]  # fmt: skip
N_EVAL, AA_N, PER_CLASS, N_REF = 500, 100, 50, 1000
# No component trace: splitting E(x,y)'s and E(x)'s gradients costs a second backward per step.
SAMPLING = ["--sampler", "joint", "--seed-dist", "gaussian", "--steps", "100", "--step-size", "1.0",
            "--noise", "0.01", "--no-component-trace"]  # fmt: skip
PAGE = ROOT / "docs" / "LEADERBOARD.md"
RESULTS = ROOT / "benchmarks" / "results" / "leaderboard_cpu.json"  # committed: the runs themselves are not
SUPERSEDED = RESULTS.with_name("leaderboard_cpu_superseded.json")  # records replaced by --remeasure
IMG = ROOT / "docs" / "img" / "leaderboard"
COLUMNS = [("clean", "clean"), ("pgd20", "PGD-20"), ("cw_linf", "C&W-inf"), ("autoattack", "AutoAttack"),
           ("fid", "FID ↓"), ("fid_buffer", "FID buffer ↓"), ("ece", "ECE ↓"), ("ood_auroc", "OOD AUROC")]  # fmt: skip
# OOD detection column: AUROC (percent) of log p(x) = -E(x), test images against these synthetic sets, mean.
OOD_SETS = "gaussian,interp"


class Leaderboard:
    def __init__(self, args):
        self.args, self.out = args, Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.stages = Stages(self.out / "leaderboard.log", "leaderboard")

    def run_dir(self, method: str, seed: int) -> Path:
        return self.out / f"{method}-s{seed}"

    def train(self, method: str, seed: int) -> bool:
        run = self.run_dir(method, seed)
        if _load(run / "summary.json").get("status") == "diverged":
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
        rec = _load(RESULTS).get("runs", {}).get(f"{method}-s{seed}", {})
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
    old = _load(SUPERSEDED)
    old.setdefault("runs", {}).setdefault(name, []).append({**rec, "superseded": time.strftime("%Y-%m-%d")})
    atomic_write_text(SUPERSEDED, json.dumps(old, indent=1, sort_keys=True) + "\n")
    runs = _load(RESULTS)
    runs.get("runs", {}).pop(name, None)
    atomic_write_text(RESULTS, json.dumps(runs, indent=1, sort_keys=True) + "\n")


def page_scope(args) -> tuple[list[str], list[int]]:
    """The page always shows every method and seeds 0 and 1, whatever subset this call ran."""
    return [*METHODS, *(v for v in VARIANTS if v in args.methods)], sorted({0, 1, *args.seeds})


def base(method: str) -> str:
    """The method a variant changes (a method is its own base)."""
    return VARIANTS[method][0] if method in VARIANTS else method


def settings(method: str) -> list[str]:
    return VARIANTS[method][1] if method in VARIANTS else []


def preset(method: str) -> str:
    return METHODS[base(method)]


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def measures(run: Path) -> dict[str, float]:
    """The leaderboard's numbers of one run (percent, FID, ECE percent), where measured."""
    ev = _load(run / "eval" / "metrics.json").get("suites", {})
    rob, cal = ev.get("robustness", {}), ev.get("calibration", {})
    fid = _load(run / "gen-joint" / "eval" / "metrics.json").get("suites", {}).get("fid", {})
    out = {k: rob[k]["accuracy"] for k in ("clean", "pgd20", "cw_linf", "autoattack") if "accuracy" in rob.get(k, {})}
    if "fid" in fid:
        out["fid"] = fid["fid"]
    if "fid" in fid.get("buffer", {}):
        out["fid_buffer"] = fid["buffer"]["fid"]
    if "clean" in cal:
        out["ece"] = 100 * cal["clean"]["ece"]
    ood = _load(run / "ood" / "metrics.json").get("suites", {}).get("ood", {})
    if "logpx" in ood.get("mean_auroc", {}):
        out["ood_auroc"] = 100 * ood["mean_auroc"]["logpx"]
    summary = _load(run / "summary.json")
    if summary:
        out["train_min"] = summary.get("train_time_s", 0) / 60
        out["status"] = summary.get("status")
        if summary.get("threads"):  # recorded since 2026-12-01; train times depend on it
            out["threads"] = summary["threads"]
        method, seed = run.name.rsplit("-s", 1)
        start = _load(run.parent / f"{method}-start-s{seed}" / "summary.json")
        if method in STARTS and start:  # stage two: its start's training counts
            out["start_train_min"] = start.get("train_time_s", 0) / 60
            out["train_min"] += out["start_train_min"]
    return out


def _threads(records: dict[str, dict]) -> str:
    """The thread counts the runs trained with (older runs did not record it: 2, one job at a time)."""
    counts = [r.get("measures", {}).get("threads") for r in records.values()]
    parts = [f"{t} for {', '.join(sorted(k for k, r in records.items() if r.get('measures', {}).get('threads') == t))}"
             for t in sorted({c for c in counts if c})]  # fmt: skip
    if any(not c for c in counts):
        parts.insert(0, "2 (torch's default here; not recorded before 2026-12-01)")
    return "; ".join(parts) or "-"


def stage_records(log: Path) -> dict[str, list[dict]]:
    """Every finished stage per run directory name, from the stage log: command, exit code, seconds."""
    out: dict[str, list[dict]] = {}
    if not log.is_file():
        return out
    run = cmd = None
    for line in log.read_text().splitlines():
        if line.startswith("$ "):
            m = re.search(r"\b([a-z][a-z-]*-s\d+)(?:/|\s|$)", line)
            run, cmd = (m.group(1) if m else None), line[2:].replace(f"{ROOT}/", "")
        elif (m := re.match(r"# exit (-?\d+), (\d+(?:\.\d+)?) s", line)) and run:
            out.setdefault(run, []).append({"cmd": cmd, "rc": int(m.group(1)), "s": float(m.group(2))})
        elif m := re.match(r"# (\S+-s\d+) moved to", line):  # a superseded run's stages no longer count
            out.pop(m.group(1), None)
    return out


def collect(out: Path, methods: list[str], seeds: list[int]) -> dict[str, dict]:
    """Per run: its measures, its stages and whether its last stage (FID) is done; merged into the
    committed RESULTS file so the page can be rebuilt on a checkout that no longer has the runs."""
    records = _load(RESULTS).get("runs", {})
    stages = stage_records(out / "leaderboard.log")
    for m in methods:
        for s in seeds:
            run = out / f"{m}-s{s}"
            meas = measures(run)
            if not meas:
                continue  # not run here: keep what RESULTS holds
            fid_done = (run / "gen-joint" / "eval" / "metrics.json").is_file()
            amp = _load(run / "config.json").get("amp")  # the resolved autocast (amp=auto), for the record
            records[run.name] = {"measures": meas, "fid_done": fid_done, "amp": amp, "stages": stages.get(run.name, [])}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS, json.dumps({"budget": BUDGET, "runs": records}, indent=1, sort_keys=True) + "\n")
    return records


def _cell(values: list[float], unit: str = "") -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.1f}{unit} (1 seed)"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}{unit}"


def _rows(out: Path, names: list[str], seeds: list[int], records: dict[str, dict]) -> list[str]:
    """One table row per method or variant: mean ± sd over the seeds, wall time, sample grid."""
    table = []
    for m in names:
        recs = [records.get(f"{m}-s{s}", {}) for s in seeds]
        per_seed = [r.get("measures", {}) for r in recs]
        vals = {k: [r[k] for r in per_seed if isinstance(r.get(k), float)] for k, _ in COLUMNS + [("train_min", "")]}
        cells = [_cell(vals[k], "" if k.startswith("fid") else "%") for k, _ in COLUMNS]
        statuses = sorted({r.get("status") for r in per_seed if r.get("status")})
        grid = out / f"{m}-s{seeds[0]}" / "gen-joint" / "grid.png"
        if grid.is_file() and recs[0].get("fid_done"):
            IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(grid, IMG / f"{m}.png")
        # a committed grid is shown only beside the recorded run it came from
        img = f"![{m}](img/leaderboard/{m}.png)" if (IMG / f"{m}.png").is_file() and recs[0].get("fid_done") else "-"
        # wall time of all stages: only runs whose last stage (FID) is done
        walls = [sum(st["s"] for st in r["stages"]) / 60 for r in recs if r.get("fid_done") and r.get("stages")]
        setting = " ".join(settings(m)[1::2])
        table.append(f"| {m} | `{preset(m)}`{f' `{setting}`' if setting else ''} | {' | '.join(cells)} | "
                     f"{_cell(vals['train_min'], ' min')} | {_cell(walls, ' min')} | "
                     f"{', '.join(statuses) or 'not run'} | {img} |")  # fmt: skip
    return table


def report(out: Path, methods: list[str], seeds: list[int]) -> str:
    records = collect(out, [*methods, *(v for v in VARIANTS if v not in methods)], seeds)
    table = _rows(out, [m for m in methods if m in METHODS], seeds, records)
    # ablations: those asked for, and those measured before (kept in RESULTS)
    variants = [v for v in VARIANTS if v in methods or any(f"{v}-s{s}" in records for s in seeds)]
    header = ("| method | preset | " + " | ".join(name for _, name in COLUMNS)
              + " | train time | wall time, all stages | status | samples |")  # fmt: skip
    rule = "|---" * (len(COLUMNS) + 6) + "|"
    ablations = (["### Ablations (run only when named: `--methods NAME`)", "", header, rule,
                  *_rows(out, variants, seeds, records), ""] if variants else [])  # fmt: skip
    L = [
        "# Leaderboard: every method, one CPU budget, one evaluation",
        "",
        "Produced by `python benchmarks/leaderboard.py --data ../shared/data` (resumable; this page is rewritten "
        "from the finished stages). Every run's numbers, commands and stage times: "
        "`benchmarks/results/leaderboard_cpu.json`.",
        "",
        f"Budget: each method's `cpu-*` preset (small CNN) on the same {TRAIN_LIMIT:,} CIFAR-10 training images for "
        f"{EPOCHS} epochs, seeds {', '.join(map(str, seeds))}; mean ± sd over seeds. Evaluation, the same for all: "
        f"clean / PGD-20 / C&W-inf (l_inf margin PGD) accuracy on N={N_EVAL} test images (`test_jpeg.npz`), "
        f"AutoAttack standard on N={AA_N}, eps 8/255; ECE (20 bins) on the clean N={N_EVAL}; FID of "
        f"{PER_CLASS * 10} fresh samples (Eq. 17 SGLD, 100 steps from the class Gaussians) and, for methods with a "
        f"replay buffer, of its states (up to {PER_CLASS * 10}; the CPU presets keep 256 chains, so N=256), "
        f"against {N_REF} training images (biased upward at this "
        "N: compare only within this page). OOD AUROC: log p(x) = -E(x) of the same clean test images against "
        f"{OOD_SETS.replace(',', ' and ')} images (`jeat evaluate --suite ood`, mean of the two, percent); '-' for "
        "rows recorded before that stage existed whose runs are gone. "
        + "".join(
            f"`{m}` starts from a `{s}` run of the same budget and seed (`--init`); its train time includes "
            "that run's. "
            for m, s in STARTS.items()
        )
        + "2 CPU cores; CPU threads per training run: "
        + _threads(records)
        + "; training autocast (amp=auto, resolved): "
        + (", ".join(sorted({str(r.get("amp")) for r in records.values() if r.get("amp")})) or "-")
        + " (none = fp32).",
        "",
        header,
        rule,
        *table,
        "",
        *ablations,
    ]
    text = "\n".join(L)
    notes = PAGE.with_name("LEADERBOARD_notes.md")
    if notes.exists():
        text += "\n" + notes.read_text()
    atomic_write_text(PAGE, text)
    return text


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
