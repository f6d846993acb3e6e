"""CPU benchmark of the training methods on real CIFAR-10 (issue 3).

Trains every method from its ``cpu-*`` preset (model, optimiser, attack and sampler settings)
for the same fixed budget -- ``--train-limit`` training images for ``--epochs`` epochs, seed 0
-- and records clean test accuracy, PGD-20 accuracy (eps 8/255, step 2/255, fp32, model in
eval mode) on ``--pgd-n`` test images, and training images/s. Results are written after every
method to ``benchmarks/results/methods_cpu.{json,md}`` with the command that produced them.

    python benchmarks/methods/methods_cpu.py --data ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import write_page  # noqa: E402

from jeat.presets import get_preset
from jeat.training import Trainer

METHODS = ("standard", "prejeat", "pgd", "jem", "jeat", "fgsm", "robust-jem")
RESULTS = Path(__file__).resolve().parents[1] / "results"


def settings(cfg) -> str:
    m = cfg.method
    o = cfg.optim
    parts = [cfg.model.arch, f"{o.name} lr {o.lr:g} {o.schedule}", f"batch {cfg.data.batch_size}"]
    if m.name in ("pgd", "fgsm", "prejeat", "jeat", "robust-jem"):
        a = m.attack
        steps = 1 if m.name == "fgsm" else a.steps
        energy = "joint" if m.name in ("prejeat", "jeat") else a.energy
        parts.append(f"attack {energy} eps {a.eps * 255:.3g}/255 step {a.step_size * 255:.3g}/255 x{steps}")
    if m.name in ("jem", "jeat", "robust-jem"):
        s = m.sgld
        parts.append(f"SGLD K={s.steps} step {s.step_size:g} noise {s.noise:g} buffer {s.buffer_size} "
                     f"rho {s.reinit_prob:g} init {s.init}{' cond' if s.class_conditional_buffer else ''}")  # fmt: skip
    return "; ".join(parts)


def write_results(rows: list[dict], meta: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "methods_cpu.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    lines = [
        "# Training methods on CPU (real CIFAR-10, fixed small budget)",
        "",
        f"Command: `{meta['command']}`",
        "",
        f"Budget: {meta['train_limit']} training images x {meta['epochs']} epochs per method (seed 0); clean accuracy "
        f"on {meta['test_limit']} test images; PGD-20 (l_inf eps 8/255, step 2/255, random start, CE, fp32, eval "
        f"mode) on the first {meta['pgd_n']} of them. Machine: {meta['machine']}, torch {meta['torch']}, "
        f"{meta['threads']} threads, shared with other jobs (timings are indicative). Date: {meta['date']}.",
        "",
        "| method | preset | clean acc | PGD-20 acc | train img/s | train time (s) | settings |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['preset']} | {r['clean_acc']:.3f} | {r['pgd20_acc']:.3f} | "
                     f"{r['images_per_s']:.1f} | {r['train_time_s']:.0f} | {r['settings']} |")  # fmt: skip
    write_page(RESULTS / "methods_cpu.md", lines)  # with methods_cpu_notes.md, the reading of the numbers


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("JEAT_DATA", "../shared/data"))
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--train-limit", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--test-limit", type=int, default=1000)
    p.add_argument("--pgd-n", type=int, default=250)
    p.add_argument("--out", default="runs/bench-methods", help="run directories (one per method)")
    args = p.parse_args(argv)

    meta = {
        "command": "python " + " ".join([os.path.relpath(__file__, Path.cwd()), *(argv or sys.argv[1:])]),
        "train_limit": args.train_limit, "epochs": args.epochs, "test_limit": args.test_limit, "pgd_n": args.pgd_n,
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__,
        "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%d"),
    }  # fmt: skip
    # Keep earlier rows of other methods measured with the same budget, so methods can be
    # (re)run one at a time; each row says when and how it was measured.
    budget = ("train_limit", "epochs", "test_limit", "pgd_n")
    old = RESULTS / "methods_cpu.json"
    prev = json.loads(old.read_text()) if old.is_file() else {}
    same = all(prev.get("meta", {}).get(k) == meta[k] for k in budget)
    rows: list[dict] = [r for r in prev.get("results", []) if same and r["method"] not in args.methods]
    if rows:
        meta["command"] = f"{prev['meta']['command']}` then `{meta['command']}"
    for method in args.methods:
        cfg = get_preset(f"cpu-{method}")
        cfg.device, cfg.seed, cfg.epochs = "cpu", 0, args.epochs
        cfg.data.root, cfg.data.train_limit, cfg.data.test_limit = args.data, args.train_limit, args.test_limit
        cfg.eval_robust_n, cfg.out_dir, cfg.name = args.pgd_n, args.out, method
        run_dir = Path(args.out) / method
        shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a continuation
        t0 = time.perf_counter()
        summary = Trainer(cfg, run_dir, progress=False).fit()
        wall = time.perf_counter() - t0
        n_images = summary["steps"] * cfg.data.batch_size
        row = {
            "method": method,
            "preset": cfg.preset,
            "clean_acc": summary["test_acc"],
            "pgd20_acc": summary["pgd20_acc"],
            "pgd20_n": summary["pgd20_n"],
            "images_per_s": n_images / summary["train_time_s"],
            "train_time_s": summary["train_time_s"],
            "wall_s": wall,
            "settings": settings(cfg),
            "date": meta["date"],
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        write_results(rows, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main())
