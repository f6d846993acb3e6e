"""docs/PARITY.md's generated tables, from benchmarks/results/parity_cpu.json. Only the text between
the two markers is rewritten; the rest of the page is written by hand."""

from __future__ import annotations

from pathlib import Path

from jeat.atomic import atomic_write_text

BEGIN, END = "<!-- parity-table -->", "<!-- /parity-table -->"
ORDER = ("jem", "jempp", "sadajem", "trades", "weat", "weat-adv", "eb-jdat", "dat", "free", "fast")


# float64 is the proof of sameness ("pass": within 1e-9). In float32 a row only shows drift: the two sides
# differ by no more than jeat differs from itself under a one-ulp input change ("within drift").
_MARKS = {"parity-float64": ("pass", "**FAIL**"), "parity-float32": ("within drift", "**beyond drift**")}


def _cell(check: dict | None, marks: tuple[str, str] = _MARKS["parity-float64"]) -> str:
    if not check:
        return "-"
    mark = marks[0] if check.get("pass") else marks[1]
    return f"{mark} {check.get('max_rel', 0):.1e} (tol {check.get('rtol', 0):.0e})"


def _a(checks: dict, marks: tuple[str, str]) -> str:
    parts = [f"{k} {_cell(checks[k], marks)}" for k in ("sampler", "attack") if k in checks]
    return "; ".join(parts) or "-"


def _draws(settings: dict) -> str:
    n = settings.get("fp32_controls", 1)
    return f"; fp32 floor: largest of {n} one-ulp controls" if n > 1 else ""


def _state(checks: dict, marks: tuple[str, str]) -> str:
    """(e): what the run leaves behind (BN running statistics, the replay buffer, the restarted chains' seed
    distribution), where compared."""
    names = {"bn_statistics": "BN statistics", "replay_buffer": "replay buffer", "seed_mean": "seed mean",
             "seed_covariance": "seed covariance", "normalisation": "normalisation constants"}  # fmt: skip
    parts = [f"{name} {_cell(checks[k], marks)}" for k, name in names.items() if k in checks]
    return "; ".join(parts) or "not compared"


