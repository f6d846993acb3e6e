"""What ``cpu_malloc=cached`` (training/allocator.py) saves: K-step SGLD on a model, fp32, in fresh
processes with glibc's default malloc (``system``) and with jeat's setting (``cached``), in
interleaved pairs. Reports wall, user and system seconds and minor page faults per SGLD pass
(forward + input-gradient backward), from getrusage: page faults and system time do not drift with
the machine's load the way wall time does.

    python benchmarks/speed/allocator.py --arch jem-wrn-28-2 --batch 64 --pairs 3 \
        --out benchmarks/results/allocator_cpu.md
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch
from speed_report import publish, rusage_table


def one(arch: str, batch: int, steps: int, threads: int, setting: str) -> dict:
    from jeat.models import build_model
    from jeat.training.allocator import apply_cpu_malloc

    apply_cpu_malloc(setting, "cpu")
    torch.manual_seed(0)
    torch.set_num_threads(threads)
    model = build_model(arch).to(memory_format=torch.channels_last).train()
    x = torch.rand(batch, 3, 32, 32)

    def step(x):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(-model(x).logsumexp(1).sum(), x)
        return x.detach() - g + 0.01 * torch.randn_like(x)

    for _ in range(2):  # primitives created, heap grown
        x = step(x)
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(steps):
        x = step(x)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    return {"wall": (t1 - t0) / steps, "user": (r1.ru_utime - r0.ru_utime) / steps,
            "sys": (r1.ru_stime - r0.ru_stime) / steps, "minflt": (r1.ru_minflt - r0.ru_minflt) / steps}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="jem-wrn-28-2")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--out")
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: one measurement in this process
    o = p.parse_args(argv)
    if o.one:
        print(json.dumps(one(o.arch, o.batch, o.steps, o.threads, o.one)))
        return 0
    runs: dict[str, list[dict]] = {"system": [], "cached": []}
    for _ in range(o.pairs):
        for setting in runs:
            cmd = [sys.executable, __file__, "--arch", o.arch, "--batch", str(o.batch), "--steps", str(o.steps),
                   "--threads", str(o.threads), "--one", setting]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            runs[setting].append(json.loads(out.strip().splitlines()[-1]))
            print(setting, runs[setting][-1], flush=True)
    rows = [f"`python benchmarks/speed/allocator.py {' '.join(sys.argv[1:] if argv is None else argv)}` "
            f"({time.strftime('%Y-%m-%d')}, torch {torch.__version__}): {o.arch}, batch {o.batch}, fp32, "
            f"channels_last, {o.threads} threads, {o.steps} SGLD passes per process after 2 warm-up passes, "
            f"{o.pairs} interleaved pairs of processes; per pass, median (min-max) over the processes.", "",
            *rusage_table(runs, 3)]  # fmt: skip
    text = "\n".join(rows) + "\n"
    publish("CPU allocator setting (cpu_malloc)", text, o.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
