"""The one training loop shared by every method.

A batch flows: BatchStream (uint8 -> float [0,1], augmentation) -> device/channels_last ->
``method.loss`` under autocast (attacks and SGLD happen inside) -> backward -> optimizer and
LR step -> ``method.after_update`` -> metrics accumulated on the device, synced only every
``log_every`` / ``guard.check_every`` steps -> atomic checkpoints after a passing guard check.

Recovery (guard.py, docs/TRAINING.md): the newest ``guard.keep_checkpoints`` step checkpoints
and the best epoch's are kept; on a trigger the loop rolls back to one of them, reseeds the
noise, optionally lowers the lr, logs a ``{"kind": "guard"}`` event and goes on, until
``guard.max_retries`` rollbacks are spent.

Under ``torchrun`` the same loop runs on every rank (``distributed.py``, docs/SCALE.md): DDP
averages gradients, metrics and guard checks are averaged over ranks, rank 0 writes the files,
checkpoints gather every rank's method state (replay buffers) and resume re-splits them.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save as st_save
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data import BatchStream, load_dataset
from ..methods import build_method
from ..models import build_model
from . import distributed as D
from .checkpoint import (
    atomic_link,
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .guard import DivergenceError, Guard, Trigger, absolute_trigger
from .optim import build_optimizer, build_scheduler
from .rundir import RunDir

resolve_device = D.resolve_device
dist_info = D.dist_info
# A rollback's new noise seed: seed + stride * retry (far from the seeds users pick by hand).
RESEED_STRIDE = 7919


class _RolledBack(Exception):
    """Internal: the epoch's batch stream is stale after a rollback; start it again."""


def _to_device(batches, device: torch.device, memory_format):
    """Move batches to the device; on CUDA copy from pinned memory one batch ahead."""
    if device.type != "cuda":
        for x, y in batches:
            yield x.to(device).contiguous(memory_format=memory_format), y.to(device)
        return

    def move(b):
        x, y = b
        x = x.pin_memory().to(device, non_blocking=True).contiguous(memory_format=memory_format)
        return x, y.pin_memory().to(device, non_blocking=True)

    it = iter(batches)
    nxt = next(it, None)
    nxt = move(nxt) if nxt is not None else None
    while nxt is not None:
        cur = nxt
        b = next(it, None)
        nxt = move(b) if b is not None else None
        yield cur


