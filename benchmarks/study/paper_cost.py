"""The paper-scale section of docs/RESULTS.md: each paper-* preset's one command, and what each model and claim
would cost on one GPU (measured passes per image x images seen x an *assumed* throughput)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402

RECORD = ROOT / "benchmarks" / "results" / "study_compute_paper.json"  # compute.py --paper


def paper_scale() -> list[str]:
    """The paper-scale presets and the one command each (they need GPUs; cost below)."""
    from jeat.presets import available_presets, get_preset  # noqa: PLC0415

    L = [
        "",
        "## Paper scale (not run here: needs GPUs)",
        "",
        "The same code with the papers' settings (WRN-28-10, Table 4; docs/TRAINING.md lists where a paper",
        "is silent and what we chose). On N GPUs keep the paper's batch with `--batch-size <batch>/N`:",
        "",
        "| preset | what | batch, epochs | command (one machine, 4 GPUs) |",
        "|---|---|---|---|",
    ]
    for name, desc in available_presets().items():
        if name.startswith("paper-"):
            cfg = get_preset(name)
            b = cfg.data.batch_size
            cmd = f"torchrun --nproc_per_node 4 -m jeat train --preset {name} --data DATA --batch-size {b // 4}"
            L.append(f"| `{name}` | {desc} | {b}, {cfg.epochs} | `{cmd}` |")
    L += [
        "",
        "Cost: one paper-scale JEAT run (K = 20 SGLD steps + 1 attack step per batch of 64, 156,200 steps) is",
        "32 TFLOP per step, 5.0e18 FLOP in all, counted from the WRN-28-10 forward measured here (5.24 GMAC",
        "per image). At an *assumed* 100-200 TFLOP/s sustained bf16 on one H100 that is about 7-14 GPU-hours;",
        "on CPU about 330 core-days. The arithmetic and the measured CPU timings are in",
        "`benchmarks/results/speed_cpu.md`; no GPU was available to measure it.",
    ]
    return L + claim_costs()


# Which study models each claim needs (claim number -> models), for its paper-scale cost.
CLAIM_MODELS = {1: ("standard",), 2: ("pgd",), 3: ("standard", "pgd", "jem", "jeat"),
                4: ("noise-8", "noise-16", "noise-24"), 5: ("pgd", "prejeat", "jem", "jeat"),
                6: ("standard", "pgd", "prejeat", "jem", "jeat", "robust-jem"), 7: ("standard", "pgd", "jeat"),
                8: ("robust-jem",), 9: ("standard", "jem", "jeat", "robust-jem")}  # fmt: skip
WRN_GFLOP = 2 * 5.24  # WRN-28-10 forward per 32x32 image, counted with hooks (speed_cpu.md)
ASSUMED_TFLOPS = (100, 200)  # sustained bf16 on one H100: an assumption (10-20 % of dense peak), never measured


def claim_costs() -> list[str]:
    """GPU-hours of each claim at the paper's scale: the paper-* presets' measured passes per image
    (compute.py --paper) x images seen x an assumed GPU throughput. Empty until compute.py --paper ran."""
    rec = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    if not rec:
        return []
    hours = {}
    L = ["", "What each model and claim would cost at the paper's scale on one GPU: the paper-* preset's network "
         "passes per training image (counted by `benchmarks/study/compute.py --paper` on a small network of the "
         "preset's family), images seen = (50,000 - its validation split) x its epochs, each pass about two "
         f"WRN-28-10 forwards ({WRN_GFLOP:.2f} GFLOP each) and the parameter step one more, at an *assumed* "
         f"{ASSUMED_TFLOPS[0]}-{ASSUMED_TFLOPS[1]} TFLOP/s. Not measured on a GPU: `benchmarks/gpu/gpu_check.py` "
         "times the paper presets' steps (its `steps` item) and turns these into measurements.", "",
         "| model | preset | passes per image | images seen | PFLOP | GPU-hours (assumed) |",
         "|---|---|---|---|---|---|"]  # fmt: skip
    for m, r in rec.items():
        seen = (50_000 - r["valid_size"]) * r["epochs"]
        pflop = seen * (2 * r["passes_per_image"] + 1) * WRN_GFLOP * 1e9 / 1e15
        hours[m] = [pflop * 1e15 / (t * 1e12) / 3600 for t in ASSUMED_TFLOPS]
        L.append(f"| {m} | `{r['preset']}` ({r['arch']}) | {r['passes_per_image']:g} | {seen:,} | {pflop:,.0f} | "
                 f"{hours[m][1]:.1f}-{hours[m][0]:.1f} |")  # fmt: skip
    L += ["", "| claim | models | GPU-hours (assumed) |", "|---|---|---|"]
    for c, models in CLAIM_MODELS.items():
        if all(m in hours for m in models):
            lo, hi = (sum(hours[m][i] for m in models) for i in (1, 0))
            L.append(f"| {c} | {', '.join(models)} | {lo:.1f}-{hi:.1f} |")
    return L
