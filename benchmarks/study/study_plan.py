"""What the study trains: its scales (budgets) and models, read by study.py, study_report.py and compute.py."""

from __future__ import annotations

from jeat import get_preset
from jeat.config import TrainConfig
from jeat.overrides import apply_override

# Training budgets: every model sees the same images and epochs within a scale.
SCALES = {
    "small": {"train_limit": 10_000, "epochs": 4, "n_eval": 500, "n_aa": 100, "per_class": 50, "n_ref": 1000},
    "medium": {"train_limit": 50_000, "epochs": 8, "n_eval": 1000, "n_aa": 200, "per_class": 100, "n_ref": 5000},
}
# name -> (preset, extra overrides)
MODELS = {
    "standard": ("cpu-standard", []),
    "noise-8": ("cpu-noise-8", []),
    "noise-16": ("cpu-noise-16", []),
    "noise-24": ("cpu-noise-24", []),
    "pgd": ("cpu-pgd", []),
    "prejeat": ("cpu-prejeat", []),
    # JEM and JEAT share one CPU recipe (256-chain buffer, 10 SGLD steps; presets/jeat_paper.py says why).
    "jem": ("cpu-jem", []),
    "jeat": ("cpu-jeat", []),
    "robust-jem": ("cpu-robust-jem", []),
    # JEM as published (cpu-jem without the energy L2 that cpu-jem now carries), guard warn-only:
    # what the stabiliser and recovery buy, shown on the same budget.
    "jem-no-l2": ("cpu-jem", ["--set", "method.energy_l2=0", "--set", "guard.policy=warn"]),
    # Robust JEM's base (issue 37): JEM++ at the study's budget, its CPU preset otherwise
    "jempp": ("cpu-jempp", []),
}
# Claim 9 (JEM's Table 3): the models whose log p(x), max p(y|x) and gradient norm are scored as OOD detectors
# (claim9_ood.py's evaluation). jem-no-l2 asks whether the energy L2 is behind a hybrid's inverted log p(x)
# (issue 37); added 2026-12-07, after the small scale's runs had finished, so measured from the medium scale on.
OOD = ("standard", "pgd", "jem", "jem-no-l2", "jeat", "robust-jem", "jempp")
# Trained only: second seeds of the two EBM twins (is one seed's result luck?)
CHECKS = {"jem-seed1": ("cpu-jem", ["--seed", "1"]), "jeat-seed1": ("cpu-jeat", ["--seed", "1"])}


def planned_config(model: str) -> TrainConfig:
    """A study model's configuration as the plan builds it: its preset with the plan's ``--set`` changes (the
    study's archive keeps no config.json, so this is how a report knows, e.g., that jem-no-l2 has no L2)."""
    preset, extra = MODELS[model]
    cfg = get_preset(preset)
    for flag, assignment in zip(extra[::2], extra[1::2], strict=True):
        if flag == "--set":
            apply_override(cfg, assignment)
    return cfg
