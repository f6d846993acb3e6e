"""Evaluate several runs with the same settings and print/write the side-by-side table.

    python benchmarks/methods/eval_models.py runs/cpu-standard runs/cpu-pgd runs/cpu-jeat \
        --suite robustness,calibration,fisher --n 1000 --out results/eval-cpu.md

Each run gets RUN/eval/metrics.json (or --eval-root/NAME/ when the run directories are not
yours to write into); the table is `jeat compare` of all of them. Same N, seed and settings for
every model, so the columns are comparable.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jeat.evaluation import compare_table, evaluate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--suite", default="robustness,calibration,fisher")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=250)
    p.add_argument("--device", default="auto")
    p.add_argument("--data")
    p.add_argument("--eval-root", help="write NAME/metrics.json here instead of RUN/eval/")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="SUITE.KEY=VALUE")
    p.add_argument("--out", help="write the Markdown table here too")
    a = p.parse_args()
    opts = dict(o.split("=", 1) for o in a.options)
    metrics = []
    for run in a.runs:
        out = Path(a.eval_root) / Path(run).name if a.eval_root else None
        metrics.append(evaluate(run, a.suite, a.n, a.batch_size, a.device, a.data, out_dir=out, options=opts))
    table = compare_table(metrics)
    print(table)
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(f"<!-- {' '.join(__import__('sys').argv)} -->\n{table}\n")


if __name__ == "__main__":
    main()
