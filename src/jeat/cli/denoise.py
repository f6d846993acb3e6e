"""``jeat denoise``: denoise test images by descending a classifier's energy (JEAT Appendix G.1, Fig. 15)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .options import add_model_options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "denoise",
        help="add Gaussian noise to test images and descend the energy; PSNR/SSIM against the clean images",
        description="Takes the first --n images of the test split (the lossless CIFAR-10 test subset when it is "
        "present), adds N(0, sigma^2) noise ([0,1] pixel units, clamped), runs --steps steps of "
        "x <- x - step_size * grad E + noise * N(0, I) and writes denoise.png (rows: clean, noisy, denoised) and "
        "metrics.json (PSNR/SSIM of noisy and denoised images, per-step curves) into --out.",
    )
    p.add_argument("checkpoint", help="run directory, checkpoint.pt or model.safetensors")
    p.add_argument("--n", type=int, default=100, help="number of test images (default 100)")
    p.add_argument(
        "--paper",
        action="store_true",
        help="Appendix G.1's setting: noise variance 0.3 (std 0.548 in [0,1] units), then Langevin "
        "dynamics with JEAT's training sampler (20 steps of 0.25, noise 0.005); flags given beside it win",
    )
    p.add_argument("--sigma", type=float, help="noise std in [0,1] pixel units (default 0.1; --paper: 0.548)")
    p.add_argument("--energy", choices=["joint", "marginal", "ce"], default="joint",
                   help="energy to descend (default joint E(x,y))")  # fmt: skip
    p.add_argument("--label", choices=["true", "pred"], default="true",
                   help="label y of E(x,y): ground truth or the model's prediction on the noisy image")  # fmt: skip
    p.add_argument("--steps", type=int, help="default 50 (--paper: 20)")
    p.add_argument("--step-size", type=float, help="default 0.01 (--paper: 0.25)")
    p.add_argument("--noise", type=float, help="Langevin noise std (default 0: plain descent; --paper: 0.005)")
    p.add_argument("--clip-grad", type=float, help="clip each pixel's step to +-this")
    p.add_argument("--clamp", action=argparse.BooleanOptionalAction, default=True, help="keep x in [0, 1]")
    p.add_argument("--data", help="data root (default: the run's data.root / $JEAT_DATA)")
    p.add_argument("--split", choices=["test", "train"], default="test")
    p.add_argument("--test-file", help="test file inside the data root, e.g. test_jpeg.npz")
    p.add_argument("--out", help="output directory (default: RUN_DIR/denoise)")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..sampling.denoise import DEFAULTS, PAPER, denoise_from_checkpoint

    base = PAPER if args.paper else DEFAULTS
    given = {k: getattr(args, k) for k in base}
    settings = {k: base[k] if v is None else v for k, v in given.items()}
    ck = Path(args.checkpoint)
    out = Path(args.out) if args.out else (ck if ck.is_dir() else ck.parent) / "denoise"
    res = denoise_from_checkpoint(
        ck, out=out, data=args.data, n=args.n, split=args.split, test_file=args.test_file, device=args.device,
        energy=args.energy, label=args.label, clip_grad=args.clip_grad, clamp=args.clamp, seed=args.seed,
        weights=args.weights, **settings,
    )  # fmt: skip
    summary = {k: v for k, v in res.metrics.items() if not k.endswith("_curve")}
    if args.paper:  # which settings came from Appendix G.1 / the training sampler, which from the command line
        summary["paper_settings"] = {k: ("given" if given[k] is not None else "paper") for k in base}
    summary["out"] = str(out)
    print(json.dumps(summary, indent=2))
    return 0
