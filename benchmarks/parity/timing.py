"""The harness's speed record: images per second from optimizer-step timestamps, each timed step's
seconds, and which CPU allocator setting (jeat.training.allocator) each side timed with."""

from __future__ import annotations

from itertools import pairwise

MALLOC_MODES = ("shipped", "cached", "system")  # run.py --malloc
# Whether jeat's allocator setting was in effect when each timed loop started, in order: the
# reference's, then jeat's (and its controls').
MALLOC_AT_START: list[bool] = []


def note_malloc() -> None:
    """Called as a timed loop starts (common.record_grads_at_step)."""
    from jeat.training.allocator import cpu_memory_cached

    MALLOC_AT_START.append(cpu_memory_cached())


def jeat_malloc(o) -> str:
    """jeat's ``cpu_malloc`` under ``run.py --malloc``: its default except when both sides run at glibc's."""
    return "system" if getattr(o, "malloc", "shipped") == "system" else "cached"


def per_second(times: list[float], images_per_step: int, skip: int = 1) -> float:
    """Images per second from the optimizer-step timestamps, after ``skip`` warm-up steps."""
    t = times[skip:]
    if len(t) < 2:
        return float("nan")
    return images_per_step * (len(t) - 1) / (t[-1] - t[0])


def speed_record(ref: dict, ours: dict, images: int) -> dict:
    """jeat against the reference from each side's ``times`` and ``wall``."""
    out = {"reference_img_s": per_second(ref["times"], images), "jeat_img_s": per_second(ours["times"], images),
           "reference_wall_s": ref["wall"], "jeat_wall_s": ours["wall"], "images_per_step": images}  # fmt: skip
    out["ratio"] = out["jeat_img_s"] / out["reference_img_s"]
    for side, d in (("reference", ref), ("jeat", ours)):  # each timed step's seconds: the spread within a run
        out[f"{side}_step_s"] = [round(b - a, 4) for a, b in pairwise(d["times"][1:])]
    if len(MALLOC_AT_START) >= 2:
        out["malloc_cached"] = {"reference": MALLOC_AT_START[0], "jeat": MALLOC_AT_START[1]}
    return out
