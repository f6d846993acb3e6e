"""The stability study's committed archive: what its page reads from each finished run, kept beside the
page so that a lost run folder costs only the run under way (benchmarks/README.md)."""

from __future__ import annotations

from pathlib import Path

from shared import archive_files
from stability_judge import run_name

# What the page reads from a finished run (stability_judge.outcome, guard_replay): committed beside the page,
# benchmarks/results/stability/<page>/<arm>/<run>/, so that a machine lost mid-study costs only the run under way.
ARCHIVED = ("summary.json", "metrics.jsonl", "config.json")


def archive_dir(results: Path) -> Path:
    """The archive of the study that writes ``results`` (each page its own: the fp32 arm has its own page)."""
    return results.parent / "stability" / results.stem


def restore(out: Path, archive: Path, jobs: list[tuple]) -> list[str]:
    """Finished runs whose folders are gone come back from the archive (results only, no weights), so the
    study skips them and the page still reports them. Returns their names."""
    back = []
    for job in jobs:
        name = run_name(*job)
        if not (out / name / "summary.json").is_file() and (archive / name / "summary.json").is_file():
            archive_files(archive / name, out / name, ARCHIVED)
            back.append(name)
    return back
