"""Does bf16 change what a method learns? Every leaderboard method in fp32 and in bf16 autocast (issue 38).

    python benchmarks/precision/precision.py --data ../shared/data [--methods standard pgd jem] [--seeds 0 1 2]
    python benchmarks/precision/precision.py --report-only

Each (method, precision, seed) is a leaderboard run (benchmarks/leaderboard/leaderboard.py: the same budget and
evaluation) under its own name: ``<method>-fp32`` (``amp=none``) and ``<method>-bf16`` (``--set amp=bf16``),
both trained here, one after the other on one machine. The leaderboard's own fp32 rows are not reused:
most predate the validation split (issue 34: the 10,000 training images are now drawn from the 48,000
left after 2,000 are held out) and ran on another CPU. Records go to the leaderboard's RESULTS file under
those names; resumable as the leaderboard is. The page
``benchmarks/results/precision_cpu.md`` gives, per method and column, both means, their difference
bf16 - fp32 with its standard error sqrt(s_32^2 / n_32 + s_16^2 / n_16), and a verdict: ``neutral``
when the difference is within 2 standard errors, ``differs`` otherwise, ``-`` with fewer than two
seeds on a side. Two-seed cells are coarse: a verdict is only as strong as its N.

bf16 is only measured where the CPU computes it natively (AMX or AVX512-BF16): emulated bf16 runs
about 10x slower and measures the emulation. DAT's bf16 row starts from the fp32 PGD start of the same
seed (the leaderboard's stage one is shared).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "leaderboard"))  # the runs are leaderboard runs

import leaderboard_budget as B  # noqa: E402
import torch  # noqa: E402
from leaderboard import Leaderboard  # noqa: E402
from leaderboard_budget import COLUMNS, METHODS, ROOT, load_json  # noqa: E402
from leaderboard_page import collect  # noqa: E402
from shared import write_page  # noqa: E402  (benchmarks/ is on the path through leaderboard_budget)

from jeat.training.precision import native_bf16

PAGE = ROOT / "benchmarks" / "results" / "precision_cpu.md"
BF16, FP32 = "-bf16", "-fp32"


def register_variants(methods: list[str]) -> None:
    """Each method's two precisions as leaderboard variants (same preset and budget)."""
    for m in methods:
        B.VARIANTS[m + FP32] = (m, ["--set", "amp=none"])
        B.VARIANTS[m + BF16] = (m, ["--set", "amp=bf16"])


def compare(a: list[float], b: list[float]) -> dict:
    """bf16 (``b``) against fp32 (``a``): means, sds, the difference of means, its standard error, a verdict."""
    out: dict = {"n32": len(a), "n16": len(b)}
    if a:
        out["mean32"] = statistics.fmean(a)
    if b:
        out["mean16"] = statistics.fmean(b)
    if len(a) >= 2 and len(b) >= 2:
        s32, s16 = statistics.stdev(a), statistics.stdev(b)
        diff = out["mean16"] - out["mean32"]
        se = math.sqrt(s32**2 / len(a) + s16**2 / len(b))
        out.update(sd32=s32, sd16=s16, diff=diff, se=se, verdict="neutral" if abs(diff) <= 2 * se else "differs")
    else:
        out["verdict"] = "-"
    return out


# A difference the 2-SE rule calls neutral but that points against bf16 by at least this much is *material*:
# the method is then held in fp32 (``BF16_HELD``) rather than trusted, since within 2 SE with wide errors is
# absence of evidence. Sign: +1 where higher is better. The sizes are the noise levels this page's budget
# shows between seeds of one precision (FID at N=500 moves ~30 between model seeds, docs/LEADERBOARD.md),
# chosen after jem's rows (2026-12-06); an equivalence margin per column from the issue's owner replaces them.
MATERIAL = {"clean": (5.0, +1), "pgd20": (5.0, +1), "cw_linf": (5.0, +1), "autoattack": (5.0, +1),
            "fid": (30.0, -1), "ece": (3.0, -1), "ood_auroc": (10.0, +1)}  # fmt: skip


def material(column: str, cmp: dict) -> bool:
    """Whether a difference points against bf16 by at least the column's material size."""
    if "diff" not in cmp or column not in MATERIAL:
        return False
    size, better = MATERIAL[column]
    return -better * cmp["diff"] >= size