def _correctness(results: dict, key: str) -> list[str]:
    marks = _MARKS[key]
    rows = ["| method | reference @ commit | (a) sampler / attack output | (b) loss | (c) every gradient | "
            "(d) loss, step by step | (e) state after the run | steps | model, batch |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in ORDER:
        r = results.get(m, {}).get(key)
        if r is None:
            continue
        c, s = r["checks"], r["settings"]
        extra = f"; lr schedule {_cell(c['schedule'], marks)}" if "schedule" in c else ""
        if "curriculum" in c:  # DAT: the attack length T per step, the AUC that drives it, the EMA
            cur = c["curriculum"]
            extra += (f"; T per step {'pass' if cur['pass'] else '**FAIL**'} ({cur['ours'][0]} -> {cur['ours'][-1]}); "
                      f"AUC {_cell(c.get('auc'), marks)}; EMA {_cell(c.get('ema'), marks)}")  # fmt: skip
        if "lr" in c:  # Free / Fast AT: the learning rate (and Fast AT's momentum) of every step
            extra += f"; lr per step {'pass' if c['lr']['pass'] else '**FAIL**'} ({c['lr']['steps']} steps)"
        ref = f"{r['reference']['repo']} @ {r['reference']['commit'][:7]}"
        grads = f"{_cell(c.get('gradients'), marks)} ({c['gradients']['params']} tensors)"
        rows.append(f"| {m} | {ref} | {_a(c, marks)} | {_cell(c.get('loss'), marks)} | {grads} | "
                    f"{_cell(c.get('trajectory'), marks)} (worst step {c['trajectory']['worst_step']}){extra} | "
                    f"{_state(c, marks)} | {s['steps']} | "
                    f"{s['model']}, {s['batch']}{_draws(s)} |")  # fmt: skip
    return rows


def _spread(sp: dict) -> str:
    """`` (min-max of N runs)`` when the speed was measured more than once (run.py --repeat)."""
    rs = [r["ratio"] for r in sp.get("repeats", [])]
    return f" ({min(rs):.2f}-{max(rs):.2f}, {len(rs)} runs)" if len(rs) > 1 else ""


def _speed(results: dict) -> list[str]:
    rows = [
        "| method | model, batch, precision | CPU allocator (reference / jeat) | jeat img/s | reference img/s "
        "| jeat / reference |",
        "|---|---|---|---|---|---|",
    ]
    keys = [f"{k}{m}" for k in ("speed", "speed-contiguous") for m in ("", "-malloc-cached", "-malloc-system")]
    # speed-bf16*, speed-interleaved*, speed-attack10 ...: after these, in name order
    for m in ORDER:
        found = results.get(m, {})
        extra = sorted(k for k in found if k.startswith("speed") and k not in keys)  # e.g. speed-attack10
        for key in [k for k in keys if k in found] + extra:
            rows.append(_speed_row(m, found[key]))
    return rows


def _speed_row(m: str, r: dict) -> str:
    sp, s = r["speed"], r["settings"]
    precision = "jeat in bf16 autocast, reference float32" if s.get("jeat_amp") == "bf16" else s["precision"]
    layout = ", channels_last" if r.get("channels_last") else ""
    steps = s.get("attack_steps")
    if steps is not None:
        layout += f", {steps} attack steps"
    if sp.get("order") == "interleaved":
        layout += ", steps interleaved"
    if s.get("jeat_set"):
        layout += ", jeat " + " ".join(f"`{a}`" for a in s["jeat_set"])
    mc = sp.get("malloc_cached")
    alloc = "glibc defaults (not recorded)" if mc is None else " / ".join(
        "jeat's cached" if mc[side] else "glibc defaults" for side in ("reference", "jeat"))  # fmt: skip
    return (
        f"| {m} | {s['model']}, {s['batch']}, {precision}{layout} | {alloc} | {sp['jeat_img_s']:.2f} | "
        f"{sp['reference_img_s']:.2f} | **{sp['ratio']:.2f}**{_spread(sp)} |"
    )


def _bf16(results: dict) -> list[str]:
    rows = []
    for m in ORDER:
        r = results.get(m, {}).get("parity-bf16")
        if r is None:
            continue
        f32 = results.get(m, {}).get("parity-float32", {}).get("checks", {})

        def cell(k: str, r: dict = r, f32: dict = f32) -> str:
            c, floor = r["checks"].get(k), f32.get(k, {}).get("fp32_floor")
            if c is None:
                return "-"
            return f"{c['max_rel']:.1e}" + (f" (fp32 floor {floor:.1e})" if floor is not None else "")

        keys = [
            k for k in ("sampler", "attack", "loss", "gradients", "trajectory", "bn_statistics") if k in r["checks"]
        ]
        rows.append(f"| {m} | " + "; ".join(f"{k} {cell(k)}" for k in keys) + f" | {r['settings']['steps']} | "
                    f"{r['settings']['model']}, {r['settings']['batch']} | {r.get('date', '')} |")  # fmt: skip
    if not rows:
        return []
    return [
        "| method | bf16 - fp32 reference, relative (fp32 floor) | steps | model, batch | date |",
        "|---|---|---|---|---|",
        *rows,
    ]


def table(results: dict) -> str:
    out = ["### Exactness: both sides in float64", ""] + _correctness(results, "parity-float64")
    out += [
        "",
        "### Drift in float32 (what training runs in)",
        "",
        "Not a proof of sameness (float64 above is): each row says whether the two sides differ by no more "
        "than jeat differs from itself when its inputs move by one ulp (the tolerance is that floor's "
        "multiple, or the fixed tolerance if larger).",
        "",
    ]
    out += _correctness(results, "parity-float32")
    bf16 = _bf16(results)
    if bf16:
        out += ["", "### jeat in bf16 autocast against the reference in fp32 (informative, issue 38)", "",
                "`run.py --jeat-amp bf16`: how far bf16 moves jeat from the authors' fp32 code, beside how far "
                "fp32 rounding alone moves it (the float32 row's one-ulp floor). Never pass / fail: whether bf16 "
                "changes what a method *learns* is the precision study's question "
                "(benchmarks/results/precision_cpu.md).", ""] + bf16  # fmt: skip
    out += ["", "### Speed: one training step, same settings, same run", ""] + _speed(results)
    return "\n".join(out)


def write_markdown(results: dict, path: Path) -> None:
    text = path.read_text() if path.exists() else f"# Parity with the authors' code\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1] if END in rest else ""
    atomic_write_text(path, f"{pre}{BEGIN}\n{table(results)}\n{END}{post}")
