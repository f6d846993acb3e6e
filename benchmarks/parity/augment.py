"""The augmented batches, pixel by pixel: each reference's own training transform beside the augmentation
its paper-* preset names (issue 35, state parity).

The references augment one PIL image at a time through torchvision (``RandomCrop``, ``Pad``,
``RandomHorizontalFlip``, ``ToTensor``); jeat augments a batch at once (``data.augment.augment``), with
its own draw order, so the two cannot share a random stream. What is compared instead, for N real
CIFAR-10 training images:

- **pixels**: every image jeat's augmentation produces must be, exactly, one of the outputs the
  reference's transform can produce from the same image. Those outputs are enumerated by running the
  reference's own transform objects (built from its source by evaluating the ``Compose(...)``
  expression its data code assigns) with their random draws fixed: ``torch.randint`` (RandomCrop's
  offsets) and ``torch.rand`` (the flip) return each possible value in turn while a transform runs;
  padding mode, crop size and flip are the reference's code. A reflect-padded crop where the
  reference zero-pads (or the reverse) matches none of them.
- **distribution**: the crop offsets and flips jeat drew, read off the matches, against uniform
  (chi-square over the offsets, binomial over flips; fails below p = 1e-3).
- **noise** (JEM's family adds ``args.sigma * randn`` after normalising to [-1, 1]): the standard
  deviation of jeat's added noise, in [-1, 1] units, against the reference's ``sigma`` under its
  published flags.

``Normalize`` is left out of the pixel comparison (jeat normalises inside the model; the constants are
pinned by the recorded configuration and the DAT harness). torchvision's Python transforms are imported
from its wheel without the package's ``__init__`` (its C extension does not load beside the CPU torch):

    pip download torchvision==0.28.0 --no-deps -d /tmp/tv && python -m zipfile -e /tmp/tv/*.whl DIR
    python benchmarks/parity/augment.py --refs /path/to/checkouts --torchvision DIR --data ../shared/data
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from references import REFERENCES, ref_checkout, reference_parser, script_flags  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "parity_augment.json"

# reference -> (file, function holding the assignment or None for module level, assigned name, preset,
#               the parser and command whose `sigma` the noise is compared with, or None)
SOURCES = {
    "jem": ("train_wrn_ebm.py", "get_data", "transform_train", "paper-jem", ("train_wrn_ebm.py", "README.md")),
    "jempp": ("utils.py", "get_data", "transform_train", "paper-jempp",
              ("train_jempp.py", "scripts/jempp_cifar10.sh")),
    "eb-jdat": ("utils.py", "get_data", "transform_train", "paper-eb-jdat", ("train_jempp.py", "train.sh")),
    "sadajem": ("utils.py", "get_data", "transform_train", "paper-sadajem", None),
    "trades": ("train_trades_cifar10.py", None, "transform_train", "paper-trades", None),
    "weat": ("main.py", "main", "transform_train", "paper-weat", None),
    "dat": ("rebm/training/data.py", "get_cifar10_dataset", "transform", "paper-dat", None),
    "free": ("utils.py", "get_loaders", "train_transform", "paper-free", None),
    "fast": ("utils.py", "get_loaders", "train_transform", "paper-fast", None),
}  # fmt: skip
GEOMETRIC = ("Pad", "RandomCrop", "RandomHorizontalFlip", "ToTensor")


def load_torchvision_transforms(folder: Path):
    """torchvision.transforms from an unpacked wheel, its package ``__init__`` skipped."""
    root = folder / "torchvision"
    if not (root / "transforms" / "transforms.py").is_file():
        raise SystemExit(f"{folder}: no torchvision/transforms/transforms.py (unpack a torchvision wheel there)")
    pkg = types.ModuleType("torchvision")
    pkg.__path__ = [str(root)]
    sys.modules.setdefault("torchvision", pkg)
    import torchvision.transforms as transforms  # noqa: PLC0415

    return transforms


def reference_transform(path: Path, function: str | None, name: str, tv):
    """The ``Compose`` the reference assigns to ``name`` (in ``function``; the last such assignment with a
    horizontal flip: the CIFAR branch), evaluated with its own transform classes; only the geometric
    steps are kept. Returns (transform, kept names, dropped names)."""
    tree = ast.parse(path.read_text())
    scope = tree if function is None else next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == function)  # fmt: skip
    found = [n.value for n in ast.walk(scope) if isinstance(n, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == name for t in n.targets)
             and "Compose" in ast.unparse(n.value) and "RandomHorizontalFlip" in ast.unparse(n.value)]  # fmt: skip
    if not found:
        raise SystemExit(f"{path}: no {name} = ...Compose([... RandomHorizontalFlip ...]) in {function or 'module'}")
    expr = max(found, key=lambda v: v.lineno)
    ns = {"tr": tv, "transforms": tv, "T": tv, "t": torch, "torch": torch, "np": np, "im_sz": 32,
          "args": argparse.Namespace(sigma=0.0), "mean": (0.5,) * 3, "std": (0.5,) * 3,
          "cifar10_mean": (0.5,) * 3, "cifar10_std": (0.25,) * 3}  # fmt: skip
    compose = eval(compile(ast.Expression(expr), str(path), "eval"), ns)  # the reference's own expression
    kept = [s for s in compose.transforms if type(s).__name__ in GEOMETRIC]
    dropped = [type(s).__name__ if type(s).__name__ != "function" else "lambda" for s in compose.transforms
               if s not in kept]  # fmt: skip
    return tv.Compose(kept), [type(s).__name__ for s in kept], dropped, ast.unparse(expr)


@contextlib.contextmanager
def fixed_draws(offsets: tuple[int, int], flip: bool):
    """torch.randint returns the two crop offsets in turn, torch.rand the flip decision."""
    saved_randint, saved_rand = torch.randint, torch.rand
    it = iter(offsets)
    torch.randint = lambda *a, **k: torch.tensor([next(it)])
    torch.rand = lambda *a, **k: torch.tensor([0.0 if flip else 1.0])
    try:
        yield
    finally:
        torch.randint, torch.rand = saved_randint, saved_rand


def candidates(transform, img, span: int) -> torch.Tensor:
    """Every output of ``transform`` on ``img``: (span * span * 2, C, H, W), ordered (i, j, flip)."""
    out = []
    for i in range(span):
        for j in range(span):
            for flip in (False, True):
                with fixed_draws((i, j), flip):
                    out.append(transform(img))
    return torch.stack(out)


def compare(method: str, checkout: Path, tv, images: torch.Tensor, seed: int) -> dict:
    from PIL import Image  # noqa: PLC0415

    from jeat import get_preset  # noqa: PLC0415
    from jeat.data.augment import augment  # noqa: PLC0415

    file, function, name, preset, sigma_src = SOURCES[method]
    sub = REFERENCES[method][2]
    path = checkout / sub / file
    transform, kept, dropped, source = reference_transform(path, function, name, tv)
    kind = get_preset(preset).data.augment
    x = images.float() / 255
    gen = torch.Generator().manual_seed(seed)
    ours = augment(x, kind, gen, noise_std=0.0) if kind == "jem" else augment(x, kind, gen)
    span = 9  # a 32 x 32 crop of a 40 x 40 padded image: offsets 0..8
    matched, unmatched, worst = [], 0, 0.0
    for k in range(len(images)):
        img = Image.fromarray(images[k].permute(1, 2, 0).numpy())
        cand = candidates(transform, img, span)
        if cand.shape[1:] != ours.shape[1:]:
            raise SystemExit(f"{method}: the reference's transform gives {tuple(cand.shape[1:])}")
        d = (cand - ours[k]).flatten(1).abs().amax(1)
        best = int(d.argmin())
        worst = max(worst, float(d[best]))
        if float(d[best]) > 1e-6:
            unmatched += 1
        else:
            matched.append(best)
    cells = np.bincount([m // 2 for m in matched], minlength=span * span)
    flips = sum(m % 2 for m in matched)
    from scipy.stats import binomtest, chisquare  # noqa: PLC0415

    p_offsets = float(chisquare(cells).pvalue) if matched else 0.0
    p_flips = float(binomtest(flips, len(matched), 0.5).pvalue) if matched else 0.0
    rec = {"preset": preset, "augment": kind, "reference_transform": source, "compared": kept, "left_out": dropped,
           "n": len(images), "unmatched": unmatched, "max_abs_of_best_match": worst,
           "offsets_chi2_p": p_offsets, "flips": flips, "flips_p": p_flips}  # fmt: skip
    passed = unmatched == 0 and p_offsets > 1e-3 and p_flips > 1e-3
    if sigma_src is not None:  # JEM's family: the Gaussian noise after normalising to [-1, 1]
        script, command = sigma_src
        flags = script_flags(checkout / sub / command, script)
        sigma = reference_parser(checkout / sub / script).parse_args(flags).sigma
        noisy = augment(x, kind, torch.Generator().manual_seed(seed)) if kind == "jem" else ours
        std_u = float(2 * (noisy - ours).std())  # same generator: the difference is the noise alone, in [-1, 1] units
        se = std_u / math.sqrt(2 * (noisy - ours).numel())
        rec.update({"sigma_reference": sigma, "noise_std_jeat": std_u, "noise_se": se})
        passed = passed and abs(std_u - sigma) <= 5 * se + 1e-12
    rec["pass"] = passed
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--refs", required=True)
    p.add_argument("--torchvision", required=True, help="an unpacked torchvision wheel (holds torchvision/)")
    p.add_argument("--data", default=None)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(SOURCES))
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    tv = load_torchvision_transforms(Path(a.torchvision))
    from jeat.data import load_dataset  # noqa: PLC0415

    images = load_dataset("cifar10", "train", a.data).images[: a.n]
    out = Path(a.out)
    results = json.loads(out.read_text()) if out.is_file() else {}
    for m in a.methods.split(","):
        rec = compare(m, ref_checkout(m, None, a.refs), tv, images, a.seed)
        rec["reference"] = {"repo": REFERENCES[m][0], "commit": REFERENCES[m][1]}
        rec["torchvision"] = Path(a.torchvision).name
        results[m] = rec
        print(f"{m}: {'pass' if rec['pass'] else 'FAIL'} {rec['augment']} vs {rec['compared']}: "
              f"{rec['unmatched']} of {rec['n']} unmatched, offsets p {rec['offsets_chi2_p']:.2g}, "
              f"flips {rec['flips']} (p {rec['flips_p']:.2g})"
              + (f", noise {rec['noise_std_jeat']:.4f} vs sigma {rec['sigma_reference']}" if "sigma_reference" in rec
                 else ""), flush=True)  # fmt: skip
    from jeat.atomic import atomic_write_text  # noqa: PLC0415

    atomic_write_text(out, json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
