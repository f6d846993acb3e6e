"""``jeat compare``: a side-by-side Markdown table of evaluated runs (like the papers' Tables 2-3)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="side-by-side table of evaluated runs (metrics.json from `jeat evaluate`)",
                       description="Print a Markdown table with one column per run: accuracy, PGD, C&W, AutoAttack, "
                       "Fisher scores, FID/IS, ECE - each with the N it was measured on.")  # fmt: skip
    p.add_argument("runs", nargs="+", help="run dirs (RUN/eval/metrics.json), eval dirs or metrics.json files")
    p.add_argument("--out", help="also write the table to this Markdown file")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation.report import compare_table, load_metrics
    from ..training.checkpoint import atomic_write_text

    table = compare_table([load_metrics(r) for r in args.runs])
    print(table)
    if args.out:
        atomic_write_text(args.out, table + "\n")
    return 0
