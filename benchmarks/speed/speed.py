"""Speed of a training step against the algorithm's floor, per method and precision (issue 6).

For every method the *step* is ``Trainer.train_step`` (the real loop code: autocast, the method's
attack / replay buffer / SGLD, the loss, backward, optimizer and LR step, metrics). Its *floor*
is the sum of the passes the algorithm cannot avoid, each timed alone on the same model and
settings:

    floor = (attack steps + SGLD steps K) x t(grad_x)  +  t(param step with F forwards)

``grad_x`` = one forward + backward to the input (train mode, BN statistics frozen), the unit
of an attack step and of an SGLD step; the param step = F forwards through the training
wrapper, one backward to the weights and ``optimizer.step()``. F is 1 for CE methods, 2 for JEM
/ JEAT (data + negatives), 3 for Robust JEM (adversarial, clean, negatives). The ratio
step / floor is the overhead of everything else (buffer draws, projections, metrics, Python);
the goal is <= 1.15. Sampling: K-step Langevin (``jeat.sampling.langevin``, eval mode) against
K x t(grad_x).

Quantities are timed interleaved, round after round, and the median of the rounds is kept, so a
ratio compares numbers measured under the same machine load. Absolute images/s on a shared
machine are noisy; the ratios are what this benchmark is for.

    python benchmarks/speed/speed.py --device cpu --out benchmarks/results/speed_cpu.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from speed_report import machine, save

from jeat.energy import energy as energy_fn
from jeat.models import build_model, frozen_bn_stats, unwrap
from jeat.presets import get_preset
from jeat.sampling import langevin
from jeat.training import Trainer

METHODS = ("standard", "fgsm", "prejeat", "pgd", "jem", "jeat", "robust-jem")
MODES = {  # name -> (amp, channels_last, compile)
    "fp32": ("none", False, False),
    "bf16": ("bf16", True, False),
    "bf16+compile": ("bf16", True, True),
}


def passes(cfg) -> tuple[int, int, int]:
    """(attack input-gradients, SGLD input-gradients, forwards in the parameter step) of one step."""
    m = cfg.method
    attack = {"standard": 0, "noise": 0, "fgsm": 1, "jem": 0}.get(m.name, m.attack.steps)
    sgld = m.sgld.steps if m.name in ("jem", "jeat", "robust-jem") else 0
    forwards = {"jem": 2, "jeat": 2, "robust-jem": 3}.get(m.name, 1)
    return attack, sgld, forwards


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCK = time.perf_counter  # --clock cpu: process CPU time (see main)


def timed(fn, device, n: int = 1) -> float:
    sync(device)
    t = CLOCK()
    for _ in range(n):
        fn()
    sync(device)
    return (CLOCK() - t) / n


def write_data(root: Path, n: int, size: int, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for split, m in (("train", n), ("test", 64)):
        x = rng.integers(0, 256, (m, size, size, 3), dtype=np.uint8)
        np.savez(root / f"{split}.npz", x=x, y=(np.arange(m) % classes).astype(np.int64))


def make_trainer(method: str, mode: str, args, data: Path, out: Path) -> Trainer:
    cfg = get_preset(f"cpu-{method}")
    cfg.amp, cfg.channels_last, cfg.compile = MODES[mode]
    cfg.device, cfg.out_dir, cfg.name = args.device, str(out), f"{method}-{mode}"
    cfg.data.name, cfg.data.root, cfg.data.batch_size = "npz", str(data), args.batch
    cfg.data.train_limit = cfg.data.test_limit = None
    # The presets hold out 2,000 images; the synthetic set has a few hundred. A small split keeps the real
    # path (the trainer draws its batches from the training part) without changing what a step costs.
    cfg.data.valid_size = min(cfg.data.valid_size, 64)
    cfg.method.track_energy = False
    cfg.method.sgld.buffer_size = min(cfg.method.sgld.buffer_size, 1000)
    if args.arch:
        cfg.model.arch = args.arch
    if args.sgld_steps is not None:
        cfg.method.sgld.steps = args.sgld_steps
    return Trainer(cfg, progress=False)


class Primitives:
    """The floor's passes on a trainer's own model, optimizer and precision."""

    def __init__(self, tr: Trainer, x: torch.Tensor, y: torch.Tensor):
        self.tr, self.x, self.y = tr, x, y

    def grad_x(self, train: bool = True):
        net = unwrap(self.tr.net)
        net.train(train)
        with self.tr._autocast(), frozen_bn_stats(net):
            x = self.x.detach().requires_grad_(True)
            e = energy_fn(net(x), None, "marginal").sum()
            torch.autograd.grad(e, x)

    def param_step(self, forwards: int):
        tr = self.tr
        tr.model.train()
        with tr._autocast():
            logits = tr.net(self.x)
            loss = F.cross_entropy(logits, self.y)
            with frozen_bn_stats(tr.net):
                for _ in range(forwards - 1):
                    loss = loss + tr.net(self.x).logsumexp(1).mean()
        tr.opt.zero_grad(set_to_none=True)
        loss.backward()
        tr.opt.step()


def bench_method(method: str, mode: str, args, data: Path, out: Path) -> dict:
    tr = make_trainer(method, mode, args, data, out)
    dev = tr.device
    x, y = next(iter(tr.stream.epoch(0)))
    x = x.to(dev).contiguous(memory_format=tr.memory_format)
    y = y.to(dev)
    prim = Primitives(tr, x, y)
    a, k, f = passes(tr.cfg)
    t0 = time.perf_counter()
    for _ in range(args.warmup):  # also compiles every graph variant in compile mode
        tr.train_step(x, y)
        prim.grad_x()
        prim.param_step(f)
    warm_s = time.perf_counter() - t0
    rows = {"step": [], "grad_x": [], "param": []}
    for _ in range(args.rounds):
        rows["step"].append(timed(lambda: tr.train_step(x, y), dev))
        rows["grad_x"].append(timed(prim.grad_x, dev, max(1, min(a + k, 3))))
        rows["param"].append(timed(lambda: prim.param_step(f), dev))
    med = {key: statistics.median(v) for key, v in rows.items()}
    floor = (a + k) * med["grad_x"] + med["param"]
    # Per-round ratios show the spread the machine load causes.
    ratios = [s / ((a + k) * g + p) for s, g, p in zip(rows["step"], rows["grad_x"], rows["param"], strict=True)]
    return {
        "method": method, "mode": mode, "arch": tr.cfg.model.arch, "batch": len(y), "attack_steps": a,
        "sgld_steps": k, "forwards": f, "step_s": med["step"], "grad_x_s": med["grad_x"], "param_s": med["param"],
        "floor_s": floor, "ratio": med["step"] / floor, "ratio_min": min(ratios), "ratio_max": max(ratios),
        "images_per_s": len(y) / med["step"], "warmup_s": warm_s,
    }  # fmt: skip


def bench_sampling(mode: str, args, data: Path, out: Path) -> dict:
    tr = make_trainer("jem", mode, args, data, out)
    dev, k = tr.device, args.sample_steps
    x0 = torch.rand(args.batch, *tr.train_set.shape, device=dev).contiguous(memory_format=tr.memory_format)
    prim = Primitives(tr, x0, None)
    net = unwrap(tr.net).eval()

    def sample():
        with tr._autocast():
            langevin(net, x0, None, "marginal", k, 1.0, 0.01)

    for _ in range(args.warmup):
        sample()
        prim.grad_x(train=False)
    s, g = [], []
    for _ in range(args.rounds):
        s.append(timed(sample, dev))
        g.append(timed(lambda: prim.grad_x(train=False), dev, 3))
    ms, mg = statistics.median(s), statistics.median(g)
    return {"mode": mode, "arch": tr.cfg.model.arch, "batch": args.batch, "steps": k, "sample_s": ms,
            "floor_s": k * mg, "ratio": ms / (k * mg), "images_per_s": args.batch / ms}  # fmt: skip


def count_macs(model: torch.nn.Module, shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward of one image (conv and linear layers)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        if isinstance(m, torch.nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, torch.nn.Linear):
            total += out.numel() * m.in_features

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    for h in hs:
        h.remove()
    return total


def bench_wrn(args) -> dict:
    """Per-image cost of WRN-28-10's passes at a small batch, for the paper-scale extrapolation."""
    dev = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    model = build_model("wrn-28-10", 10)
    macs = count_macs(model, (3, 32, 32))
    model = model.to(dev).to(memory_format=torch.channels_last).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    b = args.wrn_batch
    x = torch.rand(b, 3, 32, 32, device=dev).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (b,), device=dev)

    def grad_x():
        with torch.autocast(dev.type, dtype=torch.bfloat16), frozen_bn_stats(model):
            xi = x.detach().requires_grad_(True)
            torch.autograd.grad(model(xi).logsumexp(1).sum(), xi)

    def param2():
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y)
            with frozen_bn_stats(model):
                loss = loss + model(x).logsumexp(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    grad_x()
    param2()
    g = statistics.median(timed(grad_x, dev) for _ in range(args.wrn_rounds))
    p = statistics.median(timed(param2, dev) for _ in range(args.wrn_rounds))
    return {"batch": b, "grad_x_s": g, "param2_s": p, "macs_per_image": macs, "device": str(dev)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--modes", default="fp32,bf16")
    p.add_argument("--compile-methods", default="standard,jeat", help="methods also run in bf16+compile")
    p.add_argument("--arch", help="override every preset's model")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--sgld-steps", type=int, help="override the presets' K")
    p.add_argument("--sample-steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time, or this process's CPU time (with --threads 1: robust to other jobs "
                   "on a shared CPU, which inflate wall time but not the work done)")  # fmt: skip
    p.add_argument("--wrn", action="store_true", help="also time WRN-28-10 passes (paper-scale extrapolation)")
    p.add_argument("--wrn-batch", type=int, default=8)
    p.add_argument("--wrn-rounds", type=int, default=3)
    p.add_argument("--out", help="markdown report (a .json with the raw numbers is written next to it)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.clock == "cpu":
        if args.device != "cpu":
            raise SystemExit("--clock cpu measures host CPU time; use --clock wall on a GPU")
        global CLOCK
        CLOCK = time.process_time
    cmd = "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    res = {"machine": machine(), "load_before": [round(v, 1) for v in os.getloadavg()], "methods": [],
           "sampling": []}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("JEAT_CACHE", str(tmp / "cache"))
        data = tmp / "data"
        data.mkdir()
        write_data(data, max(4 * args.batch, 256), 32)
        modes = args.modes.split(",")
        compile_methods = [m for m in args.compile_methods.split(",") if m]
        for mode in [*modes, *(["bf16+compile"] if compile_methods else [])]:
            for method in args.methods.split(","):
                if mode == "bf16+compile" and method not in compile_methods:
                    continue
                try:
                    r = bench_method(method, mode, args, data, tmp / "runs")
                except Exception as e:  # e.g. a compiler failure: record it, go on
                    r = {"method": method, "mode": mode, "error": f"{type(e).__name__}: {e}"}
                res["methods"].append(r)
                print(json.dumps(r), file=sys.stderr, flush=True)
                save(res, args, cmd, list(MODES))
            if args.sample_steps:
                res["sampling"].append(bench_sampling(mode, args, data, tmp / "runs"))
                print(json.dumps(res["sampling"][-1]), file=sys.stderr, flush=True)
        if args.wrn:
            res["wrn"] = bench_wrn(args)
            print(json.dumps(res["wrn"]), file=sys.stderr, flush=True)
    print(save(res, args, cmd, list(MODES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
