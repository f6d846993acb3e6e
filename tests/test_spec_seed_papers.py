"""The seed papers are the oracle of the methods without public code (issue 39): JEAT, PreJEAT and
Robust JEM. ``docs/spec/seed_papers.json`` holds every setting the papers state and every open one
with the value chosen; each paper-* preset of these methods must match it, so a preset cannot drift
from its paper silently. ``docs/SPEC.md`` is the JSON rendered (``python tests/test_spec_seed_papers.py``
rewrites it)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from jeat import available_presets, get_preset

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "docs" / "spec" / "seed_papers.json"
PAGE = REPO / "docs" / "SPEC.md"


def load() -> dict:
    return json.loads(SPEC.read_text())


def field_of(cfg, dotted: str):
    obj = cfg
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return list(obj) if isinstance(obj, tuple) else obj


def expected(setting: dict, preset: str, cfg):
    if "equals" in setting:
        return field_of(cfg, setting["equals"])
    if "values" in setting:
        return setting["values"][preset]
    return setting["value"]


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, rel_tol=1e-9)
    return a == b


CASES = [(m, p, s["field"]) for m, spec in load()["methods"].items() for p in spec["presets"] for s in spec["settings"]]


@pytest.mark.parametrize("method, preset, field", CASES, ids=[f"{p}:{f}" for _, p, f in CASES])
def test_preset_matches_the_paper_spec(method, preset, field):
    setting = next(s for s in load()["methods"][method]["settings"] if s["field"] == field)
    cfg = get_preset(preset)
    want, got = expected(setting, preset, cfg), field_of(cfg, field)
    why = f"({setting['kind']}: {setting['source']})"
    assert same(got, want), f"{preset} {field} = {got!r}, the spec says {want!r} {why}"


def test_every_paper_preset_of_the_seed_methods_is_specified():
    spec = load()["methods"]
    covered = {p for s in spec.values() for p in s["presets"]}
    seed = {p for p in available_presets() if p.startswith("paper-") and get_preset(p).method.name in spec}
    assert seed == covered
    for s in spec.values():
        assert all(x["kind"] in ("stated", "open") and x["source"] for x in s["settings"])


def test_a_drifted_preset_fails_the_check():
    cfg = get_preset("paper-jeat")
    setting = next(s for s in load()["methods"]["jeat"]["settings"] if s["field"] == "optim.gamma")
    cfg.optim.gamma = 0.3  # JEM's factor where the appendix says 10
    assert not same(field_of(cfg, "optim.gamma"), expected(setting, "paper-jeat", cfg))


def cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bar inside a table cell (p(y|x)) would end the cell


def render(spec: dict) -> str:
    lines = ["# What the seed papers specify, and what jeat chose where they are silent", "",
             "JEAT, PreJEAT and Robust JEM have no public code, so their papers are the oracle. This page is",
             "`docs/spec/seed_papers.json` rendered (`python tests/test_spec_seed_papers.py`); "
             "`tests/test_spec_seed_papers.py` checks every listed preset against it in CI. *stated*: the paper "
             "gives it (the source quotes where); *open*: the paper is silent and the source says where the value "
             "comes from. Units: [0, 1] pixels.", ""]  # fmt: skip
    for method, s in spec["methods"].items():
        lines += [f"## {method} ({', '.join(f'`{p}`' for p in s['presets'])})", "",
                  "| field | value | kind | source |", "|---|---|---|---|"]  # fmt: skip
        for x in s["settings"]:
            if "equals" in x:
                v = f"= `{x['equals']}`"
            elif "values" in x:
                v = "; ".join(f"{p}: `{val}`" for p, val in x["values"].items())
            else:
                v = f"`{x['value']}`"
            lines.append(f"| `{x['field']}` | {v} | {x['kind']} | {cell(x['source'])} |")
        if s.get("inference"):
            lines += ["", "Inference (`jeat generate`):", "", "| setting | the paper | jeat |", "|---|---|---|"]
            lines += [f"| {x['setting']} | {cell(x['paper'])} | {cell(x['jeat'])} |" for x in s["inference"]]
        lines.append("")
    return "\n".join(lines)


def test_the_page_is_the_spec_rendered():
    assert PAGE.read_text() == render(load()), "docs/SPEC.md is stale: run python tests/test_spec_seed_papers.py"


if __name__ == "__main__":
    PAGE.write_text(render(load()))
    print(f"wrote {PAGE}")
