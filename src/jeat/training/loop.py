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
from tqdm.auto import tqdm

from ..config import TrainConfig
from ..data import BatchStream, load_dataset
from ..data.loader import to_device
from ..data.split import SPLIT_FILE, run_split, save_split
from ..methods import build_method
from ..models import build_model
from ..models.layout import apply_layout
from ..models.utils import frozen_bn_stats, set_bn_momentum
from ..validation import validate
from . import distributed as D
from .allocator import apply_cpu_malloc
from .ema import EMA
from .guard import Guard, absolute_trigger
from .init_from import init_from
from .optim import build_optimizer, build_scheduler
from .precision import resolve_amp_why
from .recovery import Recovery, RolledBack
from .rundir import RunDir
from .sam import SAM
from .state import Checkpointing
from .summary import Summary
from .tensorboard import open_sink

resolve_device = D.resolve_device
dist_info = D.dist_info


class Trainer(Checkpointing, Recovery, Summary):
    """Build everything a run needs from a :class:`TrainConfig`, then :meth:`fit`."""

    def __init__(self, cfg: TrainConfig, run_dir: str | Path | None = None, resume: bool = False,
                 reseed: int | None = None, progress: bool = True):  # fmt: skip
        self.cfg, self.progress = cfg, progress
        validate(cfg)
        # Under torchrun: join the process group (nccl/gloo), device cuda:LOCAL_RANK for cuda/auto.
        self.dist = D.setup(cfg.device)
        self.rank, self.world, self.device = self.dist.rank, self.dist.world, self.dist.device
        try:
            self._build(cfg, run_dir, resume, reseed)
        except BaseException:
            D.cleanup(self.dist)  # leave the process group so the other ranks fail fast too
            raise

    def _build(self, cfg: TrainConfig, run_dir, resume: bool, reseed: int | None) -> None:
        if cfg.amp == "auto" or not cfg.amp_why:  # a resumed run keeps its recorded choice and reason
            cfg.amp, cfg.amp_why = resolve_amp_why(cfg.amp, self.device, cfg.method.name)
        # config.json records the concrete choice (and why), so a resume on another machine keeps it
        if self.progress and self.rank == 0:
            print(
                f"jeat: precision {'bf16 autocast' if cfg.amp == 'bf16' else 'fp32'} ({cfg.amp_why})", file=sys.stderr
            )
        apply_cpu_malloc(cfg.cpu_malloc, self.device.type)  # per process, before the first big tensor
        self.run = RunDir(run_dir or Path(cfg.out_dir) / (cfg.name or cfg.preset), write=self.rank == 0)
        torch.manual_seed(cfg.seed)  # the same model initialisation on every rank

        d = cfg.data
        full = load_dataset(d.name, "train", d.root, d.download, d.test_file, d.image_size)
        # The validation split comes first, then train_limit draws from what is left (data/split.py).
        self.split = run_split(self.run.path, full, d.valid_size, cfg.seed, resume, d.valid_rule)
        train_part, self.valid_set = self.split.apply(full) if self.split is not None else (full, None)
        self.train_set = train_part.subset(d.train_limit)
        # For the record only: no decision of the run reads it (the guard, best.pt and the verdict use valid_set).
        self.test_set = load_dataset(d.name, "test", d.root, False, d.test_file, d.image_size, d.test_limit)

        c = self.train_set.shape[0]
        self.model = build_model(cfg.model.arch, self.train_set.num_classes, c, cfg.model.normalization).to(self.device)
        if cfg.init and not resume:  # a resumed run's checkpoint already holds the trained weights
            init_from(self.model, cfg)
        set_bn_momentum(self.model, cfg.model.bn_momentum)
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = apply_layout(self.model, cfg.channels_last, self.device.type, cfg.staged_layout)
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
        # A method that replays each batch (Free AT: ``replays`` = m) gets a stream that repeats it.
        self.stream = BatchStream(self.train_set, d.batch_size, True, d.augment, cfg.seed, True, self.rank, self.world,
                                  replays=getattr(self.method, "replays", 1))  # fmt: skip
        self.ema = EMA(self.model, cfg.ema.decay, cfg.ema.warmup, cfg.ema.copy_first) if cfg.ema.decay > 0 else None
        self.opt = build_optimizer(self.model.parameters(), cfg.optim)
        o = cfg.optim
        self.sam = SAM(self.model.parameters(), o.sam_rho, o.sam_adaptive) if o.sam_rho > 0 else None
        self.sched = build_scheduler(self.opt, cfg.optim, len(self.stream), cfg.epochs)
        self.epoch, self.step_in_epoch, self.global_step = 0, 0, 0
        # the current epoch's seconds before this loop (from a checkpoint): a resumed epoch's time is its whole time
        self.epoch_time_s, self._t_epoch = 0.0, time.perf_counter()
        self.last_good: str | None = None
        self.guard = Guard(cfg.guard, cfg.method.energy_l2)
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
            if self.split is not None and self.rank == 0:  # after start_fresh: never over another run's split
                save_split(self.run.path / SPLIT_FILE, self.split)
        if self.valid_set is None:
            self._say("warning: data.valid_size=0: no validation split, so the guard's epoch triggers and "
                      "best.pt are off and the `failed` verdict reads training accuracy; the test set only "
                      "reports")  # fmt: skip
        self.run.save_config(cfg.to_dict())
        if cfg.tensorboard and self.rank == 0:
            sink = open_sink(self.run.path, purge_step=self.global_step if resume else None)
            self.run.sinks = [sink] if sink else []

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
        if self.sam is not None:
            self._sam_second_pass(x, y)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model)
        metrics.update(self.method.after_update(self.model))
        return metrics

    def _sam_second_pass(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """SAM: the gradient at w + e(w) on the same crafted inputs replaces the one at w."""
        self.sam.perturb()
        self.opt.zero_grad(set_to_none=True)
        self.method.reuse_crafted = True
        try:
            with frozen_bn_stats(self.model), self._autocast():
                loss, _ = self.method.loss(self.net, x, y)
            loss.backward()
        finally:
            self.method.reuse_crafted = False
            self.sam.restore()

    def _sync(self, values: dict[str, torch.Tensor | float]) -> dict[str, float]:
        """Average over ranks (one host sync) and return host floats; every rank gets the same."""
        tensors = {k: v if isinstance(v, torch.Tensor) else torch.tensor(float(v), device=self.device)
                   for k, v in values.items()}  # fmt: skip
        return D.mean_over_ranks(tensors)

    @property
    def weights(self) -> str:
        """The weights evaluation and the saved model use: ``ema`` when the average is on."""
        return "ema" if self.ema is not None else "raw"

    def evaluate(self, data, attack: dict | None = None, amp: bool = False, weights: str = "raw") -> float:
        """Accuracy on ``data`` with the ``weights`` (raw | ema), sharded over ranks and summed
        (every rank gets the result)."""
        if weights == "ema" and self.ema is not None:
            with self.ema.applied(self.model):
                return self.evaluate(data, attack, amp)
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

    def evaluate_valid(self, amp: bool = False) -> tuple[float, float]:
        """Validation accuracy of the reported weights and the largest share of the validation images
        predicted as one class (the guard's dead-model check), both summed over ranks."""
        from ..evaluation.accuracy import accuracy_and_counts  # lazy, as in evaluate

        data = self.valid_set
        ctx = self.ema.applied(self.model) if self.weights == "ema" else contextlib.nullcontext()
        with ctx:
            if self.world > 1:
                D.sync_buffers(self.model)
                idx = torch.arange(self.rank, len(data), self.world)
                data = type(data)(data.images[idx], data.labels[idx], data.classes)
            correct, counts = accuracy_and_counts(self.model, data, self.cfg.data.eval_batch_size, self.device, amp)
        t = D.sum_over_ranks(torch.cat([torch.tensor([correct, len(data)], device=counts.device), counts]))
        n = max(int(t[1]), 1)
        return int(t[0]) / n, int(t[2:].max()) / n

    def fit(self, max_steps: int | None = None) -> dict:
        """Train to the configured epochs (or stop after ``max_steps`` optimizer steps in total,
        checkpointing there, which tests use to simulate a killed run)."""
        if self.global_step == 0 and not self.run.step_checkpoints():
            self.save()  # step 0: a rollback target before the first periodic checkpoint
        while self.epoch < self.cfg.epochs:
            try:
                if self._epoch(max_steps):
                    return {"stopped_at_step": self.global_step}
            except RolledBack:
                continue  # the restored epoch/step regenerate their batch stream
        return self.finish()

    def _epoch(self, max_steps: int | None) -> bool:
        """One epoch from ``step_in_epoch``; True when ``max_steps`` was reached."""
        cfg = self.cfg
        global_batch = cfg.data.batch_size * self.world
        sums: dict[str, torch.Tensor] = {}
        guard_sums: dict[str, torch.Tensor] = {}
        epoch_sums: dict[str, torch.Tensor] = {}
        n_acc, n_guard, epoch_n, t_log, save_due = 0, 0, 0, time.perf_counter(), False
        bar = tqdm(total=len(self.stream), initial=self.step_in_epoch, desc=f"epoch {self.epoch + 1}/{cfg.epochs}",
                   disable=not self.progress or self.rank != 0, file=sys.stderr, dynamic_ncols=True)  # fmt: skip
        self._t_epoch, n_images = time.perf_counter(), 0  # read by a checkpoint's epoch_time_s
        try:
            batches = to_device(self.stream.epoch(self.epoch, self.step_in_epoch), self.device, self.memory_format)
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
                stop = max_steps is not None and self.global_step >= max_steps
                save_due |= bool(cfg.checkpoint_every) and self.global_step % cfg.checkpoint_every == 0
                checked = stop or not cfg.guard.enabled or self.global_step % cfg.guard.check_every == 0
                if checked:  # whole intervals only: a partial one is a noisy mean
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
                # A checkpoint is written at the first passing check at or after its step, and not
                # while the gap is out of its band: every kept checkpoint is a rollback target.
                if checked and (stop or (save_due and not self.guard.pending)):
                    self.save()
                    save_due = False
                if stop:
                    return True
            self._guard_interval(guard_sums, n_guard)
        finally:
            bar.close()
        run_time = time.perf_counter() - self._t_epoch  # this process's share of the epoch
        train_time = self.epoch_time_s + run_time
        means = D.mean_over_ranks({k: v / max(epoch_n, 1) for k, v in epoch_sums.items()})
        rec = {f"train_{k}": v for k, v in means.items()}
        rec.update(kind="epoch", step=self.global_step, epoch=self.epoch + 1, train_time_s=train_time,
                   images_per_s=n_images / max(run_time, 1e-9))  # fmt: skip
        amp = cfg.amp == "bf16"
        if self.valid_set is not None:  # what every decision below reads
            rec["valid_acc"], rec["valid_top_share"] = self.evaluate_valid(amp)
        # Decisions are taken on everything measured so far: the test accuracy is measured after them.
        trig = None
        if cfg.guard.enabled:
            floats = {k: v for k, v in rec.items() if isinstance(v, float)}
            trig = absolute_trigger(floats, self.global_step, cfg.guard)
        if trig is None and self.valid_set is not None:
            trig = self.guard.check_epoch(rec["valid_acc"], self.global_step, 1 / self.train_set.num_classes,
                                          len(self.valid_set), rec["valid_top_share"])  # fmt: skip
        best = self.valid_set is not None and trig is None and self.guard.is_best(rec["valid_acc"])
        # For the record only (plots, summary.json): read by no decision of the run.
        rec["test_acc"] = self.evaluate(self.test_set, amp=amp, weights=self.weights)
        if self.ema is not None:  # both, so the log shows what the average buys
            if self.valid_set is not None:
                rec["valid_acc_raw"] = self.evaluate(self.valid_set, amp=amp, weights="raw")
            rec["test_acc_raw"] = self.evaluate(self.test_set, amp=amp, weights="raw")
        if trig is not None:  # a rollback drops this epoch; its accuracies are in the event
            trig.epoch_level = True
            self._on_trigger(trig)  # warn returns: the epoch counts as done
        self.epoch += 1
        self.step_in_epoch, self.epoch_time_s = 0, 0.0
        self.run.log(rec)
        self.save(best=best)
        valid = f"valid acc {rec['valid_acc']:.4f}, " if "valid_acc" in rec else ""
        self._say(f"epoch {self.epoch}: {valid}test acc {rec['test_acc']:.4f} (reported, never used to decide), "
                  f"{rec['images_per_s']:.0f} img/s")  # fmt: skip
        return False

    def close(self) -> None:
        """Leave the process group if this trainer created it (``train()`` does this for you)."""
        for sink in self.run.sinks:
            sink.close()
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
