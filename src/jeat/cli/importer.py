"""``jeat import``: turn a JEM / JEM++, robustness-library or RobustBench checkpoint into a run
directory that every jeat command accepts (importing.py)."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("import", help="convert a published checkpoint (JEM, JEM++, robustness, RobustBench) to a run",
                       description="Convert another code base's checkpoint into a jeat run directory "
                       "(config.json, model.safetensors, replay_buffer.safetensors where present). The file is "
                       "read with weights_only=True.")  # fmt: skip
    p.add_argument("source", help="the checkpoint file (.pt, .pth or .safetensors)")
    p.add_argument("--format", required=True, choices=["jem", "robustness", "robustbench"],
                   help="jem: JEM / JEM++ {model_state_dict, replay_buffer}; robustness: MadryLab robustness; "
                   "robustbench: a plain state dict")  # fmt: skip
    p.add_argument("--out", required=True, help="run directory to write")
    p.add_argument("--arch", help="jeat architecture (default: inferred for WRNs; `jeat info models`)")
    p.add_argument("--normalization", help="override the input normalisation: cifar | half | none | mean=..;std=..")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..importing import import_checkpoint

    out = import_checkpoint(args.source, args.format, args.out, args.arch, args.normalization)
    print(json.dumps(json.loads((out / "import.json").read_text()), indent=2))
    print(f"wrote {out}: try `jeat evaluate {out}` or `jeat generate {out}`")
    return 0
