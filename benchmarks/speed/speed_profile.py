"""Where a training step's time goes beyond its floor: torch.profiler over a few steps.

    python benchmarks/speed/speed_profile.py --method jeat --mode fp32 --threads 1

Prints the operators by self CPU time, grouped into the floor's work (convolutions, their
backward, linear, pooling, activations, optimizer) and the rest (buffer draws and writes, seed
generation, projections, metric reductions, ...), which is the step/floor overhead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
import speed  # noqa: E402

FLOOR_OPS = (
    "conv", "convolution", "linear", "addmm", "mm", "max_pool", "adaptive_max", "relu", "leaky", "threshold",
    "batch_norm", "adam", "sgd", "_foreach", "mkldnn", "bmm", "logsumexp", "clamp_min",
)  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--method", default="jeat")
    p.add_argument("--mode", default="fp32", choices=list(speed.MODES))
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args()
    args.arch, args.sgld_steps = None, None
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        speed.write_data(tmp / "data", 4 * args.batch, 32)
        tr = speed.make_trainer(args.method, args.mode, args, tmp / "data", tmp / "runs")
        x, y = next(iter(tr.stream.epoch(0)))
        x, y = x.to(tr.device).contiguous(memory_format=tr.memory_format), y.to(tr.device)
        for _ in range(2):
            tr.train_step(x, y)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                tr.train_step(x, y)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    floor = sum(e.self_cpu_time_total for e in events if any(k in e.key.lower() for k in FLOOR_OPS))
    rest = 100 * (total - floor) / total
    print(f"{args.method} {args.mode}: {total / 1e3 / args.steps:.1f} ms/step self CPU; "
          f"network + optimizer ops {100 - rest:.1f}%, everything else {rest:.1f}%")  # fmt: skip
    print(f"\n{'op':<48} {'self ms/step':>12} {'share':>7} {'calls/step':>10}  floor?")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        is_floor = any(k in e.key.lower() for k in FLOOR_OPS)
        ms, share = e.self_cpu_time_total / 1e3 / args.steps, 100 * e.self_cpu_time_total / total
        print(
            f"{e.key[:48]:<48} {ms:>12.2f} {share:>6.1f}% {e.count / args.steps:>10.0f}  {'yes' if is_floor else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
