"""The markdown page of benchmarks/speed/speed.py: machine description, tables, atomic save."""

from __future__ import annotations

import json
import os
import statistics
import sys
from pathlib import Path

from jeat.training.checkpoint import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import machine, publish  # noqa: E402,F401  (the speed probes import them from here)


def rusage_table(runs: dict[str, list[dict]], digits: int) -> list[str]:
    """Rows of the cpu_malloc pages (allocator.py, eval_allocator.py): per setting, median (min-max) over
    its processes of wall, user and system seconds (``digits`` decimals) and minor page faults."""
    rows = ["| cpu_malloc | wall s | user s | system s | minor page faults |", "|---|---|---|---|---|"]
    for setting, rs in runs.items():
        cells = []
        for key in ("wall", "user", "sys", "minflt"):
            vals, fmt = [r[key] for r in rs], ".0f" if key == "minflt" else f".{digits}f"
            cells.append(f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})")
        rows.append(f"| {setting} | " + " | ".join(cells) + " |")
    return rows


def report(res: dict, args, cmd: str, mode_order: list[str]) -> str:
    L = [
        "# Training-step speed against the algorithm's floor",
        "",
        f"Machine: {res['machine']}. Load average before / after: {res['load_before']} / {res['load_after']}.",
        "",
        f"Command: `{cmd}`",
        "",
        "Clock: "
        + (
            "process CPU time (one thread): other jobs on the machine inflate it little."
            if args.clock == "cpu"
            else "wall time."
        ),  # fmt: skip
        "",
        "Step = `Trainer.train_step` (the real loop). Floor = (attack + SGLD input gradients) x t(grad_x) "
        "+ t(parameter step with F forwards, backward, optimizer step), each timed alone, interleaved "
        f"with the step over {args.rounds} rounds (medians; the ratio range is over rounds). Synthetic "
        f"32x32 data, batch {args.batch}, settings of each method's `cpu-*` preset (model, attack, K).",
        "",
        "**The machine is shared (2 cores, other jobs running): absolute images/s are noisy and "
        "only comparable within one table; the step/floor ratios are measured under the same load and "
        "are what matters.**",
        "",
        "| mode | method | arch | attack + SGLD grads | F | step ms | floor ms | step/floor (range) | img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["methods"]:
        if "error" in r:
            L.append(f"| {r['mode']} | {r['method']} | failed: {r['error'][:200]} |||||||")
            continue
        L.append(f"| {r['mode']} | {r['method']} | {r['arch']} | {r['attack_steps']} + {r['sgld_steps']} | "
                 f"{r['forwards']} | {r['step_s'] * 1e3:.0f} | {r['floor_s'] * 1e3:.0f} | "
                 f"**{r['ratio']:.2f}** ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | "
                 f"{r['images_per_s']:.0f} |")  # fmt: skip
    if res["sampling"]:
        k = args.sample_steps
        L += ["", f"## Sampling: {k}-step Langevin (eval mode) vs {k} x t(grad_x)", "",
              "| mode | arch | batch | K | sample ms | floor ms | ratio | img/s |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in res["sampling"]:
            L.append(f"| {r['mode']} | {r['arch']} | {r['batch']} | {r['steps']} | {r['sample_s'] * 1e3:.0f} | "
                     f"{r['floor_s'] * 1e3:.0f} | **{r['ratio']:.2f}** | {r['images_per_s']:.0f} |")  # fmt: skip
    modes = sorted({r["mode"] for r in res["methods"]}, key=mode_order.index)
    if len(modes) > 1:
        L += ["", "## Precision / compile: images/s of the step relative to fp32", "",
              "| method | " + " | ".join(modes) + " |", "|---" * (len(modes) + 1) + "|"]  # fmt: skip
        by = {(r["method"], r["mode"]): r for r in res["methods"] if "error" not in r}
        for m in dict.fromkeys(r["method"] for r in res["methods"]):
            base = by.get((m, "fp32"))
            cells = [f"{by[(m, md)]['images_per_s'] / base['images_per_s']:.2f}x" if base and (m, md) in by else "-"
                     for md in modes]  # fmt: skip
            L.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


def save(res: dict, args, cmd: str, mode_order: list[str]) -> str:
    """Write the report so far (a long run keeps its finished rows if it is stopped)."""
    res["load_after"] = [round(v, 1) for v in os.getloadavg()]
    text = report(res, args, cmd, mode_order)
    if args.out:
        atomic_write_text(Path(args.out), text)
        atomic_write_text(Path(args.out).with_suffix(".json"), json.dumps(res, indent=2) + "\n")
    return text
