"""What the harness observes of either side without touching its code: the parameter gradients just
before an optimizer step, each step's wall time and lr (torch's global optimizer step pre-hook), and the
BN running statistics a run leaves. Below both
``common`` (the checks) and ``interleave`` (the alternating speed runs), which use it."""

from __future__ import annotations

import contextlib
import time

import torch
from timing import note_malloc
from torch.optim.optimizer import register_optimizer_step_pre_hook


@contextlib.contextmanager
def record_grads_at_step(grads: dict, model, step_index: int = 0, times: list | None = None,
                         lrs: list | None = None):  # fmt: skip
    """Copy the parameter gradients of ``model`` (a module, or a callable returning it once the
    reference has built it) just before its optimizer's ``step_index``-th step, and (``times``, ``lrs``)
    the wall time and the lr of every step, with torch's global optimizer step pre-hook."""
    calls = {"n": 0}

    def hook(opt, args, kwargs):
        m = model if isinstance(model, torch.nn.Module) else model()
        names: dict[int, list[str]] = {}
        for name, p in m.named_parameters(remove_duplicate=False) if m is not None else ():
            names.setdefault(id(p), []).append(name)  # every alias (JEM++ registers conv1 twice)
        if not any(id(p) in names for g in opt.param_groups for p in g["params"]):
            return
        if calls["n"] == step_index:
            for g in opt.param_groups:
                for p in g["params"]:
                    if id(p) in names and p.grad is not None:
                        for name in names[id(p)]:
                            grads[name] = p.grad.detach().clone()
        calls["n"] += 1
        if times is not None:
            times.append(time.perf_counter())
        if lrs is not None:
            lrs.append(float(opt.param_groups[0]["lr"]))

    if times is not None:
        note_malloc()
    handle = register_optimizer_step_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def bn_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The BN running statistics a run leaves (what evaluation uses): a state the loss and gradient checks
    do not see, so BN momentum or which forwards move the statistics can differ while they agree."""
    return {k: v.detach().clone() for k, v in model.named_buffers(remove_duplicate=False)  # aliases too
            if k.endswith(("running_mean", "running_var"))}  # fmt: skip
