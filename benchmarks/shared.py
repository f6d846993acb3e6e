"""What every study under benchmarks/ shares: the repository root, resumable stages, the machine's
description, atomic publishing of a page and the committed archive of a run's results.

Stages: one shell command each, skipped once its output exists (study/ and leaderboard/). Every
command and its exit status and wall time are appended to a log, so a results page can quote exactly
what produced each number. Claims: several workers running the same resumable study each take the next
run nobody holds.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shlex
import socket
import subprocess
import time
from pathlib import Path

import torch

from jeat.training.checkpoint import atomic_write_bytes, atomic_write_text
from jeat.training.precision import hardware

ROOT = Path(__file__).resolve().parents[1]


class Stages:
    def __init__(self, log: Path, tag: str):
        self.log, self.tag = log, tag

    def sh(self, cmd: list[str], done: Path, skip_done: bool = True, output: Path | None = None) -> bool:
        """Run a stage unless ``done`` exists; returns whether it succeeded and wrote ``done``.

        With ``output``, the command's own output goes there and the shared log gets the command and its
        exit in one append when it ends: workers sharing the log never interleave a command with
        another's exit line (the log's ``$ cmd`` / ``# exit`` pairs are what a page's wall times read)."""
        if skip_done and done.exists():
            return True
        line = shlex.join(cmd)
        print(f"[{self.tag}] {line}", flush=True)
        t = time.time()
        sink = output or self.log
        sink.parent.mkdir(parents=True, exist_ok=True)
        with open(sink, "a") as f:
            f.write(f"$ {line}\n")
            f.flush()
            rc = subprocess.call(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
            f.write(f"# exit {rc}, {time.time() - t:.0f} s\n")
        if output is not None:  # one write: O_APPEND keeps it whole beside another worker's
            with open(self.log, "a") as f:
                f.write(f"$ {line}\n# exit {rc}, {time.time() - t:.0f} s (output: {output})\n")
        if rc != 0:
            print(f"[{self.tag}] FAILED ({rc}): {line} (see {output or self.log})", flush=True)
        return rc == 0 and done.exists()


def _claim_stale(path: Path) -> bool:
    """Whether the claim at ``path`` belongs to a worker that is gone: same host and its process dead, or
    the host rebooted since (another host's claim cannot be checked from here and is never taken)."""
    try:
        host, boot, pid = path.read_text().split()
    except (OSError, ValueError):  # empty or half-written: being written now, or its writer died before writing
        try:
            return time.time() - path.stat().st_mtime > 60
        except OSError:
            return True
    if host != socket.gethostname():
        return False
    if boot != _boot_id():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@contextlib.contextmanager
def claimed(path: Path):
    """Hold ``path`` as this process's claim on one piece of work while the block runs; yields whether it
    was taken. The claim is a file created exclusively (O_EXCL), so two workers never both take it; a
    claim left by a killed worker or a rebooted machine is taken over (``_claim_stale``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            if attempt == 0 and _claim_stale(path):
                path.unlink(missing_ok=True)
                continue
            yield False
            return
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {_boot_id()} {os.getpid()}\n")
        break
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


def machine() -> str:
    cpu = hardware(torch.device("cpu")).removeprefix("cpu: ")  # the model and its bf16 instructions
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {os.cpu_count()} logical CPUs (torch threads {torch.get_num_threads()}){gpu}; "
            f"torch {torch.__version__}; Python {platform.python_version()}")  # fmt: skip


def write_page(page: Path, lines: list[str]) -> str:
    """Write a results page atomically, with its hand-written reading of the numbers appended (``<page>_notes.md``
    beside it: kept across reruns, which rewrite only the generated part). Returns the page's text."""
    notes = page.with_name(page.stem + "_notes.md")
    if notes.is_file():
        lines = [*lines, "", notes.read_text().rstrip()]
    text = "\n".join(lines) + "\n"
    page.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(page, text)
    return text


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
