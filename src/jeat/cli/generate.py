"""``jeat generate``: class-conditional samples from a trained classifier (JEAT Eq. 16/17, JEM, Robust JEM)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate",
        help="sample images from a trained classifier by Langevin dynamics (Eq. 16, Eq. 17, SGLD, combined)",
        description="Draw --per-class samples of every class and write grid.png (one row per class), samples.npz "
        "(x uint8 (N,H,W,C), y int64 (N,)) and traces.json (per-step energy and gradient norms) into --out. "
        "Samplers: ce = Langevin on E(x,y)-E(x) (Eq. 16); joint = on E(x,y) (Eq. 17, Algorithm 1); marginal = "
        "unconditional SGLD on E(x); combined = targeted PGD prior toward y, contrast reduction, then SGLD on "
        "E(x,y) (Robust JEM). The update is x <- x - step_size * grad + noise * N(0, I); the papers' "
        "(alpha/2, sqrt(alpha)) form is --step-size alpha/2 --noise sqrt(alpha).",
    )
    p.add_argument("checkpoint", help="run directory, checkpoint.pt or model.safetensors")
    p.add_argument("--sampler", choices=["ce", "joint", "marginal", "combined", "dat"], default="joint",
                   help="target energy (default: joint, Eq. 17)")  # fmt: skip
    p.add_argument("--seed-dist", choices=["uniform", "gaussian", "jempp", "gmm", "buffer"],
                   help="initial x0 (default uniform; Robust JEM's inference: jempp): U(0,1); class-conditional "
                   "Gaussian; the same fitted as JEM++ does; per-class Gaussian mixture (fitted on the training set "
                   "once, cached in the run directory); the checkpoint's replay buffer")  # fmt: skip
    p.add_argument("--per-class", type=int, default=10, help="samples per class (default 10)")
    p.add_argument("--classes", help="comma-separated class indices (default: all)")
    p.add_argument("--inference", choices=["auto", "paper", "jeat"], default="auto",
                   help="paper: unset options take Robust JEM's published inference (JEM++'s proximal sampler, "
                   "m=50 x n=5 conditional, 300 x 5 unconditional, JEM++'s class-Gaussian seeds, prior eps 0.25); "
                   "jeat: jeat's defaults; auto (default): paper on a robust-jem run, else jeat")  # fmt: skip
    p.add_argument("--kernel", choices=["sgld", "pyld"],
                   help="sgld: Langevin steps (default); pyld: JEM++'s proximal sampler (--steps outer x "
                   "--inner-steps inner)")  # fmt: skip
    p.add_argument("--steps", type=int, help="Langevin steps K, or pyld's outer steps m (default 100)")
    p.add_argument("--step-size", type=float,
                   help="gradient step (default 0.25: JEM's 1 in its [-1, 1] pixel units)")  # fmt: skip
    p.add_argument("--noise", type=float,
                   help="std of the Langevin noise (default 0.005: JEM's 0.01 in [-1, 1] units)")  # fmt: skip
    p.add_argument("--inner-steps", type=int, help="pyld: inner steps n per outer step (default 5)")
    p.add_argument("--inner-step-size", type=float,
                   help="pyld: inner step (default 0.25: eval_jempp.py's 1 in [-1, 1] units)")  # fmt: skip
    p.add_argument("--inner-clip", type=float, help="pyld: clip of each inner step per pixel (default 0.5)")
    p.add_argument(
        "--clip-grad",
        type=float,
        help="clip each pixel's step to +-this (JEM++); pyld: the outer step's clip (default 2 x step)",
    )
    p.add_argument("--clamp", action=argparse.BooleanOptionalAction, default=None,
                   help="keep samples in [0, 1] after each step (default: on, off for combined)")  # fmt: skip
    p.add_argument("--eps", type=float, help="combined: PGD radius in [0,1] units (default 0.25 = Robust JEM's 0.5 "
                   "in [-1,1])")  # fmt: skip
    p.add_argument("--pgd-steps", type=int, default=20, help="combined: PGD steps (default 20)")
    p.add_argument("--pgd-step-size", type=float, help="combined: PGD step (default 2.5 * eps / steps)")
    p.add_argument("--contrast", type=float, default=0.9,
                   help="combined: contrast factor of the prior, 1 = none (default 0.9)")  # fmt: skip
    p.add_argument("--gmm-components", type=int, default=5, help="gmm seeds: components per class (default 5)")
    p.add_argument("--gmm-rank", type=int, default=16, help="gmm seeds: rank of each covariance (default 16)")
    p.add_argument("--no-component-trace", action="store_true",
                   help="trace only the target's gradient (not grad E(x,y) and grad E(x) apart)")  # fmt: skip
    p.add_argument("--data", help="data root for fitting Gaussian seeds (default: the run's data.root / $JEAT_DATA)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--out", help="output directory (default: RUN_DIR/generate-SAMPLER-SEEDDIST)")
    p.add_argument("--grid-cols", type=int, default=10, help="images per class row in grid.png (default 10)")
    p.add_argument("--scale", type=int, default=1, help="enlarge grid.png by pixel repetition (default 1)")
    p.add_argument("--no-progress", action="store_true")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sampling.generate import generate_from_checkpoint

    ck = Path(args.checkpoint)
    run_dir = ck if ck.is_dir() else ck.parent
    classes = [int(c) for c in args.classes.split(",")] if args.classes else None
    # Only what the user gave: the rest comes from the inference (paper or jeat) the run gets.
    given = {"seed_dist": args.seed_dist, "kernel": args.kernel, "steps": args.steps, "step_size": args.step_size,
             "noise": args.noise, "inner_steps": args.inner_steps, "inner_step_size": args.inner_step_size,
             "inner_clip": args.inner_clip, "pgd_eps": args.eps}  # fmt: skip
    kw = {k: v for k, v in given.items() if v is not None}
    # The default folder names the seeds the run ends up with (paper inference picks its own).
    out = Path(args.out) if args.out else (lambda cfg: run_dir / f"generate-{cfg.sampler}-{cfg.seed_dist}")
    res = generate_from_checkpoint(
        ck, out=out, data=args.data, device=args.device, progress=not args.no_progress, grid_cols=args.grid_cols,
        scale=args.scale, inference=args.inference,
        sampler=args.sampler, per_class=args.per_class, classes=classes,
        clip_grad=args.clip_grad, clamp=args.clamp,
        batch_size=args.batch_size, seed=args.seed, components=not args.no_component_trace,
        pgd_steps=args.pgd_steps,
        pgd_step_size=args.pgd_step_size, contrast=args.contrast, gmm_components=args.gmm_components,
        gmm_rank=args.gmm_rank, weights=args.weights, **kw,
    )  # fmt: skip
    summary = {k: v for k, v in res.extra.items()}
    if res.trace is not None and len(res.trace.energy):
        summary["energy_first"], summary["energy_last"] = res.trace.energy[0].item(), res.trace.energy[-1].item()
    summary["out"] = str(out if args.out else out(res.config))
    print(json.dumps(summary, indent=2))
    return 0
