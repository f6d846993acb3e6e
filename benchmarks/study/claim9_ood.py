"""Claim 9 (JEM's Table 3): is a hybrid's log p(x) the better out-of-distribution detector? (issue 37)

    python benchmarks/study/claim9_ood.py --group "leaderboard budget" ../runs/leaderboard/standard-fp32-s* ...
    python benchmarks/study/claim9_ood.py --report-only

For every finished run given, ``jeat evaluate RUN --suite ood`` on the first 500 test images against every
synthetic set that applies to CIFAR-10 (uniform, gaussian, constant, interp, grayscale, permuted; CIFAR-100
and SVHN are not on this machine) with three scores: log p(x) = -E(x), max p(y|x) and the gradient-norm
score (JEM's Table 3 columns). ``--sets`` narrows the sets: single-channel data (the stability study's
gray28) has no ``grayscale`` or ``permuted`` set, and a group's "mean of sets" is over the sets its runs were
scored on (named in its heading). Each run's numbers go to RUN/ood-claim9/metrics.json; the page gives, per
group and method, the AUROC (in-distribution = positive) of each score averaged over the sets, mean ± sd
over the runs, and per set. An AUROC under 50 % means the score rates the out-of-distribution images as
*more* likely than the test images. Resumable: a run whose metrics exist is not evaluated again. A run
whose summary says ``diverged`` or ``failed`` is left out with a message (and dropped from its group).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402

from jeat.training.checkpoint import atomic_write_text  # noqa: E402

SETS = ("uniform", "gaussian", "constant", "interp", "grayscale", "permuted")
SCORES = ("logpx", "maxprob", "grad_norm")
N = 500
PAGE = ROOT / "benchmarks" / "results" / "claim9_ood.md"
RECORD = PAGE.with_suffix(".json")


def command(run: Path, data: str, sets: tuple[str, ...] = SETS) -> list[str]:
    """The evaluation of one run (also a stage of benchmarks/study/study.py)."""
    return ["jeat", "evaluate", str(run), "--suite", "ood", "--n", str(N), "--data", data, "--out",
            str(run / "ood-claim9"), "--no-progress", "--set", "ood.sets=" + ",".join(sets),
            "--set", "ood.scores=" + ",".join(SCORES)]  # fmt: skip


# A run the guard stopped (diverged) or that never learned (failed) has no detector to judge: scoring it
# would put a broken model's AUROC into a method's mean.
UNSCORED = ("diverged", "failed")


def evaluate(run: Path, data: str, sets: tuple[str, ...] = SETS) -> dict | None:
    status = json.loads((run / "summary.json").read_text()).get("status")
    if status in UNSCORED:
        print(f"{run.name}: not scored (status {status}: {run / 'summary.json'})", file=sys.stderr)
        return None
    out = run / "ood-claim9"
    if not (out / "metrics.json").exists() and subprocess.call(command(run, data, sets)) != 0:
        return None
    m = json.loads((out / "metrics.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    sets = m["suites"]["ood"]["sets"]
    return {"run": run.name, "method": summary["method"], "amp": summary.get("amp"),
            "train_images": summary.get("train_images"), "epochs": summary.get("epochs"),
            "test_acc": summary.get("test_acc"),
            "auroc": {s: {k: sets[s][k]["auroc"] for k in SCORES} for s in SETS if s in sets}}  # fmt: skip


def _ms(vals: list[float]) -> str:
    if not vals:
        return "-"
    sd = f" ± {statistics.stdev(vals) * 100:.1f}" if len(vals) > 1 else ""
    return f"{statistics.fmean(vals) * 100:.1f}{sd}"


def report(record: dict) -> str:
    lines = ["# Claim 9: out-of-distribution detection by log p(x), max p(y|x) and the gradient norm", "",
             f"Command: `python benchmarks/study/claim9_ood.py` ({__doc__.splitlines()[0]}). AUROC in %, test images "
             f"(first {N} of a fixed shuffle) positive, {N} images per set; mean ± sd over the runs of a method. "
             "Averaged over the synthetic sets a group's runs were scored on (all six unless its heading says "
             "otherwise), then per set. Under 50: the score ranks the out-of-distribution images above the test "
             "images.", ""]  # fmt: skip
    for group, runs in record.items():
        methods = sorted({r.get("label", r["method"]) for r in runs})
        sets = [s for s in SETS if any(s in r["auroc"] for r in runs)]
        heading = group if len(sets) == len(SETS) else f"{group}; sets: {', '.join(sets)}"
        lines += [f"## {heading}", "", "| method | runs | test acc | "
                  + " | ".join(f"{s} (mean of sets)" for s in SCORES)
                  + " | " + " | ".join(f"{s}: log p(x) / max p / grad" for s in sets) + " |",
                  "|---|---|---|" + "---|" * (len(SCORES) + len(sets))]  # fmt: skip
        for m in methods:
            rs = [r for r in runs if r.get("label", r["method"]) == m]
            mean_of_sets = [_ms([statistics.fmean(r["auroc"][s][k] for s in r["auroc"]) for r in rs]) for k in SCORES]
            per_set = [" / ".join(_ms([r["auroc"][s][k] for r in rs if s in r["auroc"]]) for k in SCORES)
                       for s in sets]  # fmt: skip
            names = ", ".join(r["run"] for r in rs)
            lines.append(f"| {m} | {len(rs)} ({names}) | {_ms([r['test_acc'] for r in rs])} | "
                         + " | ".join(mean_of_sets) + " | " + " | ".join(per_set) + " |")  # fmt: skip
        lines.append("")
    notes = PAGE.with_name(PAGE.stem + "_notes.md")
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="*", type=Path, help="finished run directories")
    p.add_argument("--group", default="runs", help="the table these runs go in (a budget)")
    p.add_argument("--data", default="../shared/data")
    p.add_argument(
        "--by-name",
        action="store_true",
        help="label these runs by their name without the seed (ablation arms of one method)",
    )
    p.add_argument("--sets", default=",".join(SETS), help="comma-separated synthetic sets (default: all six)")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    sets = tuple(a.sets.split(","))
    if unknown := [s for s in sets if s not in SETS]:
        p.error(f"--sets: unknown {unknown}; choose from {', '.join(SETS)}")
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    if not a.report_only:
        given = [run for run in a.runs if (run / "summary.json").exists()]
        done = [r for run in given if (r := evaluate(run, a.data, sets))]
        for r in done if a.by_name else []:
            r["label"] = re.sub(r"-s\d+$", "", r["run"])
        keep = [r for r in record.get(a.group, []) if r["run"] not in {run.name for run in given}]
        record[a.group] = keep + done
        atomic_write_text(RECORD, json.dumps(record, indent=1) + "\n")
    text = report(record)
    atomic_write_text(PAGE, text)
    print(text)


if __name__ == "__main__":
    main()
