"""``--set section.field=value`` overrides of a :class:`~jeat.config.TrainConfig`: the CLI string
parsed into the field's declared type (booleans, tuples, ``8/255``), unknown names refused."""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import fields
from typing import TYPE_CHECKING

from .config import RENAMED

if TYPE_CHECKING:
    from .config import TrainConfig


def _parse(value: str, t) -> object:
    """Parse a CLI string into the field's declared type."""
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        if value.lower() in ("none", "null", ""):
            return None
        return _parse(value, next(a for a in args if a is not type(None)))
    if t is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {value!r}")
    if origin is tuple:
        parts = [p for p in value.replace("[", "").replace("]", "").split(",") if p.strip()]
        return tuple(_parse(p.strip(), args[0]) for p in parts)
    if t is float:
        return parse_number(value)
    if t is int:
        v = parse_number(value)
        if not math.isfinite(v) or int(v) != v:
            raise ValueError(f"expected an integer, got {value!r}")
        return int(v)
    return value


def parse_number(value: str) -> float:
    """Numbers, with the fractions robustness papers write: ``8/255``."""
    if "/" in value:
        num, den = value.split("/", 1)
        return float(num) / float(den)
    return float(value)


def apply_override(cfg: TrainConfig, assignment: str) -> None:
    """Apply ``section.field=value`` (e.g. ``optim.lr=0.01``, ``method.attack.eps=8/255``)."""
    if "=" not in assignment:
        raise ValueError(f"override {assignment!r} must look like section.field=value")
    path, value = assignment.split("=", 1)
    obj = cfg
    *parents, leaf = path.strip().split(".")
    for p in parents:
        if not hasattr(obj, p) or not dataclasses.is_dataclass(getattr(obj, p)):
            raise ValueError(f"unknown config section {p!r} in {path!r}")
        obj = getattr(obj, p)
    hints = typing.get_type_hints(type(obj))
    if leaf in RENAMED.get(type(obj).__name__, {}):
        new = RENAMED[type(obj).__name__][leaf]
        raise ValueError(f"{path.strip()!r} was renamed {'.'.join([*parents, new])!r} (it judges validation data)")
    if leaf not in hints:
        choices = ", ".join(f.name for f in fields(obj))
        raise ValueError(f"unknown config field {path!r}; {type(obj).__name__} has: {choices}")
    if dataclasses.is_dataclass(hints[leaf]):
        choices = ", ".join(f.name for f in fields(hints[leaf]))
        raise ValueError(f"{path.strip()!r} is a config section, not a value; set one of its fields: {choices}")
    try:
        setattr(obj, leaf, _parse(value.strip(), hints[leaf]))
    except ValueError as e:
        raise ValueError(f"bad value for {path}: {e}") from None
