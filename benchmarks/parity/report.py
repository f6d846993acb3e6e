"""docs/PARITY.md's generated table, from benchmarks/results/parity_cpu.json. Only the text between
the two markers is rewritten; the rest of the page is written by hand."""

from __future__ import annotations

from pathlib import Path

BEGIN, END = "<!-- parity-table -->", "<!-- /parity-table -->"
COLUMNS = (("sampler", "sampler / attack (a)"), ("loss", "loss (b)"), ("gradients", "gradients (c)"),
           ("trajectory", "30-step trajectory (d)"))  # fmt: skip


def _cell(check: dict | None) -> str:
    if not check:
        return "-"
    mark = "pass" if check.get("pass") else "**FAIL**"
    return f"{mark} {check.get('max_rel', 0):.1e}"


def table(results: dict) -> str:
    head = "| method | reference @ commit | " + " | ".join(c[1] for c in COLUMNS) + " | speed jeat / reference |"
    rows = [head, "|" + "---|" * (len(COLUMNS) + 3)]
    for method, entry in results.items():
        r = entry.get("parity")
        if r is None:
            continue
        checks = r["checks"]
        sampler = checks.get("sampler") or checks.get("attack")
        cells = [_cell(sampler)]
        if "attack" in checks and "sampler" in checks:
            cells = [f"{_cell(checks['sampler'])}; attack {_cell(checks['attack'])}"]
        cells += [_cell(checks.get(k)) for k, _ in COLUMNS[1:]]
        sp = entry.get("speed", {}).get("speed") or {}
        speed = f"{sp['ratio']:.2f} ({sp['jeat_img_s']:.1f} / {sp['reference_img_s']:.1f} img/s)" if sp else "-"
        ref = r["reference"]
        rows.append(f"| {method} | {ref['repo']} @ {ref['commit'][:7]} | " + " | ".join(cells) + f" | {speed} |")
    return "\n".join(rows)


def write_markdown(results: dict, path: Path) -> None:
    text = path.read_text() if path.exists() else f"# Parity with the authors' code\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1] if END in rest else ""
    path.write_text(f"{pre}{BEGIN}\n{table(results)}\n{END}{post}")
