"""The registry of evaluation suites: name -> ``run(ctx) -> dict`` (see :mod:`.common`).

Modules are imported lazily so that a suite's optional dependencies (matplotlib backends, the
Inception weights, pyautoattack) are touched only when that suite runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from .common import EvalContext

SuiteFn = Callable[[EvalContext], dict]

# name -> (module in jeat.evaluation, what it measures)
SUITES: dict[str, tuple[str, str]] = {
    "robustness": ("robustness", "clean, PGD-20/50, C&W-inf, Table 1 energy attack, AutoAttack, torchattacks check"),
    "fid": ("fid", "FID of --samples against the training set (IS only with the standard logits weights)"),
    "fisher": ("fisher", "Joint / Marginal Fisher Scores (Eq. 23-24), Hutchinson trace"),
    "calibration": ("calibration", "ECE (20 bins) on clean and FGSM data, reliability diagram (Fig. 16)"),
    "landscape": ("landscape", "E(x,y) contour on a random 2-D plane around real images (Fig. 2)"),
    "memorisation": ("memorisation", "nearest training images by SSIM for --samples (Fig. 7)"),
    "ood": ("ood", "OOD detection (JEM Table 3): AUROC/AUPR/FPR95 of log p(x), max p(y|x), grad norm"),
}
_EXTRA: dict[str, SuiteFn] = {}


def register_suite(name: str, fn: SuiteFn, description: str = "") -> None:
    """Add a suite from outside this package (e.g. a user's own metric)."""
    _EXTRA[name] = fn
    SUITES[name] = ("", description)


def get_suite(name: str) -> SuiteFn:
    if name in _EXTRA:
        return _EXTRA[name]
    if name not in SUITES:
        raise ValueError(f"unknown suite {name!r}; available: {', '.join(SUITES)}")
    return importlib.import_module(f"jeat.evaluation.{SUITES[name][0]}").run


def parse_suites(spec: str) -> list[str]:
    """'robustness,fid' -> ['robustness', 'fid']; 'all' -> every registered suite."""
    names = list(SUITES) if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    for n in names:
        if n not in SUITES:
            raise ValueError(f"unknown suite {n!r}; available: {', '.join(SUITES)}, or all")
    return names
