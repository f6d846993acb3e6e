"""What ``cpu_malloc=cached`` saves in ``jeat evaluate`` (loading.apply_run_malloc), and that it changes
no number: one evaluation command in fresh processes with glibc's default malloc (``system``: the
call patched out) and with the run's setting (``cached``, as shipped), in interleaved pairs. Reports
wall, user and system seconds and minor page faults per process (getrusage: page faults and system time
do not drift with the machine's load the way wall time does) and whether every metric of the two arms
is identical (timings and output paths aside). Each process gets its own FID cache, so each computes the
reference features.

    python benchmarks/speed/eval_allocator.py --pairs 2 --out benchmarks/results/allocator_eval_cpu.md -- \
        RUN --suite robustness,fid --n 200 --samples RUN/gen-ce/samples.npz --set fid.n_ref=500 \
        --set robustness.autoattack=0 --data ../shared/data --no-progress
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from speed_report import publish, rusage_table

SETTINGS = ("system", "cached")
# metrics.json keys that differ between two identical evaluations: where it and its FID cache were written, when.
VOLATILE = {"timing_s", "out_dir", "created", "fid.cache_dir", "reference_cache"}


def one(setting: str, jeat_args: list[str]) -> dict:
    """One evaluation in this process; its resource use."""
    import jeat.loading
    from jeat.cli import main as jeat_main

    if setting == "system":  # the evaluation as it ran before loading.apply_run_malloc existed
        jeat.loading.apply_run_malloc = lambda *a, **k: False
    t0 = time.perf_counter()
    rc = jeat_main(["evaluate", *jeat_args])
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"rc": rc, "wall": time.perf_counter() - t0, "user": r.ru_utime, "sys": r.ru_stime, "minflt": r.ru_minflt}


def stable(metrics: object) -> object:
    """``metrics`` without the keys that differ between two runs of one evaluation."""
    if isinstance(metrics, dict):
        return {k: stable(v) for k, v in metrics.items() if k not in VOLATILE}
    if isinstance(metrics, list):
        return [stable(v) for v in metrics]
    return metrics


def differences(a: object, b: object, where: str = "") -> list[str]:
    """The key paths where two metrics trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str) for d in differences(a.get(k), b.get(k), f"{where}/{k}")]
    return [] if a == b else [where or "/"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", type=int, default=2)
    p.add_argument("--out")
    p.add_argument("--one", choices=SETTINGS, help=argparse.SUPPRESS)  # internal: one measurement here
    p.add_argument("jeat_args", nargs=argparse.REMAINDER, help="-- then `jeat evaluate`'s arguments (not --out)")
    o = p.parse_args(argv)
    args = o.jeat_args[1:] if o.jeat_args[:1] == ["--"] else o.jeat_args
    if not args:
        p.error("give `jeat evaluate`'s arguments after --")
    if o.one:
        print(json.dumps(one(o.one, args)))
        return 0
    if "--out" in args:
        p.error("--out is chosen per process (each arm writes its own metrics)")
    runs: dict[str, list[dict]] = {s: [] for s in SETTINGS}
    metrics: dict[str, list[object]] = {s: [] for s in SETTINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(o.pairs):
            for setting in SETTINGS:
                out = Path(tmp) / f"{setting}-{i}"
                # A fresh FID cache per process: each one computes the reference features, as a study's first FID does
                cmd = [sys.executable, __file__, "--one", setting, "--", *args, "--out", str(out),
                       "--set", f"fid.cache_dir={out / 'fid-cache'}"]  # fmt: skip
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{setting}: `jeat evaluate` failed:\n{done.stderr[-2000:]}")
                runs[setting].append(json.loads(done.stdout.strip().splitlines()[-1]))
                metrics[setting].append(stable(json.loads((out / "metrics.json").read_text())))
                print(setting, runs[setting][-1], flush=True)
    first = metrics["system"][0]
    same = all(m == first for ms in metrics.values() for m in ms)
    for setting, ms in metrics.items():
        for i, m in enumerate(ms):
            for where in differences(first, m):
                print(f"{setting}-{i} differs from system-0 at {where}", file=sys.stderr)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    rows = [f"`python benchmarks/speed/eval_allocator.py {command}` ({time.strftime('%Y-%m-%d')}, torch "
            f"{torch.__version__}): one `jeat evaluate` per process, {o.pairs} interleaved pairs of processes; "
            "per process, median (min-max), whole process (loading, data, every suite).", "",
            *rusage_table(runs, 1)]  # fmt: skip
    rows += ["", f"Every metric identical across the {2 * o.pairs} processes (timings and paths aside): "
             f"**{'yes' if same else 'NO'}**."]  # fmt: skip
    publish("CPU allocator setting in evaluation (cpu_malloc)", "\n".join(rows) + "\n", o.out)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
