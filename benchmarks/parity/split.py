"""The validation split beside the references': the same held-out images, index for index?

JEM (``train_wrn_ebm.get_data``), JEM++ and EB-JDAT (``utils.get_data``) hold out ``--n_valid`` images
of CIFAR-10's training set and pick ``best_valid_ckpt`` on them. This check runs each reference's own
``get_data`` with its parser's defaults and its published command's flags (so ``n_valid`` is the
commit's, 5000), on a stand-in for torchvision's CIFAR10 that serves the real training labels from
``--data`` in file order (torchvision's order: data_batch_1..5), and compares the indices it holds out
with the split jeat draws from the preset a user runs (``data.valid_size``, ``data.valid_rule``).

    python benchmarks/parity/split.py --refs /path/to/checkouts --data ../shared/data

Writes ``benchmarks/results/parity_split.json``; exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from references import (  # noqa: E402
    REFERENCES,
    import_reference,
    install_stubs,
    ref_checkout,
    reference_parser,
    script_flags,
)

# method -> (preset, folder in the checkout, module holding get_data, training script, script with the command)
CASES = {
    "jem": ("paper-jem", "", "train_wrn_ebm", "train_wrn_ebm.py", "README.md"),
    "jempp": ("paper-jempp", "", "utils", "train_jempp.py", "scripts/jempp_cifar10.sh"),
    "eb-jdat": ("paper-eb-jdat", "EB-JDAT-JEM++", "utils", "train_jempp.py", "train.sh"),
}


class _Labels:
    """torchvision.datasets.CIFAR10 as get_data uses it: its length and ``[i][1]`` (the label)."""

    def __init__(self, labels: list[int]):
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return None, self.labels[i]


def _transforms() -> types.SimpleNamespace:
    """torchvision.transforms as get_data uses it: constructors whose results are never applied here."""
    names = ("Compose", "Pad", "RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize")
    return types.SimpleNamespace(**{n: (lambda *a, **k: None) for n in names})


def reference_valid(method: str, checkout: Path, train_labels: list[int], test_n: int) -> tuple[list[int], int]:
    """The indices the reference's own get_data holds out, and its n_valid."""
    _, sub, module, script, command = CASES[method]
    root = checkout / sub
    install_stubs()
    if method == "eb-jdat" and not (root / "utils.py").is_file():
        raise SystemExit(f"{root} has no utils.py (327ea16 tracks it)")
    mod = import_reference(root, module)
    flags = script_flags(root / command, script)
    flags = [f for i, f in enumerate(flags) if f != "--save_dir" and (i == 0 or flags[i - 1] != "--save_dir")]
    args = reference_parser(root / script).parse_args(flags)
    args.n_classes, args.debug = 10, True  # init_env's n_classes; debug: no loader workers (none would start)
    if getattr(args, "dataset", "cifar10") != "cifar10":
        raise SystemExit(f"{method}: the published command trains on {args.dataset}, not cifar10")
    mod.tr = _transforms()
    sets = {True: _Labels(train_labels), False: _Labels([0] * test_n)}
    mod.tv = types.SimpleNamespace(datasets=types.SimpleNamespace(
        CIFAR10=lambda root, transform, download, train: sets[train]))  # fmt: skip
    out = mod.get_data(args)
    valid = out[2].dataset.inds
    return sorted(int(i) for i in valid), int(args.n_valid)


def jeat_valid(preset: str, data: str) -> tuple[list[int], dict]:
    """The indices jeat's ``preset`` holds out of the same training set."""
    from jeat import get_preset
    from jeat.data import load_dataset
    from jeat.data.split import draw_split

    cfg = get_preset(preset)
    full = load_dataset("cifar10", "train", data)
    split = draw_split(full.labels, cfg.data.valid_size, cfg.seed, cfg.data.valid_rule)
    return split.valid, {"valid_size": cfg.data.valid_size, "valid_rule": cfg.data.valid_rule, "seed": cfg.seed}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(CASES))
    p.add_argument("--refs", help="folder of reference checkouts named <owner>+<repo>")
    p.add_argument("--data", default=os.environ.get("JEAT_DATA"), help="CIFAR-10 root (default $JEAT_DATA)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "parity_split.json")
    o = p.parse_args(argv)
    from jeat.data import load_dataset

    labels = load_dataset("cifar10", "train", o.data).labels.tolist()
    test_n = len(load_dataset("cifar10", "test", o.data))
    rows, ok = {}, True
    for m in o.methods.split(","):
        checkout = ref_checkout(m, None, o.refs)
        ref, n_valid = reference_valid(m, checkout, labels, test_n)
        ours, cfg = jeat_valid(CASES[m][0], o.data)
        same = ref == ours
        ok &= same
        counts = [sum(1 for i in ref if labels[i] == c) for c in range(10)]
        rows[m] = {"reference": f"{REFERENCES[m][0]}@{REFERENCES[m][1][:7]}", "preset": CASES[m][0],
                   "reference_n_valid": n_valid, "jeat": cfg, "reference_held_out": len(ref),
                   "jeat_held_out": len(ours), "in_both": len(set(ref) & set(ours)), "identical": same,
                   "reference_class_counts": counts}  # fmt: skip
        print(
            f"{m}: reference holds out {len(ref)} (n_valid {n_valid}), jeat's {CASES[m][0]} {len(ours)} "
            f"({cfg['valid_rule']}); {len(set(ref) & set(ours))} in both: {'identical' if same else 'DIFFERENT'}"
        )
    tmp = o.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(o.out)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
