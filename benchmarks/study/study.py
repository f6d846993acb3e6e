"""The CPU-scale reproduction study (issue 7): train every model, measure, write docs/RESULTS.md.

    python benchmarks/study/study.py --data ../shared/data --out runs/study [--scale small|medium]
    python benchmarks/study/study.py --data ../shared/data --out runs/medium --scale medium --seeds 0 1
    python benchmarks/study/study.py --data DATA --out runs/paper --scale paper --seeds 0 1 --gpus 4 [--plan]

``--scale paper`` trains each model's paper-* preset as it stands, on GPUs (training under torchrun with the
preset's batch split over ``--gpus``; ``--plan`` prints the training commands and trains nothing).

With ``--seeds``, every model trains once per seed as ``<model>-s<seed>`` (the medium study: two seeds
each, issue 37); without it, one seed and the small study's names. Precision: each run's ``amp=auto``
(bf16 only for the methods the precision study measured neutral, fp32 otherwise; the run's
summary.json says which). Schedules: the CPU presets' one-cycle SGD spans the whole run, so its
peak and decay move with the epochs at either scale; no milestone is set by hand.

Every stage is one `jeat` command; a stage whose output already exists is skipped, so the
study is resumable (kill it and run the same command again). Started N times, the same command
runs N workers that share the runs (each takes the next run no worker holds). Commands and their wall
times go to OUT/study.log, each stage's output to its run's stages.log; docs/RESULTS.md is (re)written
from whatever stages have finished, and says which are missing. Nothing is tuned toward the papers' numbers.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
import claim9_ood  # noqa: E402
from shared import ROOT, Stages, archive_files, atomic_write_bytes, claimed  # noqa: E402
from study_plan import CHECKS, MODELS, OOD, SCALES, models_of, planned_config, preset_of  # noqa: E402
from study_runs import archive_run  # noqa: E402

from jeat.atomic import atomic_write_text

# (model, sampler, seed distribution): the generation runs the claims need.
GENERATIONS = [
    ("pgd", "ce"),
    ("pgd", "joint"),  # claim 2 (Eq. 16 vs Eq. 17) and 5 (AT)
    ("noise-8", "ce"),
    ("noise-16", "ce"),
    ("noise-24", "ce"),  # claim 4 (Fig. 5)
    ("prejeat", "joint"),
    ("jem", "joint"),
    ("jem-no-l2", "joint"),
    ("jeat", "joint"),  # claim 5 (Fig. 6)
    ("robust-jem", "joint"),
    ("jempp", "joint"),
    ("robust-jem", "combined"),  # claim 8, with the study's sampler
    ("robust-jem", "joint-paper"),
    ("robust-jem", "combined-paper"),  # claim 8 with the paper's inference (JEM++'s sampler, m=50 x n=5)
    ("standard", "ce"),
]
AUTOATTACK = ("standard", "pgd", "jem", "jeat", "prejeat", "robust-jem")
DENOISED = ("standard", "pgd", "jeat")  # claim 7's denoising
# "": `jeat denoise` defaults (sigma 0.1, 50 descent steps of 0.01). "-sgld": App. G.1's noise
# (variance 0.3 in JEM's [-1, 1] units = std sqrt(0.3)/2 in [0, 1]) and the study's Langevin sampler.
DENOISE = {"": [], "-sgld": ["--sigma", "0.274", "--steps", "100", "--step-size", "1.0", "--noise", "0.01"]}
SAMPLING = ["--seed-dist", "gaussian", "--steps", "100", "--step-size", "1.0", "--noise", "0.01", "--inference", "jeat"]
# "<sampler>-paper": Robust JEM's published inference, every setting from the paper (docs/GENERATION.md).
PAPER_SAMPLING = ["--inference", "paper"]


class Study:
    def __init__(self, args):
        self.args, self.scale = args, SCALES[args.scale]
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.log = self.out / "study.log"
        self.stages = Stages(self.log, "study")
        # The committed copy of what the page reads (study_runs.ARCHIVED), kept after every stage.
        archive = getattr(args, "archive", None)
        self.archive = Path(archive) if archive else ROOT / "benchmarks" / "results" / "study" / args.scale
        # the seeded study's runs page: beside the results pages, or beside an archive given elsewhere
        pages = Path(archive).parent if archive else ROOT / "benchmarks" / "results"
        self.runs_md = pages / f"study_{args.scale}_runs.md"
        # A fresh machine has no OUT/study.log, but the archive holds every earlier machine's commands and wall
        # times: continue it, or the first archived stage would replace that record with this machine's lines.
        kept = self.archive / self.log.name
        if not self.log.exists() and kept.is_file():
            atomic_write_bytes(self.log, lambda f: f.write(kept.read_bytes()))

    def sh(self, cmd: list[str], done: Path, skip_done: bool = True) -> bool:
        # the stage's run: the first folder under OUT; its stages' output goes to the run's stages.log
        run = done.relative_to(self.out).parts[0] if done.is_relative_to(self.out) else None
        ok = self.stages.sh(cmd, done, skip_done, output=self.out / run / "stages.log" if run else None)
        if ok and run:
            archive_run(self.out / run, self.archive / run)
            archive_files(self.out, self.archive, (self.log.name,))  # commands, exits, wall times
        return ok

    def run_dir(self, name: str) -> Path:
        return self.out / name

    def names(self, models) -> list[str]:
        """Run names: ``<model>-s<seed>`` per seed with ``--seeds``, else the model's own name."""
        if self.args.seeds is None:
            return list(models)
        return [f"{m}-s{s}" for s in self.args.seeds for m in models]

    @staticmethod
    def model_of(name: str) -> tuple[str, list[str]]:
        """(model, seed flags) of a run name."""
        base, _, seed = name.rpartition("-s")
        if base in MODELS and seed.isdigit():
            return base, ["--seed", seed]
        return name, []

    def train_command(self, name: str) -> list[str]:
        """The run's `jeat train` (its resume where a checkpoint waits): the scale's preset and budget."""
        launcher = self.launcher()
        if (self.run_dir(name) / "checkpoint.pt").exists() and not (self.run_dir(name) / "summary.json").exists():
            return [*launcher, "train", "--resume", str(self.run_dir(name)), "--no-progress"]
        model, seed = self.model_of(name)
        preset, extra = CHECKS[model] if model in CHECKS else preset_of(model, self.args.scale)
        if self.scale["presets"] == "paper":  # the preset's own budget, its batch split over the GPUs
            budget = ["--batch-size", str(self.per_gpu_batch(model))] if self.gpus() > 1 else []
        else:
            budget = ["--epochs", str(self.scale["epochs"]), "--set", f"data.train_limit={self.scale['train_limit']}"]
        return [*launcher, "train", "--preset", preset, "--data", self.args.data, "--out", str(self.out), "--name",
                name, "--no-progress", *budget, "--set", "eval_robust_n=0", *extra, *seed]  # fmt: skip

    def gpus(self) -> int:
        return getattr(self.args, "gpus", 1)  # main() refuses < 1

    def launcher(self) -> list[str]:
        """`jeat`, or `torchrun ... -m jeat` to train on several GPUs (docs/SCALE.md)."""
        n = self.gpus()
        return ["jeat"] if n == 1 else ["torchrun", "--standalone", "--nproc_per_node", str(n), "-m", "jeat"]

    def per_gpu_batch(self, model: str) -> int:
        """The paper's batch, split over the GPUs (each rank's data.batch_size; the global batch stays the
        paper's)."""
        batch = planned_config(model, self.args.scale).data.batch_size
        if batch % self.gpus():
            raise SystemExit(f"{model}: the paper's batch {batch} does not split over {self.gpus()} GPUs")
        return batch // self.gpus()

    def train(self, name: str) -> bool:
        return self.sh(self.train_command(name), self.run_dir(name) / "summary.json")

    def evaluate(self, name: str, suites: str, autoattack: bool = False) -> bool:
        s = self.scale
        ev = self.run_dir(name) / "eval"
        done = ev / f".done-{suites.replace(',', '-')}{'-aa' if autoattack else ''}"
        if done.exists():
            return True
        # AutoAttack (Square's 5000 queries) dominates CPU time: only on the models Table 2 compares.
        aa = [f"robustness.aa_n={s['n_aa']}"] if autoattack else ["robustness.autoattack=0"]
        cmd = [
            "jeat",
            "evaluate",
            str(self.run_dir(name)),
            "--suite",
            suites,
            "--n",
            str(s["n_eval"]),
            "--data",
            self.args.data,
            "--no-progress",
            "--name",
            name,
            "--set",
            aa[0],
            "--set",
            "fisher.n=200",
        ]
        ok = self.sh(cmd, ev / "report.md", skip_done=False)
        if ok:
            done.parent.mkdir(parents=True, exist_ok=True)
            done.touch()
        return ok

    def generate(self, name: str, sampler: str) -> Path | None:
        out = self.run_dir(name) / f"gen-{sampler}"
        cmd = [
            "jeat",
            "generate",
            str(self.run_dir(name)),
            "--sampler",
            sampler.removesuffix("-paper"),
            *(PAPER_SAMPLING if sampler.endswith("-paper") else SAMPLING),
            "--per-class",
            str(self.scale["per_class"]),
            "--data",
            self.args.data,
            "--out",
            str(out),
            "--no-progress",
        ]
        return out if self.sh(cmd, out / "samples.npz") else None

    def fid(self, name: str, sampler: str, gen: Path) -> bool:
        out = gen / "eval"
        cmd = [
            "jeat",
            "evaluate",
            str(self.run_dir(name)),
            "--suite",
            "fid",
            "--samples",
            str(gen / "samples.npz"),
            "--data",
            self.args.data,
            "--out",
            str(out),
            "--no-progress",
            "--name",
            f"{name}/{sampler}",
            "--set",
            f"fid.n_ref={self.scale['n_ref']}",
            "--set",
            f"fid.cache_dir={self.out / 'fid-cache'}",
        ]
        return self.sh(cmd, out / "metrics.json")

    def denoise(self, name: str, variant: str = "") -> bool:
        out = self.run_dir(name) / f"denoise{variant}"
        cmd = ["jeat", "denoise", str(self.run_dir(name)), "--n", "100", "--data", self.args.data, "--out", str(out)]
        cmd += DENOISE[variant]
        return self.sh(cmd, out / "metrics.json")

    def run_stages(self, name: str) -> bool:
        """Every stage of one run, in order; whether all of them succeeded."""
        model, _ = self.model_of(name)
        if not self.train(name):
            return False
        # One evaluation pass: AutoAttack joins PGD and C&W there (a later robustness-only pass would
        # replace the suite and attack every image with PGD and C&W again: jem-s0's pass without AutoAttack
        # took 251 s at small scale, one thread).
        ok = self.evaluate(name, "robustness,fisher,calibration", autoattack=model in AUTOATTACK)
        for sampler in (s for m, s in GENERATIONS if m == model):
            gen = self.generate(name, sampler)
            ok = bool(gen) and self.fid(name, sampler, gen) and ok
        if model in DENOISED:
            for variant in DENOISE:
                ok = self.denoise(name, variant) and ok
        if model in OOD:
            ood = self.run_dir(name) / "ood-claim9" / "metrics.json"
            ok = self.sh(claim9_ood.command(self.run_dir(name), self.args.data), ood) and ok
        return ok

    def complete(self, name: str) -> Path:
        """The archive's mark that every stage of ``name`` finished: a fresh machine (no run folders)
        skips the run instead of training it again."""
        return self.archive / name / "complete.txt"

    def run(self) -> None:
        # Run by run, every stage before the next run (seed 0 of every model first): a run is archived
        # complete or not at all, so a machine lost mid-study costs one run, not every run's evaluation.
        # Workers: the same command started N times (one thread each) shares the runs; each takes the next
        # run no other worker holds (OUT/claims/<run>, released when the run's stages end).
        for name in self.names(models_of(self.args.scale)):
            if self.complete(name).is_file():
                continue
            with claimed(self.out / "claims" / name) as mine:
                if not mine:
                    print(f"[study] {name}: held by another worker (OUT/claims/{name}); next run", flush=True)
                    continue
                if self.run_stages(name):
                    atomic_write_text(
                        self.complete(name), "every stage of study.py finished; results beside this file\n"
                    )
            if self.args.seeds is not None:
                self.runs_page()
        if self.args.seeds is None and self.scale["presets"] == "cpu":  # with --seeds: every model's second seed
            for name in CHECKS:
                with claimed(self.out / "claims" / name) as mine:
                    if mine:
                        self.train(name)

    def runs_page(self) -> Path:
        """A seeded study's runs page (how far each run got), from the run folders and the archive."""
        from study_runs import write_progress  # noqa: PLC0415

        page = self.runs_md
        for name in self.names(models_of(self.args.scale)):  # --report-only too: a run's results reach the archive
            if (self.out / name).is_dir():
                archive_run(self.out / name, self.archive / name)
        argv = " ".join(x for x in sys.argv[1:] if x != "--report-only")
        write_progress(self.out, self.names(models_of(self.args.scale)), page, argv, self.archive)
        return page


