"""Where channels_last pays on this CPU: each distinct convolution of a model, timed alone in both
layouts, fp32, interleaved so that the machine's drift falls on both alike.

One pass = forward + backward: ``input`` grads only (an SGLD or attack step) or ``all`` (input and
weight grads, a training step). The references train in the default (NCHW) layout and jeat in
channels_last, with the same oneDNN kernels otherwise, so these ratios bound what the layout can
give jeat on steps where both sides run the same passes (docs/PARITY.md, "Speed").

    python benchmarks/speed/layout.py --archs jem-wrn-28-2 resnet18 --batch 64 32 \
        --out benchmarks/results/layout_cpu.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from speed_report import machine, publish
from torch import nn

from jeat.models import build_model
from jeat.training.allocator import cache_cpu_memory


def conv_shapes(arch: str) -> list[tuple[tuple, int]]:
    """Each distinct conv of ``arch`` as (in, out, kernel, stride, padding, input size), and its count."""
    model, seen = build_model(arch), {}

    def hook(m, inp, _out):
        k = (m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0], inp[0].shape[-1])
        seen[k] = seen.get(k, 0) + 1

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    for h in handles:
        h.remove()
    return list(seen.items())


def time_pass(shape: tuple, batch: int, channels_last: bool, grads: str, reps: int) -> list[float]:
    c_in, c_out, k, stride, pad, hw = shape
    conv = nn.Conv2d(c_in, c_out, k, stride, pad, bias=False)
    x = torch.rand(batch, c_in, hw, hw)
    if channels_last:
        conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    conv.weight.requires_grad_(grads == "all")
    x.requires_grad_(True)
    out: list[float] = []
    for i in range(reps + 1):
        t0 = time.perf_counter()
        y = conv(x)
        y.backward(torch.ones_like(y))
        if i:  # the first pass creates the oneDNN primitive
            out.append(time.perf_counter() - t0)
        x.grad = conv.weight.grad = None
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["jem-wrn-28-2", "resnet18"])
    p.add_argument("--batch", nargs="+", type=int, default=[64, 32], help="one per arch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds (NCHW, channels_last) per conv")
    p.add_argument("--reps", type=int, default=3, help="timed passes per round")
    p.add_argument("--out", help="write the markdown table here")
    o = p.parse_args(argv)
    if len(o.batch) != len(o.archs):
        p.error("give one --batch per --arch")
    torch.set_num_threads(o.threads)
    cache_cpu_memory()  # both layouts alike, as jeat trains
    rows = [f"Machine: {machine()}; fp32, {time.strftime('%Y-%m-%d')}; "
            f"median of {o.rounds} interleaved rounds x {o.reps} passes. Command: `python benchmarks/speed/layout.py "
            + " ".join(sys.argv[1:] if argv is None else argv) + "`", "",
            "| model, batch | conv (in -> out, k, stride, input HxW) | count | pass | NCHW ms | channels_last ms "
            "| NCHW / channels_last |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    totals: dict = {}
    for arch, batch in zip(o.archs, o.batch, strict=True):
        for shape, count in conv_shapes(arch):
            for grads in ("input", "all"):
                t = {False: [], True: []}
                for _ in range(o.rounds):
                    for cl in (False, True):
                        t[cl] += time_pass(shape, batch, cl, grads, o.reps)
                a, b = statistics.median(t[False]) * 1e3, statistics.median(t[True]) * 1e3
                tot = totals.setdefault((arch, batch, grads), [0.0, 0.0])
                tot[0], tot[1] = tot[0] + count * a, tot[1] + count * b
                c_in, c_out, k, s, _, hw = shape
                rows.append(f"| {arch}, {batch} | {c_in} -> {c_out}, {k}x{k}, {s}, {hw}x{hw} | {count} | {grads} | "
                            f"{a:.2f} | {b:.2f} | {a / b:.2f} |")  # fmt: skip
                print(rows[-1], flush=True)
    rows += ["", "| model, batch | pass | all convs NCHW ms | all convs channels_last ms | NCHW / channels_last |",
             "|---|---|---|---|---|"]  # fmt: skip
    for (arch, batch, grads), (a, b) in totals.items():
        rows.append(f"| {arch}, {batch} | {grads} | {a:.1f} | {b:.1f} | **{a / b:.2f}** |")
    text = "\n".join(rows) + "\n"
    publish("Convolution layouts on this CPU", text, o.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
