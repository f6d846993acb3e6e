"""The one training loop shared by every method.

A batch flows: BatchStream (uint8 -> float [0,1], augmentation) -> device/channels_last ->
``method.loss`` under autocast (attacks and SGLD happen inside) -> backward -> optimizer and
LR step -> ``method.after_update`` -> metrics accumulated on the device, synced only every
``log_every`` / ``guard.check_every`` steps -> atomic checkpoints after a passing guard check.
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
from ..evaluation import accuracy
from ..methods import build_method
from ..models import build_model
from . import guard
from .checkpoint import (
    atomic_write_bytes,
    atomic_write_json,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .optim import build_optimizer, build_scheduler
from .rundir import RunDir


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return dev


def dist_info() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class Trainer:
    """Build everything a run needs from a :class:`TrainConfig`, then :meth:`fit`."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
                 reseed: int | None = None, progress: bool = True):  # fmt: skip
        self.cfg, self.progress = cfg, progress
        self.rank, self.world = dist_info()
        self.device = resolve_device(cfg.device)
        if cfg.amp not in ("bf16", "none"):
            raise ValueError(f"amp must be 'bf16' or 'none', got {cfg.amp!r}")
        self.run = RunDir(run_dir or Path(cfg.out_dir) / (cfg.name or cfg.preset), write=self.rank == 0)
        torch.manual_seed(cfg.seed)

        d = cfg.data
        self.train_set = load_dataset(d.name, "train", d.root, d.download, d.test_file, d.image_size, d.train_limit)
        self.test_set = load_dataset(d.name, "test", d.root, False, d.test_file, d.image_size, d.test_limit)
        self.stream = BatchStream(self.train_set, d.batch_size, True, d.augment, cfg.seed, True, self.rank, self.world)

        c = self.train_set.shape[0]
        self.model = build_model(cfg.model.arch, self.train_set.num_classes, c, cfg.model.normalization).to(self.device)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=self.memory_format)
        self.net = self.model  # what the loss calls: possibly DDP / compiled
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        if cfg.compile:
            self.net = torch.compile(self.net)
        self.method = build_method(cfg, self.model, self.train_set, self.device)
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        self.sched = build_scheduler(self.opt, cfg.optim, len(self.stream), cfg.epochs)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        self.last_good: str | None = None

        if resume:
            self._load(self.run.checkpoint)
            self.run.truncate_log(self.global_step)
            if reseed is not None:  # a new noise stream after a divergence (guard.py)
                torch.manual_seed(reseed)
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
            "config": self.cfg.to_json(),
            "num_classes": self.train_set.num_classes,
            "image_shape": list(self.train_set.shape),
            "class_names": list(self.train_set.classes),
        }

    def save(self) -> None:
        if self.rank == 0:
            save_checkpoint(self.run.checkpoint, self.state_dict())
            self.last_good = str(self.run.checkpoint)

    def _load(self, path: Path) -> None:
        s = load_checkpoint(path, map_location=self.device)
        self.model.load_state_dict(s["model"])
        self.opt.load_state_dict(s["optimizer"])
        self.sched.load_state_dict(s["scheduler"])
        self.method.load_state_dict(s["method"])
        set_rng_state({k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in s["rng"].items()})
        self.epoch, self.step_in_epoch, self.global_step = s["epoch"], s["step_in_epoch"], s["global_step"]
        self.last_good = str(path)

    # ------------------------------------------------------------------ training
    def _autocast(self):
        if self.cfg.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        y = y.to(self.device, non_blocking=True)
        self.model.train()
        with self._autocast():
            loss, metrics = self.method.loss(self.net, x, y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.sched.step()
        metrics.update(self.method.after_update(self.model))
        return metrics

    def fit(self, max_steps: int | None = None) -> dict:
        """Train to the configured epochs (or stop after ``max_steps`` optimizer steps in total,
        checkpointing there, which tests use to simulate a killed run)."""
        cfg = self.cfg
        steps_per_epoch = len(self.stream)
        sums: dict[str, torch.Tensor] = {}
        n_acc, t_log = 0, time.perf_counter()
        while self.epoch < cfg.epochs:
            bar = tqdm(total=steps_per_epoch, initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                       disable=not self.progress or self.rank != 0, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
            t_epoch, n_images = time.perf_counter(), 0
            epoch_sums: dict[str, torch.Tensor] = {}
            epoch_n = 0
            for x, y in self.stream.epoch(self.epoch, self.step_in_epoch):
                metrics = self.train_step(x, y)
                self.global_step += 1
                self.step_in_epoch += 1
                n_images += len(y) * self.world
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0) + v.detach().float()
                    epoch_sums[k] = epoch_sums.get(k, 0) + v.detach().float()
                n_acc += 1
                epoch_n += 1
                bar.update(1)
                if self.global_step % cfg.guard.check_every == 0:
                    guard.check({k: float(v) for k, v in metrics.items()}, self.global_step, cfg.guard, self.last_good)
                if self.global_step % cfg.log_every == 0:
                    now = time.perf_counter()
                    rec = {k: float(v) / n_acc for k, v in sums.items()}
                    rec.update(kind="step", step=self.global_step, epoch=self.epoch,
                               lr=self.opt.param_groups[0]["lr"], images_per_s=n_acc * len(y) * self.world / (now - t_log))  # fmt: skip
                    guard.check({k: v for k, v in rec.items() if isinstance(v, float)}, self.global_step, cfg.guard,
                                self.last_good)  # fmt: skip
                    self.run.log(rec)
                    bar.set_postfix({k: f"{rec[k]:.3g}" for k in ("loss", "acc", "images_per_s") if k in rec})
                    sums, n_acc, t_log = {}, 0, now
                stop = max_steps is not None and self.global_step >= max_steps
                if stop or (cfg.checkpoint_every and self.global_step % cfg.checkpoint_every == 0):
                    guard.check({k: float(v) for k, v in metrics.items()}, self.global_step, cfg.guard, self.last_good)
                    self.save()
                if stop:
                    bar.close()
                    return {"stopped_at_step": self.global_step}
            bar.close()
            train_time = time.perf_counter() - t_epoch
            rec = {f"train_{k}": float(v) / max(epoch_n, 1) for k, v in epoch_sums.items()}
            rec.update(kind="epoch", step=self.global_step, epoch=self.epoch + 1, train_time_s=train_time,
                       images_per_s=n_images / max(train_time, 1e-9),
                       test_acc=accuracy(self.model, self.test_set, cfg.data.eval_batch_size, self.device,
                                         amp=cfg.amp == "bf16"))  # fmt: skip
            self.epoch += 1
            self.step_in_epoch = 0
            guard.check(
                {k: v for k, v in rec.items() if isinstance(v, float)}, self.global_step, cfg.guard, self.last_good
            )
            self.run.log(rec)
            self.save()
            if self.rank == 0:
                tqdm.write(f"epoch {self.epoch}: test acc {rec['test_acc']:.4f}, {rec['images_per_s']:.0f} img/s",
                           file=sys.stderr)  # fmt: skip
        return self.finish()

    def finish(self) -> dict:
        cfg = self.cfg
        epochs = self.run.records("epoch")
        summary = {
            "preset": cfg.preset,
            "method": cfg.method.name,
            "arch": cfg.model.arch,
            "epochs": self.epoch,
            "steps": self.global_step,
            "train_images": len(self.train_set),
            "test_images": len(self.test_set),
            "test_acc": epochs[-1]["test_acc"] if epochs else None,
            "train_time_s": sum(r["train_time_s"] for r in epochs),
        }
        if cfg.eval_robust_n and self.rank == 0:
            sub = self.test_set.subset(cfg.eval_robust_n)
            attack = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 20, "energy": "ce"}
            summary["pgd20_acc"] = accuracy(self.model, sub, cfg.data.eval_batch_size, self.device, attack=attack)
            summary["pgd20_n"] = len(sub)
            summary["pgd20_settings"] = attack
        if self.rank == 0:
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            atomic_write_bytes(self.run.path / "model.safetensors", lambda f: f.write(st_save(state)))
            atomic_write_json(self.run.path / "summary.json", summary)
        return summary


def train(cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False, reseed: int | None = None,
          progress: bool = True, max_steps: int | None = None) -> dict:  # fmt: skip
    """Python API mirror of ``jeat train``: train (or resume) and return the summary."""
    return Trainer(cfg, run_dir, resume, reseed, progress).fit(max_steps)
