"""What the study trains: its scales (budgets) and models, read by study.py, study_report.py and compute.py."""

from __future__ import annotations

from jeat import get_preset
from jeat.config import TrainConfig
from jeat.overrides import apply_override

# Training budgets: every model sees the same images and epochs within a CPU scale ("presets": "cpu", the
# models' cpu-* presets with the scale's train_limit and epochs). "paper": each model's paper-* preset as it
# stands (its network, epochs, batch, precision and validation split; train_limit and epochs None = the preset's),
# for GPUs: the whole test set, AutoAttack on 1,000 of it, FID from 10,000 samples against the training
# images the run trained on (at most n_ref). The papers give no evaluation sizes (docs/RESULTS_notes.md, "What
# the paper's scale would need").
SCALES = {
    "small": {"train_limit": 10_000, "epochs": 4, "n_eval": 500, "n_aa": 100, "per_class": 50, "n_ref": 1000,
              "presets": "cpu"},
    "medium": {"train_limit": 50_000, "epochs": 8, "n_eval": 1000, "n_aa": 200, "per_class": 100, "n_ref": 5000,
               "presets": "cpu"},
    "paper": {"train_limit": None, "epochs": None, "n_eval": 10_000, "n_aa": 1000, "per_class": 1000,
              "n_ref": 50_000, "presets": "paper"},
}  # fmt: skip
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


# Models a scale leaves out: paper-jem is JEM as published (no energy L2), so at the paper's scale jem-no-l2
# would train jem again with only the guard's recovery turned off.
SKIPPED = {"paper": ("jem-no-l2",)}


def models_of(scale: str) -> list[str]:
    """The models a scale trains, in the plan's order."""
    return [m for m in MODELS if m not in SKIPPED.get(scale, ())]


def preset_of(model: str, scale: str) -> tuple[str, list[str]]:
    """(preset, the plan's extra flags) of a model at a scale: cpu-X with MODELS' changes, or paper-X as it stands
    (the changes are to the cpu presets)."""
    if model not in models_of(scale):
        raise ValueError(f"model {model!r} is not trained at the {scale!r} scale (study_plan.SKIPPED)")
    preset, extra = MODELS[model]
    if SCALES[scale]["presets"] == "paper":
        return preset.replace("cpu-", "paper-"), []
    return preset, extra


def planned_config(model: str, scale: str = "small") -> TrainConfig:
    """A study model's configuration as the plan builds it: its preset with the plan's ``--set`` changes (runs
    archived before config.json was, 2026-12-07, have none: this is how a report knows that jem-no-l2 has no L2)."""
    preset, extra = preset_of(model, scale)
    cfg = get_preset(preset)
    for flag, assignment in zip(extra[::2], extra[1::2], strict=True):
        if flag == "--set":
            apply_override(cfg, assignment)
    return cfg
