"""What every leaderboard row gets: the methods and their presets, the training budget, the
evaluation's sizes and where the results live (benchmarks/leaderboard/leaderboard.py runs it, leaderboard_page.py
writes the page)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402

# method -> preset (its algorithm and hyper-parameters; the budget below replaces data and epochs)
METHODS = {
    "standard": "cpu-standard",
    "noise": "cpu-noise-8",
    "pgd": "cpu-pgd",
    "fgsm": "cpu-fgsm",
    "free": "cpu-free",  # the leaderboard's 3 epochs count as Free AT counts them: 3/4 of a pass, 4 replays each
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


def base(method: str) -> str:
    """The method a variant changes (a method is its own base)."""
    return VARIANTS[method][0] if method in VARIANTS else method


def settings(method: str) -> list[str]:
    return VARIANTS[method][1] if method in VARIANTS else []


def preset(method: str) -> str:
    return METHODS[base(method)]


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
