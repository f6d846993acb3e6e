"""Robust accuracy (Tables 2-3) and the energy attack (Table 1).

All attacks are l_inf with eps 8/255, step 2/255 and a random start unless set otherwise;
``robustness.norm=l2`` (``jeat evaluate --norm l2``) runs the same PGD attacks in the l_2 ball,
eps 0.5 and step 0.1 by default (DAT's and RobustBench's CIFAR-10 l_2 setting), AutoAttack with
``norm="L2"``, torchattacks.PGDL2 as the check, and the C&W margin PGD as ``cw_margin_l2``. Every
entry records its norm and eps:
- ``pgd20`` / ``pgd50``: our PGD on CE = E(x,y) - E(x) (Eq. 14), :func:`jeat.attacks.pgd`.
- ``cw``: the JEAT paper's "C&W, c = 0.2" column: Carlini & Wagner's l_2 minimum-distortion
  attack (:func:`jeat.attacks.cw_l2`; no eps-ball, 50 Adam steps, cross-checked against
  torchattacks.CW in the tests).
- ``cw_linf``: l_inf PGD on the C&W margin loss (see :mod:`.cw`; "C&W_inf" of TRADES-style tables).
- ``energy_attack``: Table 1 - the same PGD ascending E(x,y) only (Eq. 18) next to the CE attack;
  success = share of clean-correct images the attack makes wrong.
- ``autoattack``: the official AutoAttack "standard" (APGD-CE, APGD-T, FAB-T, Square) from the
  ``pyautoattack`` package (see :mod:`.autoattack`).
- ``torchattacks_check``: torchattacks.PGD on the same images, an independent implementation.
Our attacks run with eval-mode BN folded into the convolutions before it (``robustness.fold_bn=1``,
:mod:`jeat.models.folding`: the same function, fewer memory passes); AutoAttack and the torchattacks
check run on the model as it is.
Counts are accumulated as device tensors and synced once at the end (no .item() per batch).
"""

from __future__ import annotations

import math

import torch

from ..attacks import cw_l2, pgd
from ..models.folding import folded_bn
from ..overrides import parse_number
from .autoattack import run_autoattack
from .common import EvalContext, batches, pct
from .cw import cw_linf

EPS, STEP = 8 / 255, 2 / 255
DEFAULTS = {"linf": (EPS, STEP), "l2": (0.5, 0.1)}  # norm -> (eps, step)


def threat_model(ctx: EvalContext) -> tuple[str, float, float]:
    """(norm, eps, step) from ``robustness.norm`` / ``.eps`` / ``.step`` ("8/255" is accepted)."""
    norm = str(ctx.opt("robustness", "norm", "linf")).lower().replace("_", "")
    if norm not in DEFAULTS:
        raise ValueError(f"robustness.norm must be linf or l2, got {norm!r}")
    eps = _number(ctx.options.get("robustness.eps", DEFAULTS[norm][0]))
    step = _number(ctx.options.get("robustness.step", DEFAULTS[norm][1]))
    if eps < 0 or step < 0:
        raise ValueError(f"robustness.eps and robustness.step must be >= 0, got {eps}, {step}")
    return norm, eps, step


def _number(v) -> float:
    return parse_number(v) if isinstance(v, str) else float(v)  # "8/255" as --set parses it


def _attacks(ctx: EvalContext) -> dict:
    norm, eps, step = threat_model(ctx)
    table1_steps = ctx.opt("robustness", "energy_steps", 20)
    ball = dict(eps=eps, step_size=step, norm=norm)
    out = {}
    for k in str(ctx.opt("robustness", "pgd_steps", "20,50")).split(","):
        if k.strip():
            out[f"pgd{int(k)}"] = dict(kind="pgd", energy="ce", steps=int(k), **ball)
    out["cw"] = dict(kind="cw_l2", c=ctx.opt("robustness", "cw_c", 0.2), steps=ctx.opt("robustness", "cw_l2_steps", 50),
                     lr=ctx.opt("robustness", "cw_lr", 0.01))  # fmt: skip
    cw_key = "cw_linf" if norm == "linf" else "cw_margin_l2"
    out[cw_key] = dict(kind="cw_linf", steps=ctx.opt("robustness", "cw_steps", 20), **ball)
    out["energy_attack_ce"] = dict(kind="pgd", energy="ce", steps=table1_steps, **ball)
    out["energy_attack_joint"] = dict(kind="pgd", energy="joint", steps=table1_steps, **ball)
    only = str(ctx.opt("robustness", "attacks", ""))  # e.g. "pgd20,cw_linf": only these (leaderboard)
    if only:
        keep = {k.strip() for k in only.split(",") if k.strip()}
        unknown = keep - set(out) - {"energy_attack"}
        if unknown:
            raise ValueError(f"unknown robustness.attacks {sorted(unknown)}; choose from {sorted(out)}, energy_attack")
        out = {k: v for k, v in out.items() if k in keep or (k.startswith("energy_attack") and "energy_attack" in keep)}
    return out


def _run_attack(model, x, y, a: dict):
    if a["kind"] == "cw_l2":
        return cw_l2(model, x, y, a["c"], 0.0, a["steps"], a["lr"])
    if a["kind"] == "cw_linf":
        return cw_linf(model, x, y, a["eps"], a["step_size"], a["steps"], norm=a["norm"])
    return pgd(model, x, y, a["eps"], a["step_size"], a["steps"], energy=a["energy"], norm=a["norm"])