def refuse_without_gpus(args) -> None:
    """The paper scale on CPU would run for months (one paper-jeat run: about 330 core-days, docs/RESULTS.md's
    cost table): say so instead of starting it."""
    if SCALES[args.scale]["presets"] != "paper":
        return
    import torch  # noqa: PLC0415

    have = torch.cuda.device_count()
    if have < args.gpus:  # args.gpus >= 1
        sys.exit(
            f"--scale paper trains WRN-28-10s for 150-200 epochs and needs GPUs: {have} visible, "
            f"--gpus {args.gpus} asked. `--plan` prints what it would run; the smaller scales run on CPU."
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/study")
    p.add_argument("--scale", choices=sorted(SCALES), default="small")
    p.add_argument("--seeds", nargs="+", type=int, default=None, help="train every model per seed (<model>-s<seed>)")
    p.add_argument("--report-only", action="store_true", help="only rewrite docs/RESULTS.md from finished stages")
    p.add_argument("--archive", default=None,
                   help="where the committed copy of each run's results goes (default "
                        "benchmarks/results/study/<scale>; study_report.py reads it as a scale's folder)")  # fmt: skip
    p.add_argument("--gpus", type=int, default=1, help="train each run on this many GPUs (torchrun, one machine)")
    p.add_argument("--plan", action="store_true", help="print the training command of every unfinished run; run none")
    args = p.parse_args()
    if args.gpus < 1:
        p.error("--gpus must be >= 1")
    study = Study(args)
    if args.plan:
        for name in study.names(models_of(args.scale)):
            if not study.complete(name).is_file():
                print(shlex.join(study.train_command(name)))
        return
    if not args.report_only:
        refuse_without_gpus(args)
        study.run()
    from study_report import Scale, write_results  # noqa: PLC0415

    if args.seeds is not None:  # RESULTS.md shows one scale per seed-less study; a seeded study reports apart
        print(json.dumps({"runs": str(study.runs_page())}))
        return
    # never blank the page from nothing
    if not any((study.out / n / "summary.json").is_file() for n in models_of(args.scale)):
        sys.exit(f"{study.out}: no finished run of this study; docs/RESULTS.md left as it is")
    cmd = f"python benchmarks/study/study.py --data {args.data} --out {args.out} --scale {args.scale}"
    scale = Scale(args.scale, study.out, SCALES[args.scale])
    write_results([scale], ROOT / "docs" / "RESULTS.md", models_of(args.scale), list(CHECKS), cmd)
    print(json.dumps({"results": str(ROOT / "docs" / "RESULTS.md")}))


if __name__ == "__main__":
    main()
