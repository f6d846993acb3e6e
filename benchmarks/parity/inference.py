"""Robust JEM's inference beside JEM++'s: ``jeat generate``'s paper settings against ``eval_jempp.sample_q``.

Robust JEM generates with JEM++'s sampler (robust-jem.md: m = 50, n = 5 conditional; 300 x 5
unconditional). This check builds JEM++'s own model (``models.jem_models.CCF``, its yopo WRN with BN),
copies its weights into jeat's ``jempp-wrn``, and runs one ``sample_q`` call of JEM++'s inference script
(its parser's defaults: ``sgld_lr`` 1, ``in_steps`` 5, ``sgld_std`` 0.01) beside ``jeat.sampling.generate``
with the settings ``jeat generate`` takes on a robust-jem run (``ROBUST_JEM_INFERENCE``), from the same
seeds (JEM++'s class Gaussians, fitted by jeat on CIFAR-10 images) and the same noise tensors.

    python benchmarks/parity/inference.py --refs /path/to/checkouts --data ../shared/data --dtype float64

Writes ``benchmarks/results/parity_inference.json``; exits 1 when a sample differs by more than ``--atol``.
The model is in eval mode for the call, as ``eval_jempp.main`` leaves it (``sample_q`` itself ends with
``f.train()``, so the reference's *later* calls in ``uncond_samples`` run with batch statistics: not
compared here, and jeat's generation stays in eval mode).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from common import noise_feed  # noqa: E402
from references import (  # noqa: E402
    REFERENCES,
    checkout_commit,
    import_reference,
    install_stubs,
    ref_checkout,
    reference_parser,
)


def _reference_model(mod, o, dtype, x: torch.Tensor):
    """JEM++'s CCF at the harness's size, its BN statistics set by a few train-mode passes over CIFAR."""
    torch.manual_seed(o.seed)
    f = mod.CCF(o.depth, o.width, "batch", n_classes=10, model="yopo").to(dtype)
    f.train()
    with torch.no_grad():
        for i in range(0, len(x), 100):
            f.classify(2 * x[i : i + 100].to(dtype) - 1)
    return f.eval()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", help="folder of reference checkouts named <owner>+<repo>")
    p.add_argument("--ref-jempp", help="checkout of sndnyang/JEMPP")
    p.add_argument("--data", default=os.environ.get("JEAT_DATA"), help="CIFAR-10 root (default $JEAT_DATA)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float64")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--per-class", type=int, default=1, help="chains per class (batch = 10 x this)")
    p.add_argument("--cond-steps", type=int, help="outer steps, conditional (default: the paper's, 50)")
    p.add_argument("--uncond-steps", type=int, help="outer steps, unconditional (default: the paper's, 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--atol", type=float, help="largest |difference| allowed in [0, 1] units (default 1e-9 float64, "
                   "1e-3 float32)")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parity_inference.json")
    o = p.parse_args(argv)
    torch.set_num_threads(o.threads)
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    atol = o.atol if o.atol is not None else (1e-9 if dtype == torch.float64 else 1e-3)

    from jeat.data import load_dataset
    from jeat.models import build_model
    from jeat.models.wrn import from_jem_state_dict
    from jeat.sampling.generate import ROBUST_JEM_INFERENCE, generate, paper_inference
    from jeat.sampling.seeds import ClassGaussian

    checkout = ref_checkout("jempp", o.ref_jempp, o.refs)
    shims = [f"stub modules (import only): {', '.join(install_stubs())}"]
    mod = import_reference(checkout, "eval_jempp")
    args = reference_parser(checkout / "eval_jempp.py").parse_args(
        ["--depth", str(o.depth), "--width", str(o.width), "--init", "r"]
    )
    args.n_classes, args.device = 10, torch.device("cpu")
    mod.args = args  # sample_p_0 reads the module-global args, as under __main__
    shims.append("seeds: handed to sample_q as its replay buffer (reinit_freq 0), each chain its own state")
    shims.append("noise: torch.randn_like fed the same standard-normal tensors on both sides")

    train = load_dataset("cifar10", "train", o.data)
    x = train.images[:2000].float().div(255)
    gauss = ClassGaussian.fit(type(train)(train.images[:2000], train.labels[:2000], train.classes))
    f = _reference_model(mod, o, dtype, x[:500])
    ours = build_model(f"jempp-wrn-{o.depth}-{o.width}").to(dtype)  # the precision first: no float32 round trip
    ours.load_state_dict(from_jem_state_dict(f.state_dict(), o.depth))
    ours.eval()

    k = 10 * o.per_class
    y = torch.arange(10).repeat_interleave(o.per_class)
    torch.manual_seed(o.seed + 1)
    x0 = gauss.sample(y).to(dtype)  # JEM++'s init_from_centers: class Gaussians, clamped
    rows = {}
    for sampler, steps in (("joint", o.cond_steps), ("marginal", o.uncond_steps)):
        kw = {"sampler": sampler, "per_class": o.per_class, "batch_size": k}
        if steps is not None:
            kw["steps"] = steps
        cfg, from_paper = paper_inference(kw, paper=True)
        gen = torch.Generator().manual_seed(o.seed + 2)
        noise = [torch.randn(k, 3, 32, 32, generator=gen, dtype=dtype) for _ in range(cfg.steps)]

        # ---- reference: one sample_q call from the same seeds
        if sampler == "joint":  # sample_p_0 reads chain i of class y_i at y_i * (buffer // 10) + i
            buffer = torch.zeros(10 * k, 3, 32, 32, dtype=dtype)
            buffer[y * k + torch.arange(k)] = 2 * x0 - 1
            ref_y = y
        else:
            buffer, ref_y = (2 * x0 - 1).clone(), None
        args.uncond = False
        args.batch_size, args.n_steps = k, cfg.steps
        f.eval()
        t0 = time.perf_counter()
        with noise_feed(noise):
            ref = mod.sample_q(f, buffer, y=ref_y, n_steps=cfg.steps, in_steps=args.in_steps, args=args)
        ref_s = time.perf_counter() - t0
        ref = (ref.detach() + 1) / 2

        # ---- jeat: generate() with the settings `jeat generate` takes on a robust-jem run
        t0 = time.perf_counter()
        with noise_feed(noise):
            res = generate(ours, 10, (3, 32, 32), cfg, seeds=lambda yy: x0[: len(yy)])
        ours_s = time.perf_counter() - t0
        diff = (res.x.to(dtype) - ref).abs().max().item()
        moved = (ref - x0).abs().max().item()
        rows[sampler] = {"settings": {k2: getattr(cfg, k2) for k2 in ROBUST_JEM_INFERENCE[sampler] if k2 != "pgd_eps"},
                         "settings_from_paper": from_paper, "reference_flags": {"n_steps": cfg.steps,
                         "in_steps": args.in_steps, "sgld_lr": args.sgld_lr, "sgld_std": args.sgld_std},
                         "max_abs_diff": diff, "max_abs_move": moved, "passed": diff <= atol,
                         "seconds": {"reference": round(ref_s, 2), "jeat": round(ours_s, 2)}}  # fmt: skip
        print(
            f"{sampler}: {cfg.steps} x {cfg.inner_steps} steps, samples moved up to {moved:.3g}; "
            f"max |jeat - reference| = {diff:.3g} ({'pass' if diff <= atol else 'FAIL'} at {atol:g})"
        )
    repo, commit, _ = REFERENCES["jempp"]
    record = {"reference": {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                            "script": "eval_jempp.py (sample_q)"},
              "model": f"JEM++ CCF yopo WRN-{o.depth}-{o.width} (BN, eval mode)", "precision": o.dtype,
              "chains": k, "atol": atol, "shims": shims, "results": rows}  # fmt: skip
    tmp = o.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    tmp.replace(o.out)
    return 0 if all(r["passed"] for r in rows.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
