"""Every paper-* preset against its reference's recorded configuration (docs/spec/reference_configs.json,
written by benchmarks/parity/config_snapshot.py from the references' code at the compared commits): a
preset field that a reference pins cannot change without this failing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from jeat import get_preset

SNAPSHOT = json.loads((Path(__file__).parents[1] / "docs" / "spec" / "reference_configs.json").read_text())
ROWS = [(m, preset, f) for m, rec in SNAPSHOT.items() for preset in rec["presets"] for f in rec["fields"]]


def _get(cfg, path: str):
    for part in path.split("."):
        cfg = getattr(cfg, part)
    return list(cfg) if isinstance(cfg, tuple) else cfg


def _same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-12)
    return a == b


@pytest.mark.parametrize(("method", "preset", "field"), ROWS, ids=[f"{p}:{f['jeat']}" for _, p, f in ROWS])
def test_preset_field_is_the_references(method, preset, field):
    got = _get(get_preset(preset), field["jeat"])
    assert _same(got, field["value"]), (
        f"{preset} sets {field['jeat']} = {got!r}; {SNAPSHOT[method]['repo']}@{SNAPSHOT[method]['commit'][:7]} "
        f"has {field['reference']} = {field['reference_value']!r} ({field['conversion']}: {field['value']!r})"
    )


def test_the_snapshot_covers_the_jem_family_and_names_its_commits():
    assert {"jem", "jempp", "eb-jdat", "sadajem", "trades", "weat", "weat-adv", "dat"} <= set(SNAPSHOT)
    for rec in SNAPSHOT.values():
        assert len(rec["commit"]) == 40 and rec["fields"] and rec["code_facts"]


def test_a_drifted_preset_fails(monkeypatch):
    import jeat.presets.parts as parts

    field = next(f for f in SNAPSHOT["jempp"]["fields"] if f["jeat"] == "model.bn_momentum")
    monkeypatch.setattr(parts, "JEMPP_BN_MOMENTUM", 0.1)  # torch's default: issue 35's undetected mutation
    assert not _same(_get(get_preset("paper-jempp"), field["jeat"]), field["value"])


def _mutated(value):
    """A value next to ``value`` of the same kind: what a slip in a preset would look like."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.01 if value else 1e-6
    if isinstance(value, list):
        return [*value[:-1], value[-1] + 1] if value else [1]
    return f"{value}-x"


@pytest.mark.parametrize(("method", "preset", "field"), ROWS, ids=[f"{p}:{f['jeat']}" for _, p, f in ROWS])
def test_every_pinned_field_is_sensitive_to_a_slip(method, preset, field):
    # The comparison above must fail on any field moved by one step (a check that cannot fail proves nothing).
    assert not _same(_mutated(_get(get_preset(preset), field["jeat"])), field["value"])
