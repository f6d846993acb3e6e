"""AutoAttack "standard" and "rand" through the ``pyautoattack`` package (the official code of Croce & Hein).

Why this package and not ``torchattacks.AutoAttack``: the latter runs 10 APGD iterations instead
of 100, so its numbers are not AutoAttack numbers. Before running we check that the object is
configured as the official standard version (l_inf): APGD-CE (100 iterations, 1 restart),
APGD-T (100 iterations, 9 target classes), FAB-T (100 iterations, 9 target classes), Square
(5000 queries, p_init 0.8) - and refuse to report a number otherwise. ``rand``
(``--set robustness.aa_version=rand``) is the official version for models whose prediction is
stochastic (e.g. sampling-based purification): APGD-CE and APGD-DLR, 100 iterations, 1 restart,
each gradient the mean over 20 draws (EOT); reports say which version produced the number.
The run is resumable per attack: ``autoattack_state.json`` in the output directory records which
attacks of the chain ran and which images are still robust; rerunning picks it up.
"""

from __future__ import annotations

import json
import logging

import torch

from ..training.checkpoint import atomic_write_json
from .common import EvalContext

STANDARD = {
    "attacks": ["apgd-ce", "apgd-t", "fab-t", "square"],
    "apgd.n_iter": 100,
    "apgd.n_restarts": 1,
    "apgd_targeted.n_iter": 100,
    "apgd_targeted.n_restarts": 1,
    "apgd_targeted.n_target_classes": 9,
    "fab.n_iter": 100,
    "fab.n_target_classes": 9,
    "square.n_queries": 5000,
    "square.p_init": 0.8,
}


RAND = {"attacks": ["apgd-ce", "apgd-dlr"], "apgd.n_iter": 100, "apgd.n_restarts": 1, "apgd.eot_iter": 20}
VERSIONS = {"standard": STANDARD, "rand": RAND}


def check_version(adversary, version: str, num_classes: int = 10) -> dict:
    """The settings found on the object, compared with the official version's."""
    if version == "standard":
        return check_standard(adversary, num_classes)
    return _compare(adversary, VERSIONS[version], version)


def _compare(adversary, expected: dict, version: str) -> dict:
    found = {"attacks": list(adversary.attacks_to_run)}
    for key in expected:
        if "." in key:
            obj, attr = key.split(".")
            found[key] = getattr(getattr(adversary, obj), attr)
    bad = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
    if bad:
        raise RuntimeError(f"pyautoattack is not configured as AutoAttack {version}: {bad} (found, expected)")
    return found


def check_standard(adversary, num_classes: int = 10) -> dict:
    """The settings found on the object, compared with the official standard version.

    With fewer than 10 classes there are only C - 1 possible targets; the official code warns
    (checks.check_n_classes) and we then use C - 1, recorded in the returned settings."""
    expected = dict(STANDARD)
    if num_classes < 10:
        targets = num_classes - 1
        adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
        expected["apgd_targeted.n_target_classes"] = expected["fab.n_target_classes"] = targets
    found = _compare(adversary, expected, "standard")
    if num_classes < 10:
        found["note"] = f"{num_classes} classes: {num_classes - 1} target classes instead of 9"
    return found


class _Collect(logging.Handler):
    """pyautoattack reports per-attack robust accuracy only through its logger; keep those lines."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def run_autoattack(ctx: EvalContext, eps: float = 8 / 255, norm: str = "linf") -> dict:
    """AutoAttack in the l_inf (``norm="linf"``) or l_2 (``"l2"``) ball of radius eps."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as e:
        return {"skipped": f"AutoAttack needs the pyautoattack package ({e}); pip install --no-deps pyautoattack"}
    version = str(ctx.opt("robustness", "aa_version", "standard"))
    if version not in VERSIONS:
        raise ValueError(f"robustness.aa_version must be one of {', '.join(VERSIONS)}, got {version!r}")
    n = min(len(ctx.test), int(ctx.opt("robustness", "aa_n", len(ctx.test))))
    x, y = ctx.test.images[:n].float().div(255), ctx.test.labels[:n]
    aa_norm = {"linf": "Linf", "l2": "L2"}[norm]
    adversary = AutoAttack(ctx.model.eval(), norm=aa_norm, eps=eps, version=version, device=ctx.device,
                           seed=ctx.seed)  # fmt: skip
    settings = check_version(adversary, version, ctx.test.num_classes)
    chain = list(adversary.attacks_to_run)
    # Our own resume state, written after every attack. pyautoattack 0.2.0's state_path cannot resume:
    # it stores the attack set with json's default=str and its resumed branch never defines y_adv.
    state_file = ctx.out_dir / "autoattack_state.json"
    key = {"n": n, "norm": aa_norm, "eps": eps, "seed": ctx.seed, "attacks": chain, "version": version}
    state = json.loads(state_file.read_text()) if state_file.is_file() else {}
    resumed = bool(state) and state.get("key") == key
    if not resumed:
        with torch.no_grad():
            clean = torch.cat([ctx.model(x[i : i + ctx.batch_size].to(ctx.device)).argmax(1).cpu()
                               for i in range(0, n, ctx.batch_size)]) == y  # fmt: skip
        state = {"key": key, "robust": clean.tolist(), "done": [], "after": {"clean": 100.0 * float(clean.sum()) / n}}
        atomic_write_json(state_file, state)
    robust = torch.tensor(state["robust"], dtype=torch.bool)
    log, handler = logging.getLogger("auto-attack"), _Collect()
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    max_linf = max_l2 = 0.0
    try:
        for attack in chain:
            if attack in state["done"]:
                continue
            idx = robust.nonzero().flatten()
            if len(idx):
                # The standard chain: each attack runs on the images every earlier attack failed on.
                adversary.attacks_to_run = [attack]
                x_adv, y_adv = adversary.run_standard_evaluation(x[idx], y[idx], batch_size=ctx.batch_size)
                robust[idx] = y_adv.cpu() == y[idx]
                max_linf = max(max_linf, float((x_adv.cpu() - x[idx]).abs().amax()))
                max_l2 = max(max_l2, float((x_adv.cpu() - x[idx]).flatten(1).norm(dim=1).amax()))
            state["done"].append(attack)
            state["robust"] = robust.tolist()
            state["after"][attack] = 100.0 * float(robust.sum()) / max(n, 1)
            atomic_write_json(state_file, state)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    return {"accuracy": 100.0 * float(robust.sum()) / max(n, 1), "n": n, "norm": aa_norm, "eps": eps,
            "version": version, "package": "pyautoattack", "settings": settings,
            "robust_accuracy_after": state["after"], "max_linf": max_linf, "max_l2": max_l2,
            "state_file": str(state_file), "resumed": resumed,
            "log": [s for s in handler.lines if "robust accuracy" in s or "initial" in s]}  # fmt: skip
