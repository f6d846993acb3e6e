"""AutoAttack "standard" through the ``pyautoattack`` package (the official code of Croce & Hein).

Why this package and not ``torchattacks.AutoAttack``: the latter runs 10 APGD iterations instead
of 100, so its numbers are not AutoAttack numbers. Before running we check that the object is
configured as the official standard version (l_inf): APGD-CE (100 iterations, 1 restart),
APGD-T (100 iterations, 9 target classes), FAB-T (100 iterations, 9 target classes), Square
(5000 queries, p_init 0.8) - and refuse to report a number otherwise.
The run is resumable: pyautoattack keeps its state (which attacks ran, which images are still
robust) in ``autoattack_state.json`` in the output directory; rerunning picks it up.
"""

from __future__ import annotations

import logging

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


def check_standard(adversary, num_classes: int = 10) -> dict:
    """The settings found on the object, compared with the official standard version.

    With fewer than 10 classes there are only C - 1 possible targets; the official code warns
    (checks.check_n_classes) and we then use C - 1, recorded in the returned settings."""
    expected = dict(STANDARD)
    if num_classes < 10:
        targets = num_classes - 1
        adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
        expected["apgd_targeted.n_target_classes"] = expected["fab.n_target_classes"] = targets
    found = {"attacks": list(adversary.attacks_to_run)}
    for key in STANDARD:
        if "." in key:
            obj, attr = key.split(".")
            found[key] = getattr(getattr(adversary, obj), attr)
    bad = {k: (found[k], v) for k, v in expected.items() if found[k] != v}
    if bad:
        raise RuntimeError(f"pyautoattack is not configured as AutoAttack standard: {bad} (found, expected)")
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


def run_autoattack(ctx: EvalContext, eps: float = 8 / 255) -> dict:
    try:
        from pyautoattack import AutoAttack
    except ImportError as e:
        return {"skipped": f"AutoAttack needs the pyautoattack package ({e}); pip install --no-deps pyautoattack"}
    n = min(len(ctx.test), int(ctx.opt("robustness", "aa_n", len(ctx.test))))
    x = ctx.test.images[:n].float().div(255)
    y = ctx.test.labels[:n]
    adversary = AutoAttack(ctx.model.eval(), norm="Linf", eps=eps, version="standard", device=ctx.device, seed=ctx.seed)
    settings = check_standard(adversary, ctx.test.num_classes)
    log, handler = logging.getLogger("auto-attack"), _Collect()
    log.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.DEBUG)
    state = ctx.out_dir / "autoattack_state.json"
    resumed = state.exists()
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    try:
        x_adv, y_adv = adversary.run_standard_evaluation(x, y, batch_size=ctx.batch_size, state_path=state)
    finally:
        log.removeHandler(handler)
        log.setLevel(old_level)
    y_adv = y_adv.to(y.device)
    acc = 100.0 * float((y_adv == y).sum()) / max(n, 1)
    max_linf = float((x_adv.to(x.device) - x).abs().amax()) if n else 0.0
    return {
        "accuracy": acc,
        "n": n,
        "eps": eps,
        "version": "standard",
        "package": "pyautoattack",
        "settings": settings,
        "max_linf": max_linf,
        "state_file": str(state),
        "resumed": resumed,
        "log": [s for s in handler.lines if "robust accuracy" in s or "initial" in s],
    }
