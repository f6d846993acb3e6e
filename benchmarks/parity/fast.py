"""Fast AT (locuslab/fast_adversarial, ``CIFAR10/train_fgsm.py``) beside jeat's ``paper-fast``.

The reference's ``main()`` runs as published with its defaults (the JEAT paper's Table 4 "Fast" row:
SGD, cyclic lr 0 -> 0.2 -> 0 over 15 epochs, weight decay 5e-4, momentum 0.9, eps 8/255, step 10/255,
random start), with the shims of ``free.py`` (apex in fp32, ``.cuda()`` the identity, the harness's
batches normalised with the reference's constants, no final evaluation). Its loader reports as many
batches per epoch as jeat's run has (``data.train_limit / batch``), so both cyclic schedules span the
same 15 x N steps; the run stops after ``--steps`` batches (the loader ends main() at its second epoch).
Both sides train the reference's
PreActResNet18 from the same initial weights; the random start is the same draw (``torch.Tensor.uniform_``
fed the same U(0, 1) tensor: the reference fills one channel at a time in units of eps / std, jeat the
whole batch in pixels: the same values). Compared: the first step's loss and gradients, the training
loss of every step, the learning rate and SGD momentum of every step, and BN running statistics after
the run.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import (
    REFERENCES,
    ULP_SEEDS,
    Result,
    batches,
    bn_output,
    checkout_commit,
    cifar,
    control_draws,
    cuda_as_cpu,
    install_stubs,
    one_ulp,
    record_backward,
    record_grads_at_step,
    score,
    train_jeat,
)
from free import _Loader, _module_cuda_as_cpu, import_locuslab


class _Done(Exception):
    """Raised by the loader when main() starts its second epoch: the compared steps are all in the first."""


class _OneEpoch(_Loader):
    def __iter__(self):
        if getattr(self, "_served", False):
            raise _Done
        self._served = True
        return super().__iter__()


@contextlib.contextmanager
def uniform_feed(us: list[torch.Tensor]):
    """``Tensor.uniform_(a, b)`` fills ``a + (b - a) * u`` from the prepared U(0, 1) batches: a 4-d call takes a
    whole batch, a 3-d call (one channel of a batch) the next channel of the current one."""
    saved = torch.Tensor.uniform_
    pos = {"i": 0, "ch": 0}

    def feed(self, a=0.0, b=1.0, **k):
        full = us[pos["i"]] if pos["i"] < len(us) else None
        shape = tuple(full.shape) if full is not None else ()
        if full is None or tuple(self.shape) not in (shape, (shape[0], *shape[2:])):
            return saved(self, a, b, **k)  # not a random start (weight initialisation, ...)
        if self.dim() == 4:
            u = full
            pos["i"] += 1
        else:
            u = full[:, pos["ch"]]
            pos["ch"] += 1
            if pos["ch"] == full.shape[1]:
                pos["ch"], pos["i"] = 0, pos["i"] + 1
        with torch.no_grad():
            self.copy_(a + (b - a) * u.to(self.dtype))
        return self

    torch.Tensor.uniform_ = feed
    try:
        yield
    finally:
        torch.Tensor.uniform_ = saved


def check(checkout: Path, o) -> Result:
    repo, commit, sub = REFERENCES["fast"]
    root = checkout / sub
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    batch, steps, epochs, train_limit = o.batch, o.steps, 15, 2000
    per_epoch = train_limit // batch
    shims = [f"stub modules (import only): {', '.join(install_stubs())}",
             "apex.amp: fp32 stand-in; .cuda() is the identity (tensors and modules)",
             f"get_loaders returns the harness's batches, normalised with the reference's mu/std; its length "
             f"({per_epoch}) is jeat's batches per epoch, so both cyclic schedules span {epochs} x {per_epoch} steps",
             "Tensor.uniform_ fed the same U(0, 1) draw on both sides (the random start)",
             "evaluate_pgd / evaluate_standard after training skipped"]  # fmt: skip
    mod, mu, std = import_locuslab(root, "train_fgsm", dtype)

    x, y = cifar(train_limit, o.data)
    x = x.to(dtype)
    raw = batches(x, y, batch, steps, 1, "flip-crop-zero")
    norm = [((xb - mu) / std, yb) for xb, yb in raw]
    gen = torch.Generator().manual_seed(40_000)
    us = [torch.rand(batch, 3, 32, 32, generator=gen, dtype=dtype) for _ in range(steps)]

    captured: dict = {}
    ref_cls = mod.PreActResNet18

    def build():
        net = ref_cls().to(dtype)
        if "model" not in captured:  # the first is trained; a second one is main()'s test copy
            torch.manual_seed(0)
            net = ref_cls().to(dtype)
            captured["model"], captured["init"] = net, {k: v.clone() for k, v in net.state_dict().items()}
        return net

    mod.PreActResNet18 = build
    mod.get_loaders = lambda d, bs: (_OneEpoch(norm, per_epoch), [])
    mod.evaluate_pgd = lambda *a, **k: (0.0, 0.0)
    mod.evaluate_standard = lambda *a, **k: (0.0, 0.0)
    losses_all, ref_grads, ref_times, sched = [], {}, [], []
    step_orig = torch.optim.lr_scheduler.CyclicLR.step

    def logged(self, *a, **k):  # lr and momentum each step ran at
        sched.append((self.optimizer.param_groups[0]["lr"], self.optimizer.param_groups[0]["momentum"]))
        return step_orig(self, *a, **k)

    with tempfile.TemporaryDirectory() as d:
        argv = ["train_fgsm.py", "--batch-size", str(batch), "--opt-level", "O0", "--out-dir", str(Path(d) / "out")]
        saved_argv, sys.argv = sys.argv, argv
        torch.set_num_threads(o.threads)
        t0 = time.perf_counter()
        try:
            torch.optim.lr_scheduler.CyclicLR.step = logged
            with (cuda_as_cpu(), _module_cuda_as_cpu(), uniform_feed(us), record_backward(losses_all, "main"),
                  record_grads_at_step(ref_grads, lambda: captured.get("model"), 0, ref_times)):  # fmt: skip
                mod.main()
        except _Done:  # the first epoch (the compared steps) is over
            pass
        finally:
            torch.optim.lr_scheduler.CyclicLR.step = step_orig
            sys.argv = saved_argv
        ref_wall = time.perf_counter() - t0
        ref_losses = losses_all[1::2]  # main() backpropagates the attack's loss, then the training loss
        ref_sched = sched[1:]  # the first entry is CyclicLR's own step at construction

        from jeat import get_preset
        from jeat.models import register_model
        from jeat.training.loop import Trainer

        register_model("locuslab-preact-resnet18", lambda k, c: ref_cls(), "cifar-locuslab")
        cfg = get_preset("paper-fast")
        cfg.model.arch = "locuslab-preact-resnet18"
        cfg.data.batch_size, cfg.data.root, cfg.data.train_limit, cfg.data.test_limit = batch, o.data, train_limit, 100
        cfg.guard.enabled, cfg.tensorboard, cfg.channels_last = False, False, o.channels_last
        cfg.amp = getattr(o, "jeat_amp", "none")  # bf16: drift / speed against the fp32 reference (run.py --jeat-amp)

        def run_ours(data: list, tag: str, log: list | None = None) -> dict:
            tr = Trainer(cfg, run_dir=Path(d) / f"jeat{tag}", progress=False)
            tr.model.backbone.load_state_dict(captured["init"])
            tr.model.to(dtype)
            if log is not None:
                orig = tr.train_step

                def step_and_log(xb, yb):
                    g = tr.opt.param_groups[0]
                    log.append((g["lr"], g["momentum"]))
                    return orig(xb, yb)

                tr.train_step = step_and_log
            with uniform_feed(us):  # the same random starts: only the inputs move in a control
                return train_jeat(tr, data)

        ours_sched: list = []
        ours = run_ours(raw, "", ours_sched)
        # float32: jeat against itself with its inputs moved by one ulp, the noise floor (score's control)
        control = [run_ours(one_ulp(raw, ULP_SEEDS[0] + k), f"-control{k}") for k in control_draws(o)]

    res = Result("fast", {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                          "script": f"{sub}/train_fgsm.py"},
                 {"model": "the reference's PreActResNet18", "batch": batch, "steps": steps,
                  "reference_flags": argv[1:], "threads": o.threads, "precision": o.dtype,
                  "data": "CIFAR-10 train (first 2,000), zero-padded crop + flip"}, shims=shims)  # fmt: skip
    name_map = {k: f"backbone.{k}" for k, _ in captured["model"].named_parameters()}
    ref = {"losses": ref_losses, "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    # (e) the BN statistics the run leaves: Fast AT's attack forwards move them too (attack.update_bn)
    bn = bn_output(ours, control, captured["model"], lambda k: f"backbone.{k}")
    res = score(res, o, ours, ref, name_map, batch, {"bn_statistics": bn}, control)
    tol = 1e-12
    res.checks["lr"] = {"ours": ours_sched[:3], "reference": ref_sched[:3], "steps": len(ours_sched),
                        "pass": len(ours_sched) == len(ref_sched) and all(
                            abs(a[0] - b[0]) <= tol and abs(a[1] - b[1]) <= tol
                            for a, b in zip(ours_sched, ref_sched, strict=True))}  # fmt: skip
    return res