def binomial_se(acc_pct: float, n: int) -> float:
    """Standard error of an accuracy (percent) over n images: 100 sqrt(p(1-p)/n)."""
    p = acc_pct / 100
    return 100 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def run(ctx: EvalContext) -> dict:
    model, dev, n = ctx.model.eval(), ctx.device, len(ctx.test)
    attacks = _attacks(ctx)
    torch.manual_seed(ctx.seed)
    zero = lambda: torch.zeros((), dtype=torch.long, device=dev)
    clean = zero()
    correct = {k: zero() for k in attacks}
    flipped = {k: zero() for k in attacks}  # clean-correct and wrong after the attack
    max_dev = {k: torch.zeros((), device=dev) for k in attacks}
    max_l2 = {k: torch.zeros((), device=dev) for k in attacks}
    l2_sum = torch.zeros((), device=dev)  # C&W l_2: mean distortion of its successful examples
    bar = ctx.bar(n, "robustness")
    for x, y in batches(ctx.test, ctx.batch_size, dev):
        with torch.no_grad():
            ok = model(x).argmax(1) == y
        clean += ok.sum()
        for k, a in attacks.items():
            with folded_bn(model, bool(ctx.opt("robustness", "fold_bn", 1))):
                x_adv = _run_attack(model, x, y, a)
            with torch.no_grad():
                ok_adv = model(x_adv).argmax(1) == y
            correct[k] += ok_adv.sum()
            flipped[k] += (ok & ~ok_adv).sum()
            max_dev[k] = torch.maximum(max_dev[k], (x_adv - x).abs().amax())
            max_l2[k] = torch.maximum(max_l2[k], (x_adv - x).flatten(1).norm(dim=1).amax())
            if a["kind"] == "cw_l2":
                l2_sum += ((x_adv - x).flatten(1).norm(dim=1) * (ok & ~ok_adv)).sum()
        bar.update(len(y))
    bar.close()

    clean_acc = pct(clean, n)
    norm, eps, step = threat_model(ctx)
    res: dict = {"n": n, "norm": norm, "eps": eps, "step_size": step,
                 "clean": {"accuracy": clean_acc, "se": binomial_se(clean_acc, n), "n": n}}  # fmt: skip
    for k, a in attacks.items():
        acc = pct(correct[k], n)
        entry = {
            "accuracy": acc,
            "se": binomial_se(acc, n),
            "n": n,
            "max_linf": float(max_dev[k]),
            "max_l2": float(max_l2[k]),
            "success_rate": pct(flipped[k], int(clean)),
            **{p: a[p] for p in ("norm", "eps", "step_size", "steps", "c", "lr") if p in a},
            "random_start": a["kind"] != "cw_l2",
        }
        if a["kind"] == "cw_l2":
            entry["loss"] = f"Carlini-Wagner l_2 (minimum distortion, c = {a['c']:g}, Adam, no eps-ball), the paper's"
            entry["mean_l2_of_successes"] = float(l2_sum / max(int(flipped[k]), 1))
        elif a["kind"] == "cw_linf":
            entry["loss"] = f"C&W margin max_{{j!=y}} f_j - f_y, {a['norm']} PGD (not the paper's l_2 C&W)"
        else:
            entry["loss"] = {"ce": "cross-entropy E(x,y)-E(x) (Eq. 14)", "joint": "E(x,y) only (Eq. 18)"}[a["energy"]]
        res[k] = entry
    if "energy_attack_ce" in res:
        res["energy_attack"] = {
            "what": "Table 1: CE attack vs energy attack (E(x,y) only), same PGD settings",
            "no_attack": clean_acc,
            "normal_attack": res.pop("energy_attack_ce"),
            "energy_attack": res.pop("energy_attack_joint"),
        }
    if ctx.opt("robustness", "autoattack", 1):
        res["autoattack"] = run_autoattack(ctx, eps=eps, norm=norm)
    if ctx.opt("robustness", "torchattacks", 1):
        first = next((k for k in attacks if k.startswith("pgd")), None)  # pgd20 unless robustness.pgd_steps=...
        if first is not None:
            res["torchattacks_check"] = torchattacks_check(ctx, res[first], res[first]["steps"])
    return res


def torchattacks_check(ctx: EvalContext, ours: dict | None, steps: int = 20) -> dict:
    """torchattacks.PGD (PGDL2 for l_2) with our settings on the same images: accuracies should agree within noise.

    Both use random starts drawn independently, so only the accuracies (not the images) can agree."""
    try:
        import torchattacks
    except ImportError as e:
        return {"skipped": f"torchattacks is not installed ({e}); pip install --no-deps torchattacks scipy requests"}
    norm, eps, step = threat_model(ctx)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    atk = cls(ctx.model, eps=eps, alpha=step, steps=steps, random_start=True)
    correct, n = torch.zeros((), dtype=torch.long, device=ctx.device), len(ctx.test)
    bar = ctx.bar(n, f"torchattacks.{cls.__name__}")
    for x, y in batches(ctx.test, ctx.batch_size, ctx.device):
        x_adv = atk(x, y)
        with torch.no_grad():
            correct += (ctx.model(x_adv).argmax(1) == y).sum()
        bar.update(len(y))
    bar.close()
    ctx.model.eval()  # torchattacks restores the mode it found; make sure we stay in eval
    acc = pct(correct, n)
    out = {
        "accuracy": acc,
        "n": n,
        "attack": f"torchattacks.{cls.__name__}",
        "steps": steps,
        "norm": norm,
        "eps": eps,
        "step_size": step,
        "version": getattr(torchattacks, "__version__", "?"),
    }
    if ours and ours.get("steps") == steps:
        # Two independent random starts: the difference has SE ~ sqrt(2) * SE(acc); allow 3 SE + 1 image.
        tol = 3 * math.sqrt(2) * binomial_se(ours["accuracy"], n) + 100 / n
        out.update(
            ours=ours["accuracy"],
            difference=acc - ours["accuracy"],
            tolerance=tol,
            agree=abs(acc - ours["accuracy"]) <= tol,
        )
    return out
