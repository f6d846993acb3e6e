"""What a training checkpoint holds, and how the trainer writes and restores it.

Mixed into :class:`~jeat.training.loop.Trainer`. A checkpoint is the whole training state: model,
optimizer, scheduler, method state (replay buffers), weight average (EMA), RNG states, guard state and recovery record,
epoch/step. It is written atomically as ``RUN/checkpoints/step-N.pt`` and linked as
``RUN/checkpoint.pt`` (older step files pruned, ``best.pt`` kept); under DDP the method and RNG
states of every rank are gathered into it, and restoring re-splits them when the world size changed.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from . import distributed as D
from .checkpoint import atomic_link, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .ema import EMA


class Checkpointing:
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "method": self.method.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rng_state(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            # wall seconds the current epoch has run so far (0 at an epoch's end), for its train_time_s on resume
            "epoch_time_s": self.epoch_time_s + (time.perf_counter() - self._t_epoch if self.step_in_epoch else 0.0),
            "guard": {
                **self.guard.state_dict(),
                "events": self.events,
                "retries": self.retries,
                "lr_scale": self.lr_scale,
                "best_step": self.best_step,
            },
            "config": self.cfg.to_json(),
            "num_classes": self.train_set.num_classes,
            "image_shape": list(self.train_set.shape),
            "class_names": list(self.train_set.classes),
        }

    def save(self, best: bool = False) -> None:
        """Write a step checkpoint, point ``checkpoint.pt`` at it, prune old ones (rank 0); with
        ``best`` also point ``checkpoints/best.pt`` at it. Under DDP every rank must call this:
        the method states (replay buffers) and RNG states of all ranks are gathered into the file."""
        if best:
            self.best_step = self.global_step
        path = self.run.step_checkpoint(self.global_step)
        if self.world > 1:
            D.sync_buffers(self.model)  # BN running statistics: rank 0's (DDP runs broadcast_buffers=False)
            gathered = D.gather_to_main({"method": self.method.state_dict(), "rng": rng_state()})
            if self.rank == 0:
                state = self.state_dict()
                state["dist"] = {"world_size": self.world, "method": [g["method"] for g in gathered[1:]],
                                 "rng": [g["rng"] for g in gathered]}  # fmt: skip
                self._write(path, state, best)
            D.barrier()  # the file exists for every rank before anyone goes on (resume, rollback)
        elif self.rank == 0:
            self._write(path, self.state_dict(), best)
        self.last_good = str(path)

    def _write(self, path: Path, state: dict, best: bool) -> None:
        save_checkpoint(path, state)
        atomic_link(path, self.run.checkpoint)
        if best:
            atomic_link(path, self.run.best_checkpoint)
        self.run.prune_checkpoints(self.cfg.guard.keep_checkpoints)

    def _load(self, path: Path, keep_recovery: bool = False) -> None:
        """Restore a checkpoint. ``keep_recovery`` (a rollback) keeps this run's guard events,
        retry count and lr scale instead of the older ones stored in the file."""
        s = load_checkpoint(path, map_location="cpu")  # every rank reads the file; move what it keeps
        g = s.get("guard", {})
        self.guard.load_state_dict(g)
        if not keep_recovery:
            # The log is the durable record of events (a stop happens after the last checkpoint).
            self.events = self.run.records("guard") or list(g.get("events", []))
            self.retries = g.get("retries", 0)
            self.lr_scale, self.best_step = g.get("lr_scale", 1.0), g.get("best_step")
        self.model.load_state_dict(s["model"])
        if self.ema is not None:
            if s.get("ema"):
                self.ema.load_state_dict(s["ema"])
            else:  # EMA switched on when resuming a run that had none: start it from these weights
                self.ema = EMA(self.model, self.cfg.ema.decay, self.cfg.ema.warmup, self.cfg.ema.copy_first)
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        # The saved states carry the old base lr; the (possibly overridden) config decides, so that
        # `--resume RUN --set optim.lr=...` takes effect, times the guard's lr scale after rollbacks.
        # Unchanged lr and scale: the same values.
        self._set_base_lr(self.cfg.optim.lr * self.lr_scale)
        saved = s.get("dist", {"world_size": 1, "method": [], "rng": [s["rng"]]})
        states = [s["method"], *saved["method"]]
        if saved["world_size"] == self.world:
            self.method.load_state_dict(states[self.rank])
            rng = saved["rng"][self.rank]
        else:  # a different world size: pool the saved chains and take this rank's share
            self.method.load_state_dict(D.resplit_state(states, self.method.state_dict(), self.rank, self.world))
            rng = None
        if rng is not None:
            set_rng_state({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in rng.items()})
        else:  # per-rank streams cannot be carried over; derive new ones deterministically
            torch.manual_seed(D.rank_seed(self.cfg.seed + s["global_step"], self.rank))
        self.epoch, self.step_in_epoch, self.global_step = s["epoch"], s["step_in_epoch"], s["global_step"]
        self.epoch_time_s = float(s.get("epoch_time_s", 0.0))  # checkpoints before it was recorded: 0
        self.last_good = str(path)

    def _set_base_lr(self, lr: float) -> None:
        self.sched.base_lrs = [lr for _ in self.opt.param_groups]
        for group, fn in zip(self.opt.param_groups, self.sched.lr_lambdas, strict=True):
            group["initial_lr"] = lr
            group["lr"] = lr * fn(self.sched.last_epoch)
