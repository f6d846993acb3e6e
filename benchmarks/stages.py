"""Resumable benchmark stages: one shell command each, skipped once its output exists.

Used by study.py and leaderboard.py. Every command and its exit status and wall time are
appended to a log, so a results page can quote exactly what produced each number.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from pathlib import Path

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
