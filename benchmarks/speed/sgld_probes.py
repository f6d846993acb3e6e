"""Why the CPU presets of JEM and JEAT use a 256-chain buffer (issue 7): short probes.

Each probe is `jeat train` from ``cpu-jeat`` / ``cpu-jem`` / ``cpu-prejeat`` with the overrides
below, all on the same budget (5,000 CIFAR-10 training images, 3 epochs, batch 64, seed 0, test
accuracy on 2,000 test images). The table records the outcome, test accuracy and the -log p(x)
term's energy gap E(x_data) - E(x~) over training: a gap that runs far below 0 means the SGLD
negatives no longer track the model (the data/negative energies run apart), the prelude of
JEM's divergence. Settings that diverged were stopped by the guard.

    python benchmarks/speed/sgld_probes.py --data ../shared/data [--out runs/probe] [--report-only]

Results: ``benchmarks/results/sgld_probes_cpu.md``. Probes whose run directory already holds a
summary (or a divergence message) are not rerun.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "sgld_probes_cpu.md"
BUDGET = ["--epochs", "3", "--set", "data.train_limit=5000", "--set", "data.batch_size=64",
          "--set", "eval_robust_n=0", "--set", "data.test_limit=2000"]  # fmt: skip
OLD = ["method.sgld.buffer_size=10000", "method.sgld.steps=5"]  # the presets of session 1
ADAM = ["optim.name=adam", "optim.weight_decay=0"]
SGD = ["optim.name=sgd", "optim.lr=0.05", "optim.nesterov=true", "optim.weight_decay=5e-4"]
NEW = ["method.sgld.buffer_size=256", "method.sgld.steps=10"]
JEM_NET = ["model.arch=jem-cnn-small", "data.augment=jem"]
# name -> (preset, overrides)
PROBES = {
    "jeat-sgd": ("cpu-jeat", OLD),
    "jeat-adam1e-3": ("cpu-jeat", [*OLD, *ADAM, "optim.lr=1e-3"]),
    "jeat-adam1e-3-nobn": ("cpu-jeat", [*OLD, *ADAM, "optim.lr=1e-3", *JEM_NET]),
    "jeat-adam1e-4": ("cpu-jeat", [*OLD, *ADAM, "optim.lr=1e-4"]),
    "jeat-sgd-buf256-k10": ("cpu-jeat", NEW),
    "jeat-adam-buf256-k10": ("cpu-jeat", [*NEW, *ADAM, "optim.lr=1e-3"]),
    "jem-buf256-k10-lr1e-3": ("cpu-jem", [*NEW, *ADAM, "optim.lr=1e-3", *JEM_NET]),
    "jem-sgd-bn-buf256-k10": ("cpu-jem", [*NEW, *SGD]),
    "jem-sgd-nobn-buf256-k10": ("cpu-jem", [*NEW, *SGD, *JEM_NET]),
    "prejeat-ref": ("cpu-prejeat", []),
}


def command(name: str, data: str, out: str) -> list[str]:
    preset, sets = PROBES[name]
    cmd = ["jeat", "train", "--preset", preset, "--data", data, "--out", out, "--name", name, "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    return cmd + BUDGET


def outcome(run: Path) -> dict:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").open()] if (run / "metrics.jsonl").exists() else []
    gaps = [r["energy_gap"] for r in rows if r.get("kind") == "step" and "energy_gap" in r]
    res: dict = {"gap_last": gaps[-1] if gaps else None, "gap_min": min(gaps) if gaps else None}
    if (run / "summary.json").exists():
        res["status"] = "finished"
        res["test_acc"] = json.loads((run / "summary.json").read_text())["test_acc"]
    else:
        log = run.parent / f"{run.name}.out"
        text = log.read_text() if log.exists() else ""
        res["status"] = next((ln.split(": error: ")[1].split(". ")[0] for ln in text.splitlines() if "diverged" in ln),
                             "not run")  # fmt: skip
    return res


def report(out: Path, data: str) -> str:
    lines = [
        "# SGLD probes for JEM / JEAT at CPU scale",
        "",
        "Command: `python benchmarks/speed/sgld_probes.py --data ../shared/data` (one job at a time on 2 cores).",
        "Budget per probe: 5,000 training images, 3 epochs, batch 64, seed 0; test accuracy on 2,000 test images.",
        "Energy gap = E(x_data) - E(x~) of the -log p(x) term, logged every 50 steps (234 steps in all; for a",
        "diverged probe, the last value logged before the guard stopped it).",
        "",
        "| probe | preset + overrides | outcome | test acc | gap at end | lowest gap |",
        "|---|---|---|---|---|---|",
    ]
    fmt = lambda v, p="{:.2f}": "-" if v is None else p.format(v)  # noqa: E731
    for name, (preset, sets) in PROBES.items():
        r = outcome(out / name)
        acc = fmt(r.get("test_acc"), "{:.1%}")
        over = " ".join(sets) or "(preset)"
        lines.append(
            f"| {name} | `{preset}` {over} | {r['status']} | {acc} | {fmt(r['gap_last'])} | {fmt(r['gap_min'])} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--out", default="runs/probe")
    p.add_argument("--report-only", action="store_true")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        for name in PROBES:
            if outcome(out / name)["status"] != "not run":
                continue
            cmd = command(name, args.data, str(out))
            print("[probe]", shlex.join(cmd), flush=True)
            with (out / f"{name}.out").open("w") as f:
                subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
            RESULTS.write_text(report(out, args.data))
    RESULTS.write_text(report(out, args.data))
    print(RESULTS.read_text())


if __name__ == "__main__":
    main()
