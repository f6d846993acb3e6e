"""What every study under benchmarks/ shares: the repository root, resumable stages, the machine's
description, atomic publishing of a page and the committed archive of a run's results.

Stages: one shell command each, skipped once its output exists (study/ and leaderboard/). Every
command and its exit status and wall time are appended to a log, so a results page can quote exactly
what produced each number.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import time
from pathlib import Path

import torch

from jeat.training.checkpoint import atomic_write_bytes, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


class Stages:
    def __init__(self, log: Path, tag: str):
        self.log, self.tag = log, tag

    def sh(self, cmd: list[str], done: Path, skip_done: bool = True) -> bool:
        """Run a stage unless ``done`` exists; returns whether it succeeded and wrote ``done``."""
        if skip_done and done.exists():
            return True
        line = shlex.join(cmd)
        print(f"[{self.tag}] {line}", flush=True)
        t = time.time()
        with open(self.log, "a") as f:
            f.write(f"$ {line}\n")
            f.flush()
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
            f.write(f"# exit {rc}, {time.time() - t:.0f} s\n")
        if rc != 0:
            print(f"[{self.tag}] FAILED ({rc}): {line} (see {self.log})", flush=True)
        return rc == 0 and done.exists()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                cpu = ln.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} logical CPUs (torch threads {torch.get_num_threads()}){gpu}; "
            f"torch {torch.__version__}; Python {platform.python_version()}")  # fmt: skip


def publish(title: str, text: str, out: str | None) -> None:
    """Print a benchmark's markdown table and, with ``out``, write it as a page titled ``title`` (atomically)."""
    print(text)
    if out:
        atomic_write_text(Path(out), f"# {title}\n\n{text}")


def archive_files(run: Path, dest: Path, patterns: tuple[str, ...]) -> list[Path]:
    """Copy the files of ``run`` matching ``patterns`` (globs relative to it) to ``dest``, keeping their
    relative paths; atomic per file, unchanged files untouched. Returns what was written.

    Run folders (weights, samples) live outside the repository and go with their machine (2026-12-06: a
    finished study's folders were lost); a study archives the small files its page reads, to be committed,
    so the page can be rewritten and the study resumed from git alone."""
    written = []
    for pattern in patterns:
        for src in sorted(run.glob(pattern)):
            dst = dest / src.relative_to(run)
            data = src.read_bytes()
            if not dst.is_file() or dst.read_bytes() != data:
                atomic_write_bytes(dst, lambda f, data=data: f.write(data))
                written.append(dst)
    return written
