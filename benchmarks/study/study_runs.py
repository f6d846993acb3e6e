"""The seeded study's runs page (benchmarks/results/study_<scale>_runs.md): how far each run got, while the
claims page (study_report.py) waits for every model's seeds."""

from __future__ import annotations

import json
from pathlib import Path


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def amp_short(s: dict) -> str:
    """A run's precision and, in a word, why (summary.json's ``amp_why`` is a sentence): fp32 (held) etc."""
    why = s.get("amp_why", "")
    reason = next((word for key, word in (("measured neutral", "proven neutral"), ("held", "held"),
                                          ("measured different", "differs"), ("not yet proven", "not yet measured"),
                                          ("no native", "no native bf16"), ("explicitly", "explicit")) if key in why),
                  "")  # fmt: skip
    amp = str(s.get("amp", "?")).replace("none", "fp32")
    return f"{amp} ({reason})" if reason else amp


def write_progress(out: Path, names: list[str], dest: Path, argv: str) -> None:
    """Per run of a seeded study: how far it got and its accuracies (validation, and test for the
    record), precision and training time, read from each run's summary.json; what has not run says so."""
    from jeat.atomic import atomic_write_text  # noqa: PLC0415

    lines = [f"# Study runs: `python benchmarks/study/study.py {argv}`", "",
             "Written by the study after each pass; the claims tables come when every model has its seeds.", "",
             "Precision: `amp=auto`'s choice for the method and, in brackets, why (summary.json's `amp_why`, "
             "src/jeat/training/precision.py). Threads: CPU threads of the run; train times beside other jobs "
             "are not speed measurements.", "",
             "| run | status | epochs | valid acc (best) | test acc (final) | precision | threads | train time |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        s = _load(out / name / "summary.json")
        if s is None:
            started = (out / name / "checkpoint.pt").is_file()
            lines.append(f"| {name} | {'started (resumable)' if started else 'not run'} | | | | | | |")
            continue
        va, ta = s.get("best_valid_acc"), s.get("test_acc")
        acc = ["-" if v is None else f"{100 * v:.1f}%" for v in (va, ta)]
        lines.append(
            f"| {name} | {s.get('status', '?')} | {s.get('epochs', '?')} | {acc[0]} | {acc[1]} | "
            f"{amp_short(s)} | {s.get('threads', '?')} | {s.get('train_time_s', 0) / 60:.0f} min |"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, "\n".join(lines) + "\n")
