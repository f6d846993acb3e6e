"""Break what the parity checks guard, one departure at a time, and record which check catches it.

Each mutation reintroduces one departure from a reference (an exact text edit that must occur once
in one file) in a scratch ``git worktree`` of HEAD, then runs its catcher there:

- ``harness``: the step harness in float64 (``run.py --methods M --dtype float64`` at small sizes,
  below); caught when any of the row's checks fails;
- ``pytest``: a CI test file (``tests/test_reference_configs.py``: the recorded reference
  configurations); caught when it fails;
- ``augment``: ``augment.py``, jeat's augmented pixels against the reference's own transform (it needs an
  unpacked torchvision wheel named ``torchvision-*`` under ``--refs``).

Every catcher also runs once on the unmodified worktree (the ``none`` rows): a catcher that fails
there proves nothing about the mutations it is said to catch. Results are merged into
``benchmarks/results/parity_mutations.json`` after each run (rerunning skips what is recorded; ``--redo``)
and written as the table between ``<!-- mutations -->`` markers in docs/PARITY.md.

    python benchmarks/parity/mutations.py --refs /path/to/checkouts --data ../shared/data
    python benchmarks/parity/mutations.py --refs DIR --data DIR --only gaussian-ridge-x400 --redo
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jeat.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = ROOT / "benchmarks" / "results" / "parity_mutations.json"
PAGE = ROOT / "docs" / "PARITY.md"

# The harness sizes per method: the smallest that still run every check (float64 is slow here).
SIZES = {
    "jem": ["--steps", "6", "--batch", "16"],
    "jempp": ["--steps", "6", "--batch", "8", "--width", "1"],
    "eb-jdat": ["--steps", "6", "--batch", "8", "--width", "1"],
    "sadajem": ["--steps", "6", "--batch", "8", "--width", "1"],
    "trades": ["--steps", "3", "--batch", "8", "--width", "1"],
    "weat-adv": ["--steps", "3", "--batch", "8", "--width", "1"],
    "weat": ["--steps", "3", "--batch", "8", "--width", "1"],
    "free": ["--steps", "16", "--batch", "8"],
    "dat": [],
}
from mutation_list import MUTATIONS, Mutation  # noqa: E402


def catcher_cmd(catcher: str, wt: Path, refs: str, data: str, out: Path) -> list[str]:
    if catcher.startswith("augment:"):  # the augmented pixels against the reference's own transform
        tv = next(Path(refs).glob("torchvision-*"), None)
        return [sys.executable, str(wt / "benchmarks/parity/augment.py"), "--refs", refs, "--data", data,
                "--torchvision", str(tv), "--n", "500", "--methods", catcher[8:], "--out", str(out)]  # fmt: skip
    if catcher.startswith("pytest:"):
        return [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", str(wt / catcher[7:])]
    return [sys.executable, str(wt / "benchmarks/parity/run.py"), "--methods", catcher, "--refs", refs, "--data", data,
            "--dtype", "float64", *SIZES[catcher], "--out", str(out), "--md", str(out.with_suffix(".md"))]  # fmt: skip


def run_one(name: str, m: Mutation | None, catcher: str, wt: Path, a) -> dict:
    subprocess.run(["git", "-C", str(wt), "checkout", "-q", "--", "."], check=True)
    if m is not None:
        f = wt / m.file
        text = f.read_text()
        if text.count(m.old) != 1:
            return {"error": f"{m.file}: the text to mutate occurs {text.count(m.old)} times (expected once)"}
        f.write_text(text.replace(m.old, m.new))
    out = Path(tempfile.mkdtemp()) / "parity.json"
    env = {**os.environ, "PYTHONPATH": str(wt / "src"), "JEAT_DATA": a.data}
    t0 = time.perf_counter()
    p = subprocess.run(catcher_cmd(catcher, wt, a.refs, a.data, out), cwd=wt, env=env, capture_output=True, text=True)
    rec = {"catcher": catcher, "seconds": round(time.perf_counter() - t0), "rc": p.returncode}
    if catcher.startswith("pytest:"):
        rec["failed"] = [ln.split(" - ")[0] for ln in p.stdout.splitlines() if ln.startswith("FAILED")][:3]
        rec["caught"] = p.returncode != 0
        return rec
    if not out.is_file():
        return {**rec, "error": (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no result"]}
    if catcher.startswith("augment:"):
        r = json.loads(out.read_text())[catcher[8:]]
        failing = {"unmatched images": r["unmatched"] / r["n"]} if r["unmatched"] else {}
        if r["offsets_chi2_p"] <= 1e-3 or r["flips_p"] <= 1e-3:
            failing["draws (p)"] = min(r["offsets_chi2_p"], r["flips_p"])
        if "sigma_reference" in r and not r["pass"] and not failing:
            failing["noise std"] = r["noise_std_jeat"]
        return {**rec, "caught": not r["pass"], "failing": failing}
    row = next(iter(json.loads(out.read_text())[catcher].values()))
    checks = {k: v.get("max_rel") for k, v in row["checks"].items()}
    failing = {k: checks[k] for k, v in row["checks"].items() if not v.get("pass", False)}
    return {**rec, "caught": bool(failing), "failing": failing, "checks": checks}


def markdown(results: dict) -> str:
    lines = ["| mutation | catcher | caught | by (relative difference; float64 tolerance 1e-9) |", "|---|---|---|---|"]
    for m in [None, *MUTATIONS]:
        keys = [f"none:{c}" for c in sorted({x.catcher for x in MUTATIONS})] if m is None else [m.name]
        for k in keys:
            r = results.get(k)
            what = "none (the catcher on unmodified code)" if m is None else m.what
            catcher = k[5:] if m is None else m.catcher
            if r is None:
                lines.append(f"| {what} | `{catcher}` | not run | |")
                continue
            if "error" in r:
                lines.append(f"| {what} | `{catcher}` | error | {r['error']} |")
                continue
            if catcher.startswith("pytest:"):
                by = ", ".join(f"`{t}`" for t in r.get("failed", [])) or "-"
            else:
                by = ", ".join(f"{c} {v:.2g}" for c, v in r.get("failing", {}).items() if v is not None) or "-"
            verdict = (
                ("**yes**" if r["caught"] else "no")
                if m is not None
                else ("fails: **broken**" if r["caught"] else "passes")
            )
            lines.append(f"| {what} | `{catcher}` | {verdict} | {by} |")
    return "\n".join(lines)


def write_page(results: dict, cmd: str) -> None:
    text = PAGE.read_text()
    start, end = "<!-- mutations -->", "<!-- /mutations -->"
    sizes = "; ".join(f"{k} `{' '.join(v) or 'defaults'}`" for k, v in SIZES.items())
    block = f"{start}\nCommand: `{cmd}`. Harness sizes: {sizes}.\n\n{markdown(results)}\n{end}"
    if start in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        raise SystemExit(f"{PAGE}: no {start} marker")
    atomic_write_text(PAGE, text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--refs", required=True, help="folder of reference checkouts named <owner>+<repo>")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--only", nargs="*", default=None, help="mutation names (or none:<catcher>)")
    p.add_argument("--redo", action="store_true", help="rerun what is already recorded")
    p.add_argument("--report-only", action="store_true")
    a = p.parse_args()
    a.refs, a.data = str(Path(a.refs).resolve()), str(Path(a.data).resolve())
    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    cmd = "python benchmarks/parity/mutations.py --refs DIR --data ../shared/data"
    jobs = [(f"none:{c}", None, c) for c in sorted({m.catcher for m in MUTATIONS})]
    jobs += [(m.name, m, m.catcher) for m in MUTATIONS]
    if a.only is not None:
        jobs = [j for j in jobs if j[0] in a.only]
    if not a.report_only:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        with tempfile.TemporaryDirectory() as d:
            wt = Path(d) / "wt"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(wt), head], check=True)
            try:
                where = subprocess.run(
                    [sys.executable, "-c", "import jeat; print(jeat.__file__)"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, "PYTHONPATH": str(wt / "src")},
                ).stdout.strip()
                if not where.startswith(str(wt)):  # an install that shadows PYTHONPATH would test unmutated code
                    raise SystemExit(f"jeat imports from {where}, not from the worktree {wt}")
                for name, m, catcher in jobs:
                    if name in results and not a.redo:
                        continue
                    rec = {**run_one(name, m, catcher, wt, a), "commit": head[:7]}
                    results[name] = rec
                    verdict = (
                        f"error {rec['error']}" if "error" in rec else ("caught" if rec["caught"] else "NOT caught")
                    )
                    print(f"{name}: {verdict} {rec.get('failing', rec.get('failed', ''))} ({rec.get('seconds')} s)",
                          flush=True)  # fmt: skip
                    atomic_write_text(OUT, json.dumps(results, indent=1) + "\n")
            finally:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)], check=False)
    write_page(results, cmd)
    print(markdown(results))


if __name__ == "__main__":
    main()
