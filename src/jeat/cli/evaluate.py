"""``jeat evaluate``: measure a checkpoint (robustness, FID, Fisher scores, calibration, ...)."""

from __future__ import annotations

import json
from pathlib import Path

from .options import add_model_options


def add_parser(sub) -> None:
    from ..evaluation.suites import SUITES

    suites = "\n".join(f"  {k:13s} {v[1]}" for k, v in SUITES.items())
    p = sub.add_parser(
        "evaluate",
        help="measure a trained model: robustness, FID/IS, Fisher scores, calibration, landscape, memorisation",
        description="Run evaluation suites on a checkpoint (run dir, checkpoint.pt or model.safetensors) and write "
        "metrics.json (every number with its settings and N) and report.md with plots.\n\nsuites:\n" + suites,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    p.add_argument("checkpoint", help="run directory, checkpoint.pt or model.safetensors")
    p.add_argument("--suite", default="robustness", help="comma-separated suites, or 'all' (default: robustness)")
    p.add_argument(
        "--n", type=int, default=1000, help="test images measured (first N of a fixed shuffle; default 1000)"
    )
    p.add_argument("--batch-size", type=int, default=200)
    p.add_argument("--data", help="data root (default: the run's data.root, else $JEAT_DATA)")
    p.add_argument("--test-file", help="test .npz inside the data root, e.g. test1k_lossless.npz")
    p.add_argument("--samples", help=".npz of generated images (x uint8 NHWC, y) for fid and memorisation")
    p.add_argument("--out", help="output directory (default RUN/eval/)")
    p.add_argument("--name", help="label of this model in reports and `jeat compare` (default: run dir name)")
    p.add_argument("--set", dest="options", action="append", default=[], metavar="SUITE.KEY=VALUE",
                   help="suite setting, repeatable: robustness.aa_n=500, robustness.autoattack=0, "
                   "robustness.pgd_steps=20,50, fid.n_ref=5000, fid.cache_dir=DIR, fid.is_weights=PATH, "
                   "fisher.probes=8, fisher.n=200, calibration.bins=20, landscape.images=4, "
                   "landscape.radius=2.0, memorisation.n=10, memorisation.train_n=10000")  # fmt: skip
    p.add_argument(
        "--norm",
        choices=("linf", "l2"),
        help="threat model of the robustness suite (default linf; same as --set robustness.norm=...)",
    )
    p.add_argument("--eps", help="its radius in [0, 1] pixel units, e.g. 8/255 or 0.5 (default 8/255 for linf, "
                   "0.5 for l2; also sets AutoAttack's)")  # fmt: skip
    p.add_argument("--download", action="store_true",
                   help="ood suite: download named sets (cifar100, svhn) missing from the data root")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--on", choices=("test", "valid"), default="test",
                   help="measure on the test set (default; reports) or on the run's validation split "
                   "(RUN/split.json: for choices such as hyper-parameters, which must not read the test set)",
                   )  # fmt: skip
    p.add_argument(
        "--offline",
        action="store_true",
        help="never download (IS weights); also JEAT_OFFLINE=1. Cached or given files are still used",
    )
    add_model_options(p)
    p.set_defaults(func=run)


def parse_options(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or "." not in key:
            raise ValueError(f"--set expects SUITE.KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def _options(args) -> dict:
    options = parse_options(args.options)
    if getattr(args, "norm", None):
        options["robustness.norm"] = args.norm
    if getattr(args, "download", False):
        options["ood.download"] = "1"
    if getattr(args, "eps", None):
        options["robustness.eps"] = args.eps
    if args.offline:
        options["fid.offline"] = "true"
    return options


def run(args) -> int:
    from ..evaluation import evaluate

    metrics = evaluate(args.checkpoint, suites=args.suite, n=args.n, batch_size=args.batch_size, device=args.device,
                       data=args.data, test_file=args.test_file, out_dir=args.out, samples=args.samples,
                       seed=args.seed, options=_options(args), progress=not args.no_progress,
                       name=args.name, weights=args.weights, on=args.on)  # fmt: skip
    from ..evaluation.report import compare_table

    print(compare_table([metrics]))
    out = Path(metrics.get("out_dir") or args.out)
    print(f"\nwrote {out / 'metrics.json'} and {out / 'report.md'}")
    if args.debug:
        print(json.dumps(metrics.get("timing_s", {})))
    return 0
