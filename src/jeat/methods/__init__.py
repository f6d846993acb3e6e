"""Training methods by name; each is a small :class:`Method` strategy for the one loop."""

from __future__ import annotations

from .base import Method
from .noise import NoiseInjection
from .standard import Standard

METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


for _cls in (Standard, NoiseInjection):
    register_method(_cls)


def build_method(cfg, model, train_set, device) -> Method:
    name = cfg.method.name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](cfg, model, train_set, device)


__all__ = ["METHODS", "Method", "build_method", "register_method"]
