"""docs/LEADERBOARD.md and benchmarks/results/leaderboard_cpu.json from the finished stages: each
run's numbers, mean ± sd over seeds, wall times, sample grids (the notes file is appended by hand)."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from pathlib import Path

import leaderboard_budget as B
from leaderboard_budget import (
    AA_N,
    BUDGET,
    COLUMNS,
    EPOCHS,
    METHODS,
    N_EVAL,
    N_REF,
    OOD_SETS,
    PER_CLASS,
    ROOT,
    STARTS,
    TRAIN_LIMIT,
    VARIANTS,
    load_json,
    preset,
    settings,
)

from jeat.training.checkpoint import atomic_write_text


def measures(run: Path) -> dict[str, float]:
    """The leaderboard's numbers of one run (percent, FID, ECE percent), where measured."""
    ev = load_json(run / "eval" / "metrics.json").get("suites", {})
    rob, cal = ev.get("robustness", {}), ev.get("calibration", {})
    fid = load_json(run / "gen-joint" / "eval" / "metrics.json").get("suites", {}).get("fid", {})
    out = {k: rob[k]["accuracy"] for k in ("clean", "pgd20", "cw_linf", "autoattack") if "accuracy" in rob.get(k, {})}
    if "fid" in fid:
        out["fid"] = fid["fid"]
    if "fid" in fid.get("buffer", {}):
        out["fid_buffer"] = fid["buffer"]["fid"]
    if "clean" in cal:
        out["ece"] = 100 * cal["clean"]["ece"]
    ood = load_json(run / "ood" / "metrics.json").get("suites", {}).get("ood", {})
    if "logpx" in ood.get("mean_auroc", {}):
        out["ood_auroc"] = 100 * ood["mean_auroc"]["logpx"]
    summary = load_json(run / "summary.json")
    if summary:
        out["train_min"] = summary.get("train_time_s", 0) / 60
        out["status"] = summary.get("status")
        if summary.get("threads"):  # recorded since 2026-12-01; train times depend on it
            out["threads"] = summary["threads"]
        if summary.get("hardware"):  # recorded since 2026-12-06: bf16 kernels differ between CPUs
            out["hardware"] = summary["hardware"]
        method, seed = run.name.rsplit("-s", 1)
        start = load_json(run.parent / f"{method}-start-s{seed}" / "summary.json")
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
    records = load_json(B.RESULTS).get("runs", {})
    stages = stage_records(out / "leaderboard.log")
    for m in methods:
        for s in seeds:
            run = out / f"{m}-s{s}"
            meas = measures(run)
            if not meas:
                continue  # not run here: keep what RESULTS holds
            fid_done = (run / "gen-joint" / "eval" / "metrics.json").is_file()
            amp = load_json(run / "config.json").get("amp")  # the resolved autocast (amp=auto), for the record
            records[run.name] = {"measures": meas, "fid_done": fid_done, "amp": amp, "stages": stages.get(run.name, [])}
    B.RESULTS.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(B.RESULTS, json.dumps({"budget": BUDGET, "runs": records}, indent=1, sort_keys=True) + "\n")
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
            B.IMG.mkdir(parents=True, exist_ok=True)
            shutil.copy(grid, B.IMG / f"{m}.png")
        # a committed grid is shown only beside the recorded run it came from
        img = f"![{m}](img/leaderboard/{m}.png)" if (B.IMG / f"{m}.png").is_file() and recs[0].get("fid_done") else "-"
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
        "Produced by `python benchmarks/leaderboard/leaderboard.py --data ../shared/data` (resumable; this page is "
        "rewritten from the finished stages). Every run's numbers, commands and stage times: "
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
    notes = B.PAGE.with_name("LEADERBOARD_notes.md")
    if notes.exists():
        text += "\n" + notes.read_text()
    atomic_write_text(B.PAGE, text)
    return text
