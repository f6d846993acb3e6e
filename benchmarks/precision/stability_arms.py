"""The stability study's EBM runs in both precisions (issue 38): collapses, guard events and final accuracy.

    python benchmarks/precision/stability_arms.py [--bf16 benchmarks/results/stability_cpu.md]
        [--fp32 benchmarks/results/stability_cpu_fp32.md] [--seeds 0 1 2]

Both sides are pages of ``benchmarks/stability/stability.py`` at one budget (12,000 images x 3 epochs on
CIFAR-10 and gray28, 31 epochs of digits28's 1,197): the bf16 page ran with ``--amp bf16`` (what
``amp=auto`` chose on an AMX CPU then), the fp32 page with ``--amp none``. The bf16 runs' folders are gone,
so the pages' tables are the record both sides are read from: one parser, the same columns. Only the
``default`` arm (the guard acting, what a user gets) is compared: the recovery-off arm reruns only runs
with guard events, so its seeds are not a sample of the method.

Per method and data set: final test accuracy (fp32 and bf16 mean ± sd, the difference with its standard
error and the precision study's 2-SE verdict, ``precision.compare``), collapsed runs (the stability
judge's verdict, with its clear ones), runs with guard events, runs the guard rolled back, stopped, or that
ended at chance; per data set the same counts with Fisher's exact test of one rate for both sides. Writes
``benchmarks/results/precision_stability_cpu.md`` (with ``precision_stability_cpu_notes.md`` if present).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from precision import cell, compare  # noqa: E402
from shared import write_page  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
PAGE = RESULTS / "precision_stability_cpu.md"
METHODS = ("jem", "jeat", "jempp", "robust-jem")
DATASETS = ("cifar10", "gray28", "digits28")
HEADER = ("arm", "method", "data", "seed", "test acc per epoch", "valid acc per epoch (the guard's)", "best",
          "final", "collapsed", "guard events -> action", "status", "train time")  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One row of a stability page."""

    arm: str
    method: str
    data: str
    seed: int
    final: float
    collapsed: bool
    borderline: bool
    events: bool
    rolled_back: bool  # from the events, not the status: a rolled-back run that then stalls or fails says so
    status: str


def read_page(page: Path) -> list[Run]:
    """The run rows of a stability page's first table. Raises ValueError naming the page when its table is
    not the one ``stability.py`` writes (a changed column would otherwise be read as another)."""
    lines = page.read_text().splitlines()
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines if ln.startswith("|")]
    try:
        start = next(i for i, row in enumerate(cells) if tuple(row) == HEADER)
    except StopIteration:
        raise ValueError(f"{page}: no run table with the columns {' | '.join(HEADER)}") from None
    runs = []
    for row in cells[start + 2 :]:
        if len(row) != len(HEADER) or not row[3].isdigit():
            break  # the table's end (the next table has other columns)
        if not row[7]:
            continue  # a run not finished yet, or a recovery-off twin that stands in for its default run
        verdict = row[8]
        runs.append(Run(arm=row[0], method=row[1], data=row[2], seed=int(row[3]), final=float(row[7]),
                        collapsed=verdict.startswith("**yes**"), borderline="borderline" in verdict,
                        events=row[9] != "none", rolled_back="rollback" in row[9], status=row[10]))  # fmt: skip
    return runs


def fisher_exact(a: int, n1: int, b: int, n2: int) -> float:
    """Two-sided Fisher exact p-value that ``a`` of ``n1`` and ``b`` of ``n2`` come from one rate: the
    hypergeometric probability of every table with the same margins that is no more likely than the one seen.
    Counts of a dozen runs a side are too few for a normal approximation."""
    k, n = a + b, n1 + n2
    if not (0 <= a <= n1 and 0 <= b <= n2) or n == 0:
        raise ValueError(f"counts {a} of {n1} and {b} of {n2} are not a 2x2 table")
    prob = lambda x: math.comb(n1, x) * math.comb(n2, k - x) / math.comb(n, k)  # noqa: E731
    probs = [prob(x) for x in range(max(0, k - n2), min(k, n1) + 1)]
    seen = prob(a)
    return min(1.0, sum(q for q in probs if q <= seen * (1 + 1e-7)))


