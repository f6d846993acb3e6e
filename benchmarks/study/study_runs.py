"""The seeded study's runs page (benchmarks/results/study_<scale>_runs.md): how far each run got, while the
claims page (study_report.py) waits for every model's seeds."""

from __future__ import annotations

import io
import json
from pathlib import Path

# What the claims page (study_report.py) reads from a run folder, small enough to commit. The run folders
# (weights, samples) live outside the repository and have been lost with a machine before (2026-12-06:
# a finished small study had to be trained again): the archive lets the page be rewritten from git alone.
# config.json (since 2026-12-07): what the run trained, for the report's status rules (study_read.run_config).
ARCHIVED = ("summary.json", "config.json", "metrics.jsonl", "eval/metrics.json", "gen-*/eval/metrics.json",
            "denoise*/metrics.json", "ood-claim9/metrics.json", "stages.log")  # fmt: skip
GRID = "gen-*/grid.png"  # the samples' grid, archived as the page's 256-pixel thumbnail


def archive_run(run: Path, dest: Path) -> list[Path]:
    """Copy ``run``'s ARCHIVED files (and a thumbnail of each sample grid) to ``dest``, keeping their
    relative paths (benchmarks/shared.py's archive_files). Returns what was written."""
    from shared import archive_files  # noqa: PLC0415

    written = archive_files(run, dest, ARCHIVED)
    for src in sorted(run.glob(GRID)):
        dst = dest / src.relative_to(run)
        if not dst.is_file() or dst.stat().st_mtime < src.stat().st_mtime:
            thumbnail(src, dst)
            written.append(dst)
    return written


def thumbnail(src: Path, dst: Path, size: int = 256) -> None:
    """A small committed copy of a PNG (the page shows grids at this size)."""
    from PIL import Image  # noqa: PLC0415

    from jeat.atomic import atomic_write_bytes  # noqa: PLC0415

    with Image.open(src) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        buf = io.BytesIO()
        im.quantize(128).save(buf, format="PNG", optimize=True)
    atomic_write_bytes(dst, lambda f: f.write(buf.getvalue()))


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


def write_progress(out: Path, names: list[str], dest: Path, argv: str, archive: Path | None = None) -> None:
    """Per run of a seeded study: how far it got and its accuracies (validation, and test for the
    record), precision and training time, read from each run's summary.json; what has not run says so."""
    from jeat.atomic import atomic_write_text  # noqa: PLC0415

    lines = [f"# Study runs: `python benchmarks/study/study.py {argv}`", "",
             "Written by the study after each run (and by `--report-only`); the claims tables (docs/RESULTS.md) come "
             "when every model has its seeds.", "",
             "Precision: `amp=auto`'s choice for the method and, in brackets, why (summary.json's `amp_why`, "
             "src/jeat/training/precision.py). Threads: CPU threads of the run; train times beside other jobs "
             "are not speed measurements.", "",
             *([f"Archive: `{archive.relative_to(archive.parents[3]).as_posix()}` holds, per run, what the claims page "
                "reads (no weights); `all stages` = every stage finished (`complete.txt`), so the study never runs it "
                "again, and `study_report.py --scale NAME=<archive>` rewrites the page from git alone.", ""]
               if archive else []),
             "| run | status | epochs | valid acc (best) | test acc (final) | precision | threads | train time |"
             + (" stages |" if archive else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if archive else "")]  # fmt: skip
    for name in names:
        stages = ""
        if archive:
            stages = " all stages |" if (archive / name / "complete.txt").is_file() else " |"
        s = _load(out / name / "summary.json") or (_load(archive / name / "summary.json") if archive else None)
        if s is None:
            if (out / "claims" / name).is_file():  # a worker holds it (study.py's claims)
                status = "running"
            else:
                status = "started (resumable)" if (out / name / "checkpoint.pt").is_file() else "not run"
            lines.append(f"| {name} | {status} | | | | | | |" + stages)
            continue
        va, ta = s.get("best_valid_acc"), s.get("test_acc")
        acc = ["-" if v is None else f"{100 * v:.1f}%" for v in (va, ta)]
        lines.append(
            f"| {name} | {s.get('status', '?')} | {s.get('epochs', '?')} | {acc[0]} | {acc[1]} | "
            f"{amp_short(s)} | {s.get('threads', '?')} | {s.get('train_time_s', 0) / 60:.0f} min |" + stages
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, "\n".join(lines) + "\n")
