"""The preset registry: a name, a description and a function that builds a fresh TrainConfig."""

from __future__ import annotations

import copy
from collections.abc import Callable

from ..config import TrainConfig

PresetFn = Callable[[], TrainConfig]
_PRESETS: dict[str, tuple[PresetFn, str]] = {}


def register(name: str, description: str):
    def deco(fn: PresetFn) -> PresetFn:
        _PRESETS[name] = (fn, description)
        return fn

    return deco


def get_preset(name: str) -> TrainConfig:
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(_PRESETS))}")
    # A deep copy: presets share module-level parts (AttackConfig constants, SGLD configs), and a caller who
    # edits its config (cfg.method.attack.steps = 2) must not change the next get_preset of any preset.
    cfg = copy.deepcopy(_PRESETS[name][0]())
    cfg.preset = name
    return cfg


def available_presets() -> dict[str, str]:
    return {k: v[1] for k, v in sorted(_PRESETS.items())}