# Counted columns (header, which runs): the per-method table shows all of them, the per-data-set totals
# those in TOTALS, each with Fisher's exact test.
COUNTS = {
    "collapsed": lambda r: r.collapsed,
    "clear collapses": lambda r: r.collapsed and not r.borderline,
    "runs with guard events": lambda r: r.events,
    # rolled back, then finished having learned: a later `stalled` still counts, `diverged` / `failed` do not
    "rolled back (recovered)": lambda r: r.rolled_back and r.status not in ("diverged", "failed"),
    "stopped by the guard (diverged)": lambda r: r.status == "diverged",
    "ended at chance (failed)": lambda r: r.status == "failed",
}
TOTALS = ("collapsed", "runs with guard events", "stopped by the guard (diverged)", "ended at chance (failed)")


def _count(runs: list[Run], what) -> str:
    return f"{sum(1 for r in runs if what(r))} of {len(runs)}" if runs else "-"


def rows(fp32: list[Run], bf16: list[Run], seeds: list[int]) -> list[str]:
    """One table row per (method, data set) that either page has."""
    out = []
    for d in DATASETS:
        for m in METHODS:
            pick = [[r for r in side if (r.arm, r.method, r.data) == ("default", m, d) and r.seed in seeds]
                    for side in (fp32, bf16)]  # fmt: skip
            if not any(pick):
                continue
            a, b = pick
            acc = compare([r.final for r in a], [r.final for r in b])
            cells = [cell(acc)] + [f"{_count(a, what)} / {_count(b, what)}" for what in COUNTS.values()]
            out.append(f"| {m} | {d} | {len(a)} / {len(b)} | " + " | ".join(cells) + " |")
    return out


def totals(fp32: list[Run], bf16: list[Run], seeds: list[int]) -> list[str]:
    out = []
    for d in DATASETS:
        a, b = ([r for r in side if r.arm == "default" and r.data == d and r.seed in seeds and r.method in METHODS]
                for side in (fp32, bf16))  # fmt: skip
        if a or b:
            cells = []
            for what in map(COUNTS.get, TOTALS):
                cells.append(f"{_count(a, what)} / {_count(b, what)}")
                if a and b:
                    p = fisher_exact(sum(map(what, a)), len(a), sum(map(what, b)), len(b))
                    cells[-1] += f" (p = {p:.2f})"
            out.append(f"| {d} | {len(a)} / {len(b)} | " + " | ".join(cells) + " |")
    return out


def _header(*names: str) -> str:
    return "| " + " | ".join(names) + " |\n|" + "---|" * len(names)


def report(fp32_page: Path, bf16_page: Path, seeds: list[int], cmdline: str, page: Path = PAGE) -> str:
    fp32, bf16 = read_page(fp32_page), read_page(bf16_page)
    rel = lambda p: p.resolve().relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p  # noqa: E731
    lines = ["# Precision: the stability study's EBM runs in fp32 and in bf16 (issue 38)", "",
             f"Command: `{cmdline}`. Read from `{rel(fp32_page)}` (fp32, `--amp none`) and `{rel(bf16_page)}` "
             "(bf16 autocast, `--amp bf16`): the same budget, guard and judge (those pages say how each run is "
             "judged), the `default` arm (the guard acting), seeds " + ", ".join(map(str, seeds)) + ". Each "
             "cell is fp32 / bf16. Final test accuracy on 2,000 test images (digits28: 300): fp32 mean ± sd / "
             "bf16 mean ± sd, then bf16 - fp32 ± its standard error and the precision study's verdict (neutral: "
             "within 2 standard errors). Counts are runs of the runs each side has. Collapsed: lost what it had "
             "learned (the stability judge); ended at chance (`failed`): the run's own verdict, final validation "
             "accuracy within 5 points of chance, whether it ever learned or not.", "",
             _header("method", "data", "runs", "final test acc (%)", *COUNTS), *rows(fp32, bf16, seeds), "",
             "Per data set, every method together: p is the two-sided Fisher exact test that both precisions "
             "collapse (or call the guard, are stopped, end at chance) at one rate; a large p says these runs "
             "cannot tell the rates apart, not that they are equal.", "",
             _header("data", "runs", *TOTALS),
             *totals(fp32, bf16, seeds)]  # fmt: skip
    return write_page(page, lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fp32", type=Path, default=RESULTS / "stability_cpu_fp32.md")
    p.add_argument("--bf16", type=Path, default=RESULTS / "stability_cpu.md")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--page", type=Path, default=PAGE)
    a = p.parse_args()
    for f in (a.fp32, a.bf16):
        if not f.is_file():
            p.error(f"{f}: no such stability page (run benchmarks/stability/stability.py first)")
    cmdline = "python benchmarks/precision/stability_arms.py " + " ".join(sys.argv[1:])
    print(report(a.fp32, a.bf16, a.seeds, cmdline.strip(), a.page))


if __name__ == "__main__":
    main()