class Trainer:
    """Build everything a run needs from a :class:`TrainConfig`, then :meth:`fit`."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
                 reseed: int | None = None, progress: bool = True):  # fmt: skip
        self.cfg, self.progress = cfg, progress
        if cfg.amp not in ("bf16", "none"):
            raise ValueError(f"amp must be 'bf16' or 'none', got {cfg.amp!r}")
        # Under torchrun: join the process group (nccl/gloo), device cuda:LOCAL_RANK for cuda/auto.
        self.dist = D.setup(cfg.device)
        self.rank, self.world, self.device = self.dist.rank, self.dist.world, self.dist.device
        try:
            self._build(cfg, run_dir, resume, reseed)
        except BaseException:
            D.cleanup(self.dist)  # leave the process group so the other ranks fail fast too
            raise

    def _build(self, cfg: TrainConfig, run_dir, resume: bool, reseed: int | None) -> None:
        self.run = RunDir(run_dir or Path(cfg.out_dir) / (cfg.name or cfg.preset), write=self.rank == 0)
        torch.manual_seed(cfg.seed)  # the same model initialisation on every rank

        d = cfg.data
        self.train_set = load_dataset(d.name, "train", d.root, d.download, d.test_file, d.image_size, d.train_limit)
        self.test_set = load_dataset(d.name, "test", d.root, False, d.test_file, d.image_size, d.test_limit)
        self.stream = BatchStream(self.train_set, d.batch_size, True, d.augment, cfg.seed, True, self.rank, self.world)

        c = self.train_set.shape[0]
        self.model = build_model(cfg.model.arch, self.train_set.num_classes, c, cfg.model.normalization).to(self.device)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        if cfg.compile:
            # In place (Module.compile): the module keeps its identity and state_dict keys, so the
            # attacks and SGLD, which run on ``unwrap(net)``, and evaluation use the compiled
            # forward too, not only the loss's forward.
            self.model.compile()
        self.net = self.model  # what the loss calls: DDP-wrapped when world > 1
        if self.world > 1:
            self.net = D.wrap_ddp(self.model, self.device)
        # Everything random from here on (buffer init, reinit, SGLD noise, attack starts) is per rank.
        torch.manual_seed(D.rank_seed(cfg.seed, self.rank))
        method_cfg = D.per_rank_config(cfg, self.world, self.train_set.num_classes)
        self.method = build_method(method_cfg, self.model, self.train_set, self.device)
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim, len(self.stream), cfg.epochs)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.last_good: str | None = None
        self.guard = Guard(cfg.guard)
        # Recovery state: survives rollbacks (not restored from the rolled-back-to checkpoint).
        self.events: list[dict] = []
        self.retries, self.lr_scale = 0, 1.0
        self.best_step: int | None = None  # step of checkpoints/best.pt
        self._back, self._last_trigger_step, self._firing = 0, -1, set()

        if resume:
            self._load(self.run.checkpoint)
            self.run.truncate_log(self.global_step, self.epoch)
            if reseed is not None:  # a new noise stream after a divergence (guard.py)
                torch.manual_seed(D.rank_seed(reseed, self.rank))
        else:
            self.run.start_fresh()
        self.run.save_config(cfg.to_dict())

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "method": self.method.state_dict(),
            "rng": rng_state(),
            "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step,
            "guard": {**self.guard.state_dict(), "events": self.events, "retries": self.retries,
                      "lr_scale": self.lr_scale, "best_step": self.best_step},
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
        self.last_good = str(path)

    def _set_base_lr(self, lr: float) -> None:
        self.sched.base_lrs = [lr for _ in self.opt.param_groups]
        for group, fn in zip(self.opt.param_groups, self.sched.lr_lambdas, strict=True):
            group["initial_lr"] = lr
            group["lr"] = lr * fn(self.sched.last_epoch)

    # ------------------------------------------------------------------ divergence recovery
    def _on_trigger(self, trig: Trigger) -> None:
        """Apply ``guard.policy`` to a trigger: log (warn), roll back (raises :class:`_RolledBack`)
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
        target = self._rollback_target(trig, self._back + 1 if trig.step <= self._last_trigger_step else 0)
        if target is None:
            self._give_up(trig, event, None)
        self._rollback(trig, event, target)

    def _rollback_target(self, trig: Trigger, back: int) -> Path | None:
        """The best epoch for a test-accuracy drop; else the newest kept checkpoint, or ``back``
        older (one more for each repeated failure before the run got past the last trigger)."""
        if trig.epoch_level and self.best_step is not None and self.run.best_checkpoint.exists():
            return self.run.best_checkpoint
        kept = [p for _, p in self.run.step_checkpoints()]
        return kept[-1 - min(back, len(kept) - 1)] if kept else None

    def _rollback(self, trig: Trigger, event: dict, target: Path) -> None:
        c = self.cfg.guard
        self._back = self._back + 1 if trig.step <= self._last_trigger_step else 0
        self._last_trigger_step = max(self._last_trigger_step, trig.step)
        self.retries += 1
        if c.policy == "rollback-lr":
            self.lr_scale *= c.lr_factor
        self._load(target, keep_recovery=True)
        noise_seed = self.cfg.seed + RESEED_STRIDE * self.retries
        torch.manual_seed(D.rank_seed(noise_seed, self.rank))  # a new noise stream (SGLD, attacks, reinit)
        D.barrier()  # every rank has read the target before rank 0 drops the abandoned branch
        self.run.prune_checkpoints(c.keep_checkpoints, newer_than=self.global_step)
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
        raise _RolledBack

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

    # ------------------------------------------------------------------ training
    def _autocast(self):
        if self.cfg.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        y = y.to(self.device, non_blocking=True)
        if not self.model.training:
            self.model.train()
        with self._autocast():
            loss, metrics = self.method.loss(self.net, x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        metrics.update(self.method.after_update(self.model))
        return metrics

    def _sync(self, values: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Average over ranks (one host sync) and return host floats; every rank gets the same."""
        tensors = {k: v if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=self.device)
                   for k, v in values.items()}  # fmt: skip
        return D.mean_over_ranks(tensors)

    def _guard_interval(self, sums: dict[str, torch.Tensor], n: int) -> None:
        """The guard judges the mean of the steps since its last check (all ranks alike)."""
        if n == 0 or not self.cfg.guard.enabled:
            return
        trig = self.guard.check(self._sync({k: v / n for k, v in sums.items()}), self.global_step)
        if trig is None:
            self._firing.clear()
        else:
            self._on_trigger(trig)
        sums.clear()

    def evaluate(self, data, attack: dict | None = None, amp: bool = False) -> float:
        """Accuracy on ``data``, sharded over ranks and summed (every rank gets the result)."""
        from ..evaluation.accuracy import accuracy  # lazy: evaluation imports loading, which imports training

        if self.world == 1:
            return accuracy(self.model, data, self.cfg.data.eval_batch_size, self.device, attack=attack, amp=amp)
        D.sync_buffers(self.model)
        idx = torch.arange(self.rank, len(data), self.world)
        shard = type(data)(data.images[idx], data.labels[idx], data.classes)
        acc = accuracy(self.model, shard, self.cfg.data.eval_batch_size, self.device, attack=attack, amp=amp) \
            if len(shard) else 0.0  # fmt: skip
        t = D.sum_over_ranks(torch.tensor([acc * len(shard), float(len(shard))], dtype=torch.float64,
                                          device=self.device))  # fmt: skip
        return float(t[0] / t[1].clamp_min(1))

    def fit(self, max_steps: int | None = None) -> dict:
        """Train to the configured epochs (or stop after ``max_steps`` optimizer steps in total,
        checkpointing there, which tests use to simulate a killed run)."""
        if self.global_step == 0 and not self.run.step_checkpoints():
            self.save()  # step 0: a rollback target before the first periodic checkpoint
        while self.epoch < self.cfg.epochs:
            try:
                if self._epoch(max_steps):
                    return {"stopped_at_step": self.global_step}
            except _RolledBack:
                continue  # the restored epoch/step regenerate their batch stream
        return self.finish()

    def _epoch(self, max_steps: int | None) -> bool:
        """One epoch from ``step_in_epoch``; True when ``max_steps`` was reached."""
        cfg = self.cfg
        global_batch = cfg.data.batch_size * self.world
        sums: dict[str, torch.Tensor] = {}
        guard_sums: dict[str, torch.Tensor] = {}
        epoch_sums: dict[str, torch.Tensor] = {}
        n_acc, n_guard, epoch_n, t_log = 0, 0, 0, time.perf_counter()
        bar = tqdm(total=len(self.stream), initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not self.progress or self.rank != 0, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        t_epoch, n_images = time.perf_counter(), 0
        try:
            batches = _to_device(self.stream.epoch(self.epoch, self.step_in_epoch), self.device, self.memory_format)
            for x, y in batches:
                metrics = self.train_step(x, y)
                self.global_step += 1
                self.step_in_epoch += 1
                n_images += global_batch
                # Accumulate on the device (no sync); first step copies, later ones add in place.
                for k, v in metrics.items():
                    v = v.detach().float()
                    for acc in (sums, epoch_sums, guard_sums):
                        if k in acc:
                            acc[k].add_(v)
                        else:
                            acc[k] = v.clone()
                n_acc, n_guard, epoch_n = n_acc + 1, n_guard + 1, epoch_n + 1
                bar.update(1)
                if self.global_step % cfg.guard.check_every == 0:
                    self._guard_interval(guard_sums, n_guard)
                    n_guard = 0
                if self.global_step % cfg.log_every == 0:
                    now = time.perf_counter()
                    rec: dict = self._sync({k: v / n_acc for k, v in sums.items()})
                    rec.update(kind="step", step=self.global_step, epoch=self.epoch, lr=self.opt.param_groups[0]["lr"],
                               images_per_s=n_acc * global_batch / (now - t_log))  # fmt: skip
                    self.run.log(rec)
                    bar.set_postfix({k: f"{rec[k]:.3g}" for k in ("loss", "acc", "images_per_s") if k in rec})
                    sums, n_acc, t_log = {}, 0, now
                stop = max_steps is not None and self.global_step >= max_steps
                if stop or (cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0):
                    self._guard_interval(guard_sums, n_guard)  # a checkpoint only after a passing check
                    n_guard = 0
                    self.save()
                if stop:
                    return True
            self._guard_interval(guard_sums, n_guard)
        finally:
            bar.close()
        train_time = time.perf_counter() - t_epoch
        means = D.mean_over_ranks({k: v / max(epoch_n, 1) for k, v in epoch_sums.items()})
        rec = {f"train_{k}": v for k, v in means.items()}
        rec.update(kind="epoch", step=self.global_step, epoch=self.epoch + 1, train_time_s=train_time,
                   images_per_s=n_images / max(train_time, 1e-9),
                   test_acc=self.evaluate(self.test_set, amp=cfg.amp == "bf16"))  # fmt: skip
        if cfg.guard.enabled:
            trig = absolute_trigger({k: v for k, v in rec.items() if isinstance(v, float)}, self.global_step,
                                    cfg.guard) or self.guard.check_epoch(rec["test_acc"], self.global_step)  # fmt: skip
            if trig is not None:  # a rollback drops this epoch; its test accuracy is in the event
                trig.epoch_level = True
                self._on_trigger(trig)  # warn returns: the epoch counts as done
        self.epoch += 1
        self.step_in_epoch = 0
        self.run.log(rec)
        self.save(best=self.guard.is_best(rec["test_acc"]))
        self._say(f"epoch {self.epoch}: test acc {rec['test_acc']:.4f}, {rec['images_per_s']:.0f} img/s")
        return False

    def summary(self, status: str | None = None) -> dict:
        cfg = self.cfg
        epochs = self.run.records("epoch")
        rollbacks = [e for e in self.events if e.get("action", "").startswith("rollback")]
        if status is None:
            status = "recovered" if rollbacks else ("warned" if self.events else "ok")
        return {
            "preset": cfg.preset,
            "method": cfg.method.name,
            "arch": cfg.model.arch,
            "status": status,  # ok | recovered (rolled back) | warned (policy warn) | diverged (stopped)
            "epochs": self.epoch,
            "steps": self.global_step,
            "train_images": len(self.train_set),
            "test_images": len(self.test_set),
            "test_acc": epochs[-1]["test_acc"] if epochs else None,
            "best_test_acc": self.guard.best_test_acc,
            "train_time_s": sum(r["train_time_s"] for r in epochs),
            "guard": {"policy": cfg.guard.policy, "retries": self.retries, "lr_scale": self.lr_scale,
                      "events": self.events},  # fmt: skip
        }

    def write_summary(self, status: str | None = None, extra: dict | None = None) -> dict:
        summary = {**self.summary(status), **(extra or {})}
        if self.rank == 0:
            atomic_write_json(self.run.path / "summary.json", summary)
        return summary

    def finish(self) -> dict:
        cfg = self.cfg
        extra: dict = {}
        if cfg.eval_robust_n:  # sharded over ranks like the clean test accuracy
            sub = self.test_set.subset(cfg.eval_robust_n)
            attack = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 20, "energy": "ce"}
            extra["pgd20_acc"] = self.evaluate(sub, attack=attack)
            extra["pgd20_n"] = len(sub)
            extra["pgd20_settings"] = attack
        if self.rank == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            atomic_write_bytes(self.run.path / "model.safetensors", lambda f: f.write(st_save(state)))
        summary = self.write_summary(extra=extra)
        D.barrier()
        return summary

    def close(self) -> None:
        """Leave the process group if this trainer created it (``train()`` does this for you)."""
        D.cleanup(self.dist)


def train(cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False, reseed: int | None = None,
          progress: bool = True, max_steps: int | None = None) -> dict:  # fmt: skip
    """Python API mirror of ``jeat train``: train (or resume) and return the summary.
    Under torchrun it joins the process group and leaves it again at the end."""
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, resume, reseed, progress)
        return trainer.fit(max_steps)
    finally:
        if trainer is not None:
            trainer.close()
