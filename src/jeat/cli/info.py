"""``jeat info``: list presets, models, methods and data sets."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("info", help="list presets, models, methods or data sets")
    p.add_argument("what", choices=["presets", "models", "methods", "datasets"])
    p.set_defaults(func=run)


def run(args) -> int:
    if args.what == "presets":
        from ..presets import available_presets

        for name, desc in available_presets().items():
            print(f"{name:18s} {desc}")
    elif args.what == "models":
        from ..models import available_models

        print("\n".join(available_models()))
    elif args.what == "methods":
        from ..methods import describe_methods

        for name, desc in describe_methods().items():
            print(f"{name:18s} {desc}")
    else:
        from ..data import DATASETS

        print("\n".join(DATASETS))
    return 0
