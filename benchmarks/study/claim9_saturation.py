"""Claim 9: do the EBM runs whose log p(x) detects synthetic images share a training regime? (issue 37)

    python benchmarks/study/claim9_saturation.py --group digits28 RUN_ROOT [RUN_ROOT ...]

Joins a group of ``benchmarks/results/claim9_ood.json`` (each run's AUROCs, written by claim9_ood.py) with the
runs' own training curves: for every energy-based run of the group found under a RUN_ROOT (a folder holding
run folders, searched to any depth by the run's name), its mean energy gap E(x_data) - E(x~) per epoch and
whether :func:`jeat.training.summary.saturation_reason` calls it saturated (the gap pinned at the energy L2's
optimum -px_weight / energy_l2 over the second half of training) with the guard's default threshold. Writes
``benchmarks/results/claim9_saturation.md``: one row a run, and the log p(x) AUROC (mean of the group's sets)
of the saturated runs against the others. Runs whose folder is not found are listed, not guessed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402

from jeat.atomic import atomic_write_text  # noqa: E402
from jeat.config import GuardConfig  # noqa: E402
from jeat.training.summary import saturation_reason  # noqa: E402

RECORD = ROOT / "benchmarks" / "results" / "claim9_ood.json"
PAGE = ROOT / "benchmarks" / "results" / "claim9_saturation.md"


def find_run(name: str, roots: list[Path]) -> Path | None:
    """The first folder called ``name`` below a root that holds a run (config.json and metrics.jsonl)."""
    for root in roots:
        for cfg in sorted(root.rglob(f"{name}/config.json")):
            if (cfg.parent / "metrics.jsonl").is_file():
                return cfg.parent
    return None


def judge(run: Path, share: float) -> tuple[list[float], bool] | None:
    """The run's per-epoch mean energy gaps and whether it saturated; None for a run with no energy L2 or no gap."""
    method = json.loads((run / "config.json").read_text())["method"]
    alpha = method.get("energy_l2", 0.0)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    epochs = [r for r in map(json.loads, lines) if r.get("kind") == "epoch" and "train_energy_gap" in r]
    if alpha <= 0 or not epochs:
        return None
    return [r["train_energy_gap"] for r in epochs], bool(
        saturation_reason(epochs, method.get("px_weight", 1.0) / alpha, share)
    )


def spread(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = f" ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else ""
    return f"{statistics.fmean(xs):.1f}{sd} (n={len(xs)}; {min(xs):.1f}-{max(xs):.1f})"


def report(group: str, records: list[dict], roots: list[Path], share: float) -> str:
    sets = list(records[0]["auroc"])
    rows, missing, by = [], [], {True: [], False: []}
    for r in records:
        run = find_run(r["run"], roots)
        if run is None:
            missing.append(r["run"])
            continue
        judged = judge(run, share)
        if judged is None:
            continue  # not an energy-based run with an energy L2 (standard, PGD-AT)
        gaps, saturated = judged
        auroc = [100 * r["auroc"][s]["logpx"] for s in sets]
        mean = statistics.fmean(auroc)
        by[saturated].append(mean)
        tail = " / ".join(f"{g:.1f}" for g in gaps[-4:])
        rows.append(f"| {r['run']} | {r['method']} | {'**yes**' if saturated else 'no'} | {tail} | "
                    f"{auroc[0]:.1f} / {auroc[1]:.1f} | {mean:.1f} |")  # fmt: skip
    lines = [
        f"# Claim 9: log p(x) as a detector against the training regime ({group})",
        "",
        f"Command: `python benchmarks/study/claim9_saturation.py --group {group.split()[0]} RUN_ROOT...`. AUROCs "
        f"from `claim9_ood.json` (500 test images against 500 of each set: {', '.join(sets)}); energy gaps "
        "from each run's metrics.jsonl. Saturated: the mean gap E(x_data) - E(x~) at or below "
        f"{share:g} x -px_weight / energy_l2 on every epoch of the second half (`jeat.training.summary."
        "saturation_reason`, the guard's default): the model tells data from its chains' samples apart completely.",
        "",
        "| run | method | saturated | gap, last 4 epochs | log p(x) AUROC uniform / gaussian | mean of the sets |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"log p(x) AUROC, mean of the sets, per run: saturated {spread(by[True])}; not saturated {spread(by[False])}.",
    ]
    if missing:
        lines += ["", f"Not found under the run roots (not judged): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--group", required=True, help="a claim9_ood.json group, by its first word (digits28, gray28)")
    ap.add_argument("roots", nargs="+", type=Path, help="folders holding the group's run folders")
    ap.add_argument("--out", type=Path, default=PAGE)
    args = ap.parse_args(argv)
    record = json.loads(RECORD.read_text())
    groups = [k for k in record if k.split()[0].rstrip(",") == args.group]
    if len(groups) != 1:
        ap.error(f"--group {args.group!r} names {len(groups)} groups of {RECORD.name}: {', '.join(record)}")
    page = report(groups[0], record[groups[0]], args.roots, GuardConfig().saturation_share)
    atomic_write_text(args.out, page)
    print(page)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
