"""Whole-model passes on this CPU in each layout jeat can train in, and with eval-mode BN folded:
what ``staged_layout`` and ``fold_bn`` give a WEAT / TRADES step (docs/PARITY.md, "Speed").

Passes, fp32, interleaved over the variants so that the machine's drift falls on all alike:
- ``attack``: eval mode, forward + input gradient (one step of the KL or PGD attack);
- ``train``: train mode, two forwards (clean and adversarial batch, as TRADES and WEAT) + backward.
Variants: ``nchw``; ``channels_last`` (everywhere); ``staged`` (channels_last, the stages the model
names in ``cpu_nchw_stages`` in NCHW: jeat's CPU default); ``+ folded`` (attack only: conv + BN as one
convolution, ``models/folding.py``).

    python benchmarks/speed/model_passes.py --archs resnet18 --batch 32 --out benchmarks/results/model_passes_cpu.md
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time

import torch
from speed_report import machine, publish

from jeat.models import build_model
from jeat.models.folding import folded_bn
from jeat.models.layout import apply_layout
from jeat.training.allocator import cache_cpu_memory

LAYOUTS = {"nchw": (False, False), "channels_last": (True, False), "staged": (True, True)}


def attack_pass(model, x: torch.Tensor, fold: bool) -> None:
    model.eval()
    with folded_bn(model, fold):
        xa = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xa).logsumexp(1).sum(), xa)


def train_pass(model, x: torch.Tensor) -> None:
    model.train()
    (model(x).logsumexp(1).sum() + model(x.flip(0)).logsumexp(1).sum()).backward()
    model.zero_grad(set_to_none=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["resnet18"])
    p.add_argument("--batch", nargs="+", type=int, default=[32], help="one per arch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=7, help="interleaved rounds over the variants")
    p.add_argument("--out", help="write the markdown table here")
    o = p.parse_args(argv)
    if len(o.batch) != len(o.archs):
        p.error("give one --batch per --arch")
    torch.set_num_threads(o.threads)
    cache_cpu_memory()  # as jeat trains
    rows = [f"Machine: {machine()}; fp32, {time.strftime('%Y-%m-%d')}; "
            f"median of {o.rounds} interleaved rounds (the first dropped). Command: "
            "`python benchmarks/speed/model_passes.py "
            + " ".join(sys.argv[1:] if argv is None else argv) + "`", "",
            "| model, batch | pass | variant | seconds | nchw / variant |", "|---|---|---|---|---|"]  # fmt: skip
    for arch, batch in zip(o.archs, o.batch, strict=True):
        torch.manual_seed(0)
        base = build_model(arch)
        models = {k: apply_layout(copy.deepcopy(base), cl, "cpu", st) for k, (cl, st) in LAYOUTS.items()}
        x = torch.rand(batch, 3, 32, 32)
        runs = [(k, "attack", False) for k in LAYOUTS] + [(k, "attack", True) for k in LAYOUTS]
        runs += [(k, "train", False) for k in LAYOUTS]
        times: dict = {r: [] for r in runs}
        for _ in range(o.rounds):
            for k, kind, fold in runs:
                m = models[k]
                xx = x.contiguous(memory_format=torch.channels_last) if LAYOUTS[k][0] else x
                t0 = time.perf_counter()
                if kind == "attack":
                    attack_pass(m, xx, fold)
                else:
                    train_pass(m, xx)
                times[k, kind, fold].append(time.perf_counter() - t0)
        med = {r: statistics.median(v[1:]) for r, v in times.items()}
        for k, kind, fold in runs:
            s = med[k, kind, fold]
            rows.append(f"| {arch}, {batch} | {kind} | {k}{' + folded' if fold else ''} | {s:.3f} | "
                        f"**{med['nchw', kind, False] / s:.2f}** |")  # fmt: skip
            print(rows[-1], flush=True)
    text = "\n".join(rows) + "\n"
    publish("Whole-model passes: layouts and BN folding on this CPU", text, o.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
