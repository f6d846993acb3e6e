"""``jeat train``: train a classifier with any method, from a preset plus overrides."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from ..config import TrainConfig
from ..overrides import apply_override
from ..presets import available_presets, get_preset
from ..validation import validate


def _epilog() -> str:
    from ..methods import describe_methods

    methods = "\n".join(f"  {k:18s} {v}" for k, v in describe_methods().items())
    presets = "\n".join(f"  {k:18s} {v}" for k, v in available_presets().items())
    return f"methods (--method):\n{methods}\n\npresets (--preset):\n{presets}"


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model with any method, from a preset plus overrides",
                       description="Train from a named preset; any config field can be overridden with "
                       "--set section.field=value, e.g. --set optim.lr=0.01. Values no run can use (e.g. "
                       "--epochs 0) are refused.", epilog=_epilog(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--preset", default="cpu-standard", help="named configuration (default: cpu-standard)")
    p.add_argument("--method", help="training method (shortcut for --set method.name=...)")
    p.add_argument("--data", help="data root or file (shortcut for data.root; default $JEAT_DATA)")
    p.add_argument("--dataset", help="cifar10 | cifar100 | npz | folder (shortcut for data.name)")
    p.add_argument("--download", action="store_true", help="download CIFAR if it is not found")
    p.add_argument("--arch", help="model architecture (shortcut for model.arch)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--out", help="directory holding run directories (default runs/)")
    p.add_argument("--name", help="run directory name (default: the preset name)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field; repeatable")  # fmt: skip
    p.add_argument(
        "--init",
        metavar="RUN_OR_CHECKPOINT",
        help="start from these weights (run dir, checkpoint.pt, model.safetensors; `jeat import` makes one "
        "from RobustBench / robustness checkpoints): DAT's stage two, or fine-tuning (shortcut for init)",
    )
    p.add_argument("--outdist", help="DAT's out-of-distribution images: gaussian | uniform | cifar100 | svhn | "
                   "npz:PATH | folder:PATH (shortcut for data.outdist)")  # fmt: skip
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")
    p.add_argument("--reseed", type=int, help="with --resume: reseed the RNG (recovery after divergence)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.set_defaults(func=run)


def resolve_config(args) -> TrainConfig:
    if args.resume:
        cfg_file = Path(args.resume) / "config.json"
        if not cfg_file.exists():
            raise FileNotFoundError(f"cannot resume: {cfg_file} does not exist")
        cfg = TrainConfig.from_dict(json.loads(cfg_file.read_text()))
    else:
        if args.preset not in available_presets():
            raise ValueError(f"unknown preset {args.preset!r}; run `jeat info presets`")
        cfg = get_preset(args.preset)
    shortcuts = {"method": "method.name", "data": "data.root", "dataset": "data.name", "arch": "model.arch",
                 "epochs": "epochs", "batch_size": "data.batch_size", "lr": "optim.lr", "seed": "seed",
                 "device": "device", "out": "out_dir", "name": "name", "init": "init",
                 "outdist": "data.outdist"}  # fmt: skip
    for attr, key in shortcuts.items():
        value = getattr(args, attr)
        if value is not None:
            apply_override(cfg, f"{key}={value}")
    if args.method:  # what the method implies (e.g. JEM++'s sampler), before the user's --set
        from ..methods import METHODS

        for key, value in getattr(METHODS.get(args.method), "implies", {}).items():
            apply_override(cfg, f"{key}={value}")
    if args.download:
        cfg.data.download = True
    for o in args.overrides:
        apply_override(cfg, o)
    validate(cfg)
    return cfg


def run(args) -> int:
    from ..training import train

    cfg = resolve_config(args)
    if args.print_config:
        print(cfg.to_json())
        return 0
    summary = train(cfg, run_dir=args.resume, resume=bool(args.resume), reseed=args.reseed,
                    progress=not args.no_progress)  # fmt: skip
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun only rank 0 prints the summary
        print(json.dumps(summary, indent=2))
    if summary.get("status") == "failed":  # finished, but the model is not usable: say so, and exit non-zero
        print(f"jeat train: FAILED: {summary['failure']}", file=sys.stderr)
        return 3
    if summary.get("status") == "stalled":  # usable, but not what the method can do: say so, exit 0
        print(f"jeat train: STALLED: {summary['stall']}", file=sys.stderr)
    if summary.get("status") == "saturated":  # a classifier, not the energy-based model asked for: say so, exit 0
        print(f"jeat train: SATURATED: {summary['saturation']}", file=sys.stderr)
    return 0
