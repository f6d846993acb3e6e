"""What a study run's files say: one study folder per scale (run folders or the committed archive) and a
reader per measurement, each returning None where the file or the number is missing (study_report.py
turns that into "not run", never a number nobody measured)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from study_plan import MODELS, planned_config
from study_runs import _load

from jeat.cli.plot import read_metrics
from jeat.config import GuardConfig, TrainConfig
from jeat.training.summary import saturation_reason, stall_reason

OOD_SETS = ("uniform", "gaussian", "constant", "interp", "grayscale", "permuted")


def _dig(d: dict | None, *keys: str):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


@dataclass
class Scale:
    """One study's output folder: its name, budget (study.SCALES) and seeds (None: unseeded names)."""

    label: str
    out: Path
    budget: dict
    seeds: list[int] | None = None

    def names(self, model: str) -> list[str]:
        return [f"{model}-s{s}" for s in self.seeds] if self.seeds else [model]

    def runs(self, model: str) -> list[Path]:
        """The model's finished runs (summary.json written)."""
        return [self.out / n for n in self.names(model) if (self.out / n / "summary.json").is_file()]

    def per_seed(self, model: str, get: Callable[[Path], float | None]) -> list[float | None]:
        """``get`` of each seed's run in seed order, None where that seed has not finished or measured it
        (claim_margins pairs seed k of one model with seed k of another)."""
        return [get(self.out / n) if (self.out / n / "summary.json").is_file() else None for n in self.names(model)]

    def values(self, model: str, get: Callable[[Path], float | None]) -> list[float]:
        return [v for v in self.per_seed(model, get) if v is not None]


# Readers: one measured number of one run (None: not measured).
def summary(run: Path) -> dict:
    return _load(run / "summary.json") or {}


def suites(run: Path) -> dict:
    return _dig(_load(run / "eval" / "metrics.json"), "suites") or {}


def test_acc(run: Path) -> float | None:
    a = summary(run).get("test_acc")
    return None if a is None else 100 * a


def robust(*keys: str, field: str = "accuracy") -> Callable[[Path], float | None]:
    """An accuracy (percent, as jeat evaluate stores it) under suites.robustness.<keys>."""
    return lambda run: _dig(suites(run), "robustness", *keys, field)


def fisher(key: str) -> Callable[[Path], float | None]:
    return lambda run: _dig(suites(run), "fisher", key, "score")


def ece(key: str) -> Callable[[Path], float | None]:
    return lambda run: None if (v := _dig(suites(run), "calibration", key, "ece")) is None else 100 * v


def fid(sampler: str) -> Callable[[Path], float | None]:
    return lambda run: _dig(_load(run / f"gen-{sampler}" / "eval" / "metrics.json"), "suites", "fid", "fid")


def psnr(variant: str, key: str) -> Callable[[Path], float | None]:
    return lambda run: _dig(_load(run / f"denoise{variant}" / "metrics.json"), key)


def ood_auroc(score: str) -> Callable[[Path], float | None]:
    """AUROC (%) of one OOD score, averaged over the synthetic sets the run was evaluated on (claim 9)."""

    def get(run: Path) -> float | None:
        sets = _dig(_load(run / "ood-claim9" / "metrics.json"), "suites", "ood", "sets") or {}
        vals = [sets[s][score]["auroc"] for s in OOD_SETS if _dig(sets, s, score, "auroc") is not None]
        return 100 * statistics.fmean(vals) if vals else None

    return get


def run_config(run: Path) -> TrainConfig | None:
    """The run's configuration: its config.json (archived since 2026-12-07), else the small and medium plans'
    (the runs archived before then have none; those scales' plans are the same), None for a run of no model."""
    saved = _load(run / "config.json")
    if saved:
        return TrainConfig.from_dict(saved)
    model = run.name.rsplit("-s", 1)[0]
    return planned_config(model) if model in MODELS else None


def run_status(run: Path) -> str:
    """summary.json's status; a finished run trained before the stall and saturation rules (added 2026-12-07)
    that a rule calls stalled or saturated is marked so from its metrics and its configuration (run_config),
    with the guard's default thresholds: the page never calls it ok."""
    status = summary(run).get("status", "?")
    path = run / "metrics.jsonl"
    if status not in ("ok", "recovered", "warned") or not path.is_file():
        return status
    g = GuardConfig()
    epochs = [r for r in read_metrics(path) if r.get("kind") == "epoch"]
    # 10 classes: the study trains on CIFAR-10 only
    if g.stall and stall_reason(epochs, "valid_acc", 10, g.stall_ce, g.stall_gain, "validation accuracy"):
        return f"stalled ({status} at training time)"
    cfg = run_config(run)
    m = cfg.method if cfg else None
    if g.saturation and m and m.energy_l2 > 0 and saturation_reason(epochs, m.px_weight / m.energy_l2,
                                                                     g.saturation_share):  # fmt: skip
        return f"saturated ({status} at training time)"
    return status
