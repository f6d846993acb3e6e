"""Free AT (locuslab/fast_adversarial, ``CIFAR10/train_free.py``) beside jeat's ``paper-free``.

The reference's ``main()`` runs as published with Table 4's FREE settings passed as its flags
(``--lr-max 0.1 --weight-decay 2e-4 --momentum 0.9 --minibatch-replays 8 --epsilon 8``, multistep).
Shims, all outside its training loop: ``apex.amp`` (fp32: ``initialize`` returns model and optimizer,
``scale_loss`` yields the loss), ``.cuda()`` as the identity, ``get_loaders`` returning the harness's
batches (normalised with the reference's own ``mu``/``std``; the loader reports a length large enough
that ``MultiStepLR``'s milestones, at 1/2 and 3/4 of ``epochs * len(loader) * replays``, fall after the
run: lr stays 0.1, as paper-free's epoch-100 milestone does), the final PGD-50 evaluation skipped, and
the module's CIFAR constants cast to the run's dtype (they are float32 tensors at import).

Both sides train the reference's ``PreActResNet18`` (its block takes the shortcut from the raw input,
unlike jeat's ``preact-resnet18``): the harness registers it as a jeat architecture, with jeat's
``cifar-locuslab`` normalisation in front, and copies the reference's initial weights. jeat trains on
[0, 1] images with delta in pixel units; the reference on normalised images with delta in units of
``eps / std``: the same ball and the same steps, per channel. Compared: the first replay's loss and
gradients, the loss of every replay, the learning rate, and the carried perturbation after the run.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import types
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
    import_reference,
    install_stubs,
    one_ulp,
    record_backward,
    record_grads_at_step,
    score,
    train_jeat,
)


class _Loader(list):
    """The harness's batches, with the length the reference's scheduler reads (``lr_steps``)."""

    def __init__(self, items, length: int):
        super().__init__(items)
        self.length = length

    def __len__(self) -> int:
        return self.length


def _apex() -> types.ModuleType:
    amp = types.ModuleType("apex.amp")
    amp.initialize = lambda model, opt, **k: (model, opt)
    amp.scale_loss = contextlib.contextmanager(lambda loss, opt: (yield loss))
    apex = types.ModuleType("apex")
    apex.amp = amp
    sys.modules.update({"apex": apex, "apex.amp": amp})
    return amp


@contextlib.contextmanager
def _module_cuda_as_cpu():
    saved = torch.nn.Module.cuda
    torch.nn.Module.cuda = lambda self, *a, **k: self
    try:
        yield
    finally:
        torch.nn.Module.cuda = saved


def import_locuslab(root: Path, script: str, dtype: torch.dtype):
    """A locuslab/fast_adversarial training script, imported under the shims (apex in fp32, ``.cuda()`` the
    identity), with its utils' CIFAR constants cast to ``dtype`` in both modules; returns (module, mu, std)."""
    _apex()
    with cuda_as_cpu():
        mod = import_reference(root, script)
    ut = sys.modules["utils"]
    mu, std = ut.mu.to(dtype), ut.std.to(dtype)
    for m_ in (ut, mod):
        m_.mu, m_.std, m_.upper_limit, m_.lower_limit = mu, std, (1 - mu) / std, (0 - mu) / std
    return mod, mu, std


