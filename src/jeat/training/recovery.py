"""Recovery from divergence: what the training loop does when the guard fires (guard.py).

Mixed into :class:`~jeat.training.loop.Trainer`, whose state it uses (run directory, guard,
checkpoint loading). ``guard.policy`` decides: ``warn`` logs the onset and goes on; ``rollback``
and ``rollback-lr`` load a kept checkpoint (the newest, ``best.pt`` for a test-accuracy drop, one
further back per repeated failure), draw a new noise stream, optionally lower the lr, log a
``{"kind": "guard"}`` event and restart the epoch's batch stream there; ``stop``, or a trigger
after ``guard.max_retries`` rollbacks, points ``checkpoint.pt`` at the last good state, writes
``summary.json`` with status ``diverged`` and raises :class:`DivergenceError`. Every rank sees the
same averaged values, so all ranks take the same decision and load the same file.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import distributed as D
from .checkpoint import atomic_link
from .guard import DivergenceError, Trigger

# A rollback's new noise seed: seed + stride * retry (far from the seeds users pick by hand).
RESEED_STRIDE = 7919


class RolledBack(Exception):
    """The epoch's batch stream is stale after a rollback: the loop starts it again."""


class Recovery:
    def _guard_interval(self, sums: dict[str, torch.Tensor], n: int) -> None:
        """The guard judges the mean of the steps since its last check (all ranks alike)."""
        if n == 0 or not self.cfg.guard.enabled:
            sums.clear()
            return
        means = {k: v / n for k, v in sums.items()}
        sums.clear()  # before a rollback, so the restarted stream starts a fresh interval
        trig = self.guard.check(self._sync(means), self.global_step)
        if trig is None:
            self._firing.clear()
        else:
            self._on_trigger(trig)

    def _on_trigger(self, trig: Trigger) -> None:
        """Apply ``guard.policy`` to a trigger: log (warn), roll back (raises :class:`RolledBack`)
        or stop with :class:`DivergenceError`. Every rank sees the same trigger and acts alike."""
        policy = self.cfg.guard.policy
        event = {"kind": "guard", **trig.to_dict(), "epoch": self.epoch}
        if policy == "warn":
            if trig.epoch_level or trig.reason not in self._firing:  # log the onset, not every check
                self._record({**event, "action": "warn"})
                self._say(f"guard: {trig.describe()} (policy warn: training goes on)")
            self._firing.add(trig.reason)
            return
        if policy == "stop" or self.retries >= self.cfg.guard.max_retries:
            self._give_up(trig, event, self._rollback_target(trig, back=0))
        back = self._back + 1 if trig.step <= self._last_trigger_step else 0  # failed again before passing
        target = self._rollback_target(trig, back)
        if target is None:
            self._give_up(trig, event, None)
        self._rollback(trig, event, target, back)

    def _rollback_target(self, trig: Trigger, back: int) -> Path | None:
        """The best epoch for a test-accuracy drop; else the newest kept checkpoint, or ``back``
        older (one more for each repeated failure before the run got past the last trigger)."""
        if trig.epoch_level and self.best_step is not None and self.run.best_checkpoint.exists():
            return self.run.best_checkpoint
        kept = [p for _, p in self.run.step_checkpoints()]
        return kept[-1 - min(back, len(kept) - 1)] if kept else None

    def _rollback(self, trig: Trigger, event: dict, target: Path, back: int) -> None:
        c = self.cfg.guard
        self._back = back
        self._last_trigger_step = max(self._last_trigger_step, trig.step)
        self.retries += 1
        if c.policy == "rollback-lr":
            self.lr_scale *= c.lr_factor
        self._load(target, keep_recovery=True)
        noise_seed = self.cfg.seed + RESEED_STRIDE * self.retries
        torch.manual_seed(D.rank_seed(noise_seed, self.rank))  # a new noise stream (SGLD, attacks, reinit)
        D.barrier()  # every rank has read the target before rank 0 drops the abandoned branch
        self.run.prune_checkpoints(c.keep_checkpoints, newer_than=self.global_step)
        if self.rank == 0:  # a run killed now resumes from the target, not from the abandoned branch
            atomic_link(target, self.run.checkpoint)
        if self.best_step is not None and self.best_step > self.global_step:
            self.best_step = None
            if self.rank == 0:
                self.run.best_checkpoint.unlink(missing_ok=True)
        self.run.truncate_log(self.global_step, self.epoch)
        self.last_good = str(target)
        self._firing.clear()
        self._record({**event, "action": c.policy, "to_step": self.global_step, "to_checkpoint": target.name,
                      "retry": self.retries, "lr_scale": self.lr_scale, "noise_seed": noise_seed})  # fmt: skip
        self._say(f"guard: {trig.describe()} -> rolled back to step {self.global_step} ({target.name}), "
                  f"noise seed {noise_seed}, lr x{self.lr_scale:g} (retry {self.retries}/{c.max_retries})")  # fmt: skip
        raise RolledBack

    def _give_up(self, trig: Trigger, event: dict, target: Path | None) -> None:
        if target is not None and self.rank == 0:
            atomic_link(target, self.run.checkpoint)  # `--resume RUN` continues from the good state
        self._record({**event, "action": "stop", "last_good": str(target) if target else None})
        self.write_summary(status="diverged")
        D.barrier()
        raise DivergenceError(trig.step, trig.quantity, trig.value, str(target) if target else None, trig.reason,
                              self.retries)  # fmt: skip

    def _record(self, event: dict) -> None:
        self.events.append(event)
        self.run.log(event)

    def _say(self, text: str) -> None:
        if self.rank == 0:
            tqdm.write(text, file=sys.stderr)