def null_rates(seeds: int = 3, columns: int = 7, trials: int = 100_000, seed: int = 0) -> tuple[float, float]:
    """How often :func:`compare`'s 2-SE rule says *differs* when both precisions draw from one normal
    distribution: per column, and for at least one of ``columns`` independent columns (a method's verdict).
    With 3 seeds a side the standard error is itself a 3-sample estimate, so the per-column rate is the
    t-distribution's (about 12 %), not the normal's 5 %."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(2, trials, columns, seeds))
    se = np.sqrt(a.var(-1, ddof=1) / seeds + b.var(-1, ddof=1) / seeds)
    flag = np.abs(b.mean(-1) - a.mean(-1)) > 2 * se
    return float(flag.mean()), float(flag.any(-1).mean())


def values(records: dict, method: str, seeds: list[int], column: str) -> list[float]:
    vals = []
    for s in seeds:
        m = records.get(f"{method}-s{s}", {}).get("measures", {})
        if column in m and m.get("status") != "diverged":
            vals.append(float(m[column]))
    return vals


def cell(c: dict) -> str:
    """A :func:`compare` result: fp32 / bf16 means ± sds, the difference ± its standard error, the verdict;
    with under two seeds a side, each side's mean and count ("-" for a side with none)."""
    if "diff" not in c:
        got = [f"{c[k]:.1f} (n={c[n]})" if k in c else "-" for k, n in (("mean32", "n32"), ("mean16", "n16"))]
        return " / ".join(got)
    return (f"{c['mean32']:.1f} ± {c['sd32']:.1f} / {c['mean16']:.1f} ± {c['sd16']:.1f}: "
            f"{c['diff']:+.1f} ± {c['se']:.1f} **{c['verdict']}**")  # fmt: skip


def _time_cell(c: dict) -> str:
    """Train minutes, fp32 / bf16, without a verdict: speed is not a quality column, and these runs shared
    the cores with other jobs (the page's notes), so the ratio is indicative only."""
    got = [f"{c[k]:.1f}" if k in c else "-" for k in ("mean32", "mean16")]
    return " / ".join(got)


def _null_line(seeds: int, columns: int) -> str:
    one, any_ = null_rates(seeds, columns)
    return (
        f"How often this rule errs toward fp32 (`null_rates`, a simulation): with {seeds} seeds a side and no "
        f"difference at all, it calls a column *differs* {100 * one:.0f} % of the time, and at least one of "
        f"{columns} independent quality columns of a method {100 * any_:.0f} % of the time. A *differs* verdict "
        "on one column is therefore weak evidence; it keeps the method in fp32, the precision its published "
        "numbers hold in, which costs speed, not correctness."
    )


def report(methods: list[str], seeds: list[int], cmdline: str) -> str:
    records = load_json(B.RESULTS).get("runs", {})
    cols = [c for c in COLUMNS if c[0] != "fid_buffer"] + [("train_min", "train min, fp32 / bf16 (no verdict)")]
    lines = ["# Precision: bf16 autocast against fp32 at the leaderboard's budget (issue 38)", "",
             f"Command: `{cmdline}`. Every run is a leaderboard run (docs/LEADERBOARD.md: budget, evaluation, N), "
             "both precisions trained here on one machine under the validation rule: fp32 = `amp=none`, bf16 = "
             "`--set amp=bf16` (autocast on a CPU with native bf16). Each cell: fp32 "
             "mean ± sd / bf16 mean ± sd over the seeds each has, then bf16 - fp32 ± its standard error and the "
             "verdict (neutral: within 2 standard errors; *material*: neutral, but against bf16 by at least "
             + ", ".join(f"{v[0]:g} {k}" for k, v in MATERIAL.items()) + " (then `amp=auto` holds the method in "
             "fp32). Seeds: " + ", ".join(map(str, seeds)) + ".", "",
             _null_line(len(seeds), len(cols) - 1), "",
             "| method | " + " | ".join(name for _, name in cols) + " |",
             "|---|" + "---|" * len(cols)]  # fmt: skip
    for m in methods:
        cells = []
        for k, _ in cols:
            c = compare(values(records, m + FP32, seeds, k), values(records, m + BF16, seeds, k))
            cells.append(_time_cell(c) if k == "train_min" else cell(c) + (" *material*" if material(k, c) else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return write_page(PAGE, lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/leaderboard", help="the leaderboard's run folder (fp32 runs are shared)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    cmdline = "python benchmarks/precision/precision.py " + " ".join(x for x in sys.argv[1:] if x != "--report-only")
    register_variants(a.methods)
    if not a.report_only:
        if not native_bf16(torch.device("cpu")):
            sys.exit("this CPU has no native bf16 (amx_bf16 / avx512_bf16): bf16 would be emulated, ~10x slower")
        args = argparse.Namespace(data=a.data, out=a.out, seeds=a.seeds, methods=[x for m in a.methods
                                  for x in (m + FP32, m + BF16)], remeasure=[])  # fmt: skip
        board = Leaderboard(args)
        for seed in a.seeds:  # every method's pair at one seed before the next seed
            for m in a.methods:
                for name in (m + FP32, m + BF16):
                    if board.recorded(name, seed):
                        continue
                    t0 = time.perf_counter()
                    if board.train(name, seed) and board.evaluate(name, seed) and board.generate_and_fid(name, seed):
                        board.ood(name, seed)
                    collect(Path(a.out), [name], [seed])  # into RESULTS (the leaderboard page is not rewritten)
                    print(f"{name} seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
                report(a.methods, a.seeds, cmdline)
    print(report(a.methods, a.seeds, cmdline))


if __name__ == "__main__":
    main()