def check(checkout: Path, o) -> Result:
    repo, commit, sub = REFERENCES["free"]
    root = checkout / sub
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    replays, batch, n_batches = 8, o.batch, max(1, o.steps // 8)
    shims = ["apex.amp: fp32 stand-in (initialize returns its arguments, scale_loss yields the loss)",
             ".cuda() is the identity (tensors and modules)",
             "get_loaders returns the harness's batches, normalised with the reference's mu/std; its length "
             "keeps MultiStepLR's milestones after the run (lr 0.1 throughout, as paper-free's first 100 epochs)",
             "evaluate_pgd / evaluate_standard after training skipped; model.pth written to a temporary folder",
             "utils' mu, std, lower_limit, upper_limit cast to the run's dtype"]  # fmt: skip
    shims.insert(0, f"stub modules (import only): {', '.join(install_stubs())}")
    mod, mu, std = import_locuslab(root, "train_free", dtype)

    x, y = cifar(2000, o.data)
    x = x.to(dtype)
    raw = batches(x, y, batch, n_batches, 1, "flip-crop-zero")  # the reference's RandomCrop(padding=4) + flip
    norm = [((xb - mu) / std, yb) for xb, yb in raw]

    captured: dict = {}
    ref_model_cls = mod.PreActResNet18

    def build():
        if "model" in captured:  # main()'s test copy after training (it calls .float() on it): not the trained one
            return ref_model_cls().to(dtype)
        torch.manual_seed(0)  # the reference seeds with args.seed first; the harness fixes the weights itself
        net = ref_model_cls().to(dtype)
        captured["model"], captured["init"] = net, {k: v.clone() for k, v in net.state_dict().items()}
        return net

    mod.PreActResNet18 = build
    mod.get_loaders = lambda d, bs: (_Loader(norm, 10**9), [])
    mod.evaluate_pgd = lambda *a, **k: (0.0, 0.0)
    mod.evaluate_standard = lambda *a, **k: (0.0, 0.0)
    ref_losses, ref_grads, ref_times, lrs = [], {}, [], []
    sched_step = torch.optim.lr_scheduler.MultiStepLR.step

    def logged_step(self, *a, **k):  # the lr each replay ran at, before the scheduler moves it
        lrs.append(self.optimizer.param_groups[0]["lr"])
        return sched_step(self, *a, **k)

    with tempfile.TemporaryDirectory() as d:
        argv = ["train_free.py", "--batch-size", str(batch), "--epochs", "1", "--lr-schedule", "multistep",
                "--lr-max", "0.1", "--weight-decay", "2e-4", "--momentum", "0.9", "--minibatch-replays",
                str(replays), "--epsilon", "8", "--opt-level", "O0", "--out-dir", str(Path(d) / "out")]  # fmt: skip
        saved_argv, sys.argv = sys.argv, argv
        torch.set_num_threads(o.threads)
        t0 = time.perf_counter()
        try:
            torch.optim.lr_scheduler.MultiStepLR.step = logged_step
            with (cuda_as_cpu(), _module_cuda_as_cpu(), record_backward(ref_losses, "main"),
                  record_grads_at_step(ref_grads, lambda: captured.get("model"), 0, ref_times)):  # fmt: skip
                mod.main()
        finally:
            torch.optim.lr_scheduler.MultiStepLR.step = sched_step
            sys.argv = saved_argv
        ref_wall = time.perf_counter() - t0
        ref_lrs = lrs[1:]  # the first entry is the scheduler's own step at construction
        # The reference's delta is a local of main(): it is compared through every replay's loss (each
        # depends on the delta carried into it) and, step by step, in tests/test_methods_free.py.

        # ---- jeat: paper-free on the reference's architecture and initial weights
        from jeat import get_preset
        from jeat.models import register_model
        from jeat.training.loop import Trainer

        register_model("locuslab-preact-resnet18", lambda k, c: ref_model_cls(), "cifar-locuslab")
        cfg = get_preset("paper-free")
        cfg.model.arch = "locuslab-preact-resnet18"
        cfg.data.batch_size, cfg.data.root, cfg.data.train_limit, cfg.data.test_limit = batch, o.data, 2000, 100
        cfg.guard.enabled, cfg.tensorboard, cfg.channels_last = False, False, o.channels_last
        cfg.amp = getattr(o, "jeat_amp", "none")  # bf16: drift / speed against the fp32 reference (run.py --jeat-amp)

        def run_ours(data: list, tag: str) -> dict:
            tr = Trainer(cfg, run_dir=Path(d) / f"jeat{tag}", progress=False)
            tr.model.backbone.load_state_dict(captured["init"])
            tr.model.to(dtype)
            tr.method.delta = tr.method.delta.to(dtype)
            return train_jeat(tr, [b for b in data for _ in range(replays)])  # BatchStream(replays=m)

        ours = run_ours(raw, "")
        jeat_lrs = ours["lr"]  # the lr each step ran at (train_jeat's optimizer pre-hook)
        # float32: jeat against itself with its inputs moved by one ulp, the noise floor (score's control)
        control = [run_ours(one_ulp(raw, ULP_SEEDS[0] + k), f"-control{k}") for k in control_draws(o)]

    res = Result("free", {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                          "script": f"{sub}/train_free.py"},
                 {"model": "the reference's PreActResNet18", "batch": batch, "batches": n_batches,
                  "replays": replays, "steps": len(raw) * replays, "reference_flags": argv[1:], "threads": o.threads,
                  "precision": o.dtype, "data": "CIFAR-10 train (first 2,000), zero-padded crop + flip"},
                 shims=shims)  # fmt: skip
    name_map = {k: f"backbone.{k}" for k, _ in captured["model"].named_parameters()}
    ref = {"losses": ref_losses, "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    # (e) the BN statistics the run leaves (every replay's train-mode forward moves them, on both sides)
    bn = bn_output(ours, control, captured["model"], lambda k: f"backbone.{k}")
    res = score(res, o, ours, ref, name_map, batch, {"bn_statistics": bn}, control)
    same_lr = len(jeat_lrs) == len(ref_lrs) and all(
        abs(a - b) <= 1e-12 * max(abs(b), 1) for a, b in zip(jeat_lrs, ref_lrs, strict=True)
    )
    res.checks["lr"] = {"ours": jeat_lrs[:4], "reference": ref_lrs[:4], "steps": len(jeat_lrs), "pass": same_lr}
    return res
