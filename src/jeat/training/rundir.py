"""The run directory: resolved config, JSONL metrics, checkpoints, final summary.

RUN/config.json          the TrainConfig, as resolved (presets + overrides)
RUN/metrics.jsonl        one line per logged step and per epoch ({"kind": "step"|"epoch", ...})
RUN/checkpoint.pt        latest full training state (atomic; loads with weights_only=True)
RUN/checkpoints/         step-NNNNNNN.pt: the newest few good states (rollback targets, pruned);
                         best.pt: the state after the epoch with the best test accuracy
RUN/model.safetensors    final weights, for sharing; RUN/summary.json  final numbers
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .checkpoint import atomic_write_json, atomic_write_text

CHECKPOINT = "checkpoint.pt"
STEP_DIR = "checkpoints"


class RunDir:
    def __init__(self, path: str | os.PathLike, write: bool = True):
        self.path = Path(path)
        self.write = write  # False on non-zero DDP ranks
        self.sinks: list = []  # more places each logged record goes (TensorBoard)
        if write:
            self.path.mkdir(parents=True, exist_ok=True)

    @property
    def checkpoint(self) -> Path:
        return self.path / CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        return self.path / STEP_DIR / "best.pt"

    def step_checkpoint(self, step: int) -> Path:
        return self.path / STEP_DIR / f"step-{step:07d}.pt"

    def step_checkpoints(self) -> list[tuple[int, Path]]:
        """Retained step checkpoints, oldest first."""
        d = self.path / STEP_DIR
        found = [(int(p.stem.split("-")[1]), p) for p in d.glob("step-*.pt")] if d.is_dir() else []
        return sorted(found)

    def prune_checkpoints(self, keep: int, newer_than: int | None = None) -> None:
        """Keep the ``keep`` newest step checkpoints; with ``newer_than``, also drop those of
        later steps (an abandoned branch after a rollback)."""
        if not self.write:
            return
        kept = self.step_checkpoints()
        if newer_than is not None:
            for step, p in kept:
                if step > newer_than:
                    p.unlink(missing_ok=True)
            kept = [(s, p) for s, p in kept if s <= newer_than]
        for _, p in kept[:-keep]:
            p.unlink(missing_ok=True)

    def save_config(self, cfg_dict: dict) -> None:
        if self.write:
            atomic_write_json(self.path / "config.json", cfg_dict)

    def load_config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    def start_fresh(self) -> None:
        """A new (not resumed) run: refuse to overwrite a checkpoint; drop a stale log of a run
        that never checkpointed, so the new run's metrics are not appended to it."""
        if not self.write:
            return
        if self.checkpoint.exists():
            raise FileExistsError(
                f"{self.path} already holds a run with a checkpoint; continue it with --resume {self.path}, "
                f"or choose another --name / --out"
            )
        (self.path / "metrics.jsonl").unlink(missing_ok=True)
        (self.path / "summary.json").unlink(missing_ok=True)
        for p in (self.path / STEP_DIR).glob("*.pt"):  # left by a run that never wrote checkpoint.pt
            p.unlink()

    def log(self, record: dict) -> None:
        if self.write:
            with open(self.path / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            for sink in self.sinks:  # e.g. TensorBoard (training/tensorboard.py)
                sink.log(record)

    def truncate_log(self, global_step: int, epoch: int | None = None) -> None:
        """On resume, drop lines logged after the checkpoint so the log has no duplicates.

        ``epoch`` (completed epochs in the checkpoint) also drops an epoch line logged at the
        checkpoint's own step: a checkpoint taken on an epoch's last step precedes that line.
        Guard events are history of the run and are always kept."""

        def keep(r: dict) -> bool:
            if r.get("kind") == "guard":
                return True
            late_epoch = epoch is not None and r.get("kind") == "epoch" and r.get("epoch", 0) > epoch
            return r.get("step", 0) <= global_step and not late_epoch

        p = self.path / "metrics.jsonl"
        if not (self.write and p.exists()):
            return
        kept = [ln for ln in p.read_text().splitlines() if ln and keep(json.loads(ln))]
        atomic_write_text(p, "".join(ln + "\n" for ln in kept))

    def records(self, kind: str | None = None) -> list[dict]:
        p = self.path / "metrics.jsonl"
        if not p.exists():
            return []
        rows = [json.loads(ln) for ln in p.read_text().splitlines() if ln]
        return [r for r in rows if kind is None or r.get("kind") == kind]
