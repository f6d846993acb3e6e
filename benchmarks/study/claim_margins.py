"""Each claim's margin at each scale, and the direction it moves with budget (issue 37).

A margin is one signed number per seed, built so that *larger means the claim holds better* and with the line
where it holds stated beside it (e.g. claim 2: FID of Eq. 16's samples minus Eq. 17's, on the same PGD-AT run;
it holds above 0). Comparisons between models pair seed k of one model with seed k of the other (the seeds are
independent runs, so the pairing only fixes how many margins there are). The direction with budget compares
the two scales' mean margins with the 2-standard-error rule the precision study uses: a move counts only where
|medium - small| exceeds twice the standard error of the difference, and is "provisional" while a scale has a
single seed (no spread to judge it by). The verdicts in docs/RESULTS_notes.md stay written by hand; this table
gives them their numbers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from study_read import Scale, ece, fid, fisher, ood_auroc, psnr, robust

Reader = Callable[[Path], float | None]


def _diff(a: tuple[str, Reader], b: tuple[str, Reader]) -> Callable[[Scale], list[float | None]]:
    """a - b per seed."""

    def margin(sc: Scale) -> list[float | None]:
        xs, ys = sc.per_seed(*a), sc.per_seed(*b)
        return [None if x is None or y is None else x - y for x, y in zip(xs, ys, strict=True)]

    return margin


def _order(models: tuple[str, ...], get_for: Callable[[str], Reader], higher_first: bool) -> Callable:
    """How many of the pairs of ``models`` stand in the claimed order (first model highest if ``higher_first``)."""

    def margin(sc: Scale) -> list[float | None]:
        cols = [sc.per_seed(m, get_for(m)) for m in models]
        out: list[float | None] = []
        for k in range(len(cols[0])):
            v = [c[k] for c in cols]
            if any(x is None for x in v):
                out.append(None)
                continue
            pairs = [(v[i], v[j]) for i in range(len(v)) for j in range(i + 1, len(v))]
            out.append(float(sum((x > y) == higher_first for x, y in pairs)))
        return out

    return margin


def _best_of(models: tuple[str, ...], get: Reader, minus: tuple[str, Reader]) -> Callable:
    """The best of ``models`` per seed, minus ``minus``; None for a seed where any of them is missing (the best
    of the models that finished first is another quantity, and would change as the others come in)."""

    def margin(sc: Scale) -> list[float | None]:
        cols = [sc.per_seed(m, get) for m in models]
        base = sc.per_seed(*minus)
        out: list[float | None] = []
        for k, b in enumerate(base):
            v = [c[k] for c in cols]
            out.append(None if b is None or None in v else max(v) - b)
        return out

    return margin


@dataclass(frozen=True)
class Margin:
    claim: str  # the claim's number in RESULTS.md
    what: str  # the margin, in words
    holds: float  # the claim holds where the margin is at least this
    per_seed: Callable[[Scale], list[float | None]]


_PGD20, _AA = robust("pgd20"), robust("autoattack")
_SAMPLER5 = {"pgd": "ce", "prejeat": "joint", "jem": "joint", "jeat": "joint"}
MARGINS = (
    Margin(
        "1",
        "CE attack's accuracy minus the energy attack's, standard net (points; below 0: energy attack weaker)",
        -2.0,
        _diff(
            ("standard", robust("energy_attack", "normal_attack")),
            ("standard", robust("energy_attack", "energy_attack")),
        ),
    ),
    Margin("2", "FID Eq. 16 minus Eq. 17, PGD-AT (same run)", 0.0, _diff(("pgd", fid("ce")), ("pgd", fid("joint")))),
    Margin(
        "3",
        "pairs of Normal > AT > JEM > JEAT in order, JFS (of 6)",
        6.0,
        _order(("standard", "pgd", "jem", "jeat"), lambda m: fisher("jfs"), higher_first=True),
    ),
    Margin("4", "FID σ 8 minus σ 24 (Eq. 16)", 0.0, _diff(("noise-8", fid("ce")), ("noise-24", fid("ce")))),
    Margin(
        "5",
        "pairs of FID AT > PreJEAT > JEM > JEAT in order (of 6)",
        6.0,
        _order(("pgd", "prejeat", "jem", "jeat"), lambda m: fid(_SAMPLER5[m]), higher_first=True),
    ),
    Margin("6", "PGD-20, JEAT minus JEM (points)", 0.0, _diff(("jeat", _PGD20), ("jem", _PGD20))),
    Margin("6", "AutoAttack, JEAT minus JEM (points)", 0.0, _diff(("jeat", _AA), ("jem", _AA))),
    Margin("6", "PGD-20, JEAT minus PGD-AT (points; 'near': within 5)", -5.0, _diff(("jeat", _PGD20), ("pgd", _PGD20))),
    Margin(
        "7",
        "ECE under FGSM, standard minus JEAT (points)",
        0.0,
        _diff(("standard", ece("fgsm")), ("jeat", ece("fgsm"))),
    ),
    Margin(
        "7",
        "PSNR gain of JEAT's denoising, App. G.1 noise (dB)",
        0.0,
        _diff(("jeat", psnr("-sgld", "psnr_denoised")), ("jeat", psnr("-sgld", "psnr_noisy"))),
    ),
    Margin(
        "8",
        "FID energy-only minus combined, study SGLD (same run)",
        0.0,
        _diff(("robust-jem", fid("joint")), ("robust-jem", fid("combined"))),
    ),
    Margin(
        "8",
        "FID energy-only minus combined, the paper's inference",
        0.0,
        _diff(("robust-jem", fid("joint-paper")), ("robust-jem", fid("combined-paper"))),
    ),
    Margin(
        "9",
        "log p(x) AUROC, JEM minus standard (points)",
        0.0,
        _diff(("jem", ood_auroc("logpx")), ("standard", ood_auroc("logpx"))),
    ),
    Margin(
        "9",
        "log p(x) AUROC, best of JEM / JEAT / Robust JEM minus standard (points)",
        0.0,
        _best_of(("jem", "jeat", "robust-jem"), ood_auroc("logpx"), ("standard", ood_auroc("logpx"))),
    ),
)


def _cell(vals: list[float], holds: float) -> str:
    if not vals:
        return "not run"
    spread = f" ± {statistics.stdev(vals):.1f}" if len(vals) > 1 else ""
    n_ok = sum(v >= holds for v in vals)
    return f"{statistics.fmean(vals):.1f}{spread} (holds on {n_ok} of {len(vals)})"


def direction(small: list[float], large: list[float]) -> str:
    """How the margin moves from the smaller to the larger budget (2-SE rule on the difference of means)."""
    if not small or not large:
        return "not measured at both scales"
    change = statistics.fmean(large) - statistics.fmean(small)
    if len(small) < 2 or len(large) < 2:
        return f"{change:+.1f}, provisional (one seed at a scale: no spread)"
    se = math.sqrt(statistics.variance(small) / len(small) + statistics.variance(large) / len(large))
    if abs(change) <= 2 * se:
        return f"{change:+.1f} ± {se:.1f} (SE): within the seeds' spread"
    return f"{change:+.1f} ± {se:.1f} (SE): {'toward' if change > 0 else 'away from'} the claim"


def margins_section(scales: list[Scale]) -> list[str]:
    """RESULTS.md's margin table: a column per scale (mean ± sd of the per-seed margins) and, with two scales,
    the direction from the first to the last."""
    heads = [f"{sc.label}" for sc in scales] + (["direction with budget"] if len(scales) > 1 else [])
    L = ["", "## Each claim's margin at each scale", "",
         "One number per seed, larger where the claim holds better; 'holds on k of n': seeds at or above the line "
         "the claim needs (0 unless the margin says otherwise). Direction: the larger scale's mean minus the "
         "smaller's, counted as a move only beyond twice its standard error (`benchmarks/study/claim_margins.py`).",
         "", "| claim | margin | holds at | " + " | ".join(heads) + " |",
         "|---" * (3 + len(heads)) + "|"]  # fmt: skip
    for m in MARGINS:
        vals = [[v for v in m.per_seed(sc) if v is not None] for sc in scales]
        cells = [_cell(v, m.holds) for v in vals]
        if len(scales) > 1:
            cells.append(direction(vals[0], vals[-1]))
        L.append(f"| {m.claim} | {m.what} | ≥ {m.holds:g} | " + " | ".join(cells) + " |")
    return L
