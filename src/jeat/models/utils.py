"""Small helpers shared by attacks, samplers and methods."""

from __future__ import annotations

import contextlib

from torch import nn


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DistributedDataParallel / torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if inner is None:
            return model
        model = inner


def set_bn_momentum(model: nn.Module, momentum: float | None) -> nn.Module:
    """Set every BatchNorm's momentum (None keeps torch's 0.1). JEM++, SADA-JEM and EB-JDAT use 0.9."""
    if momentum is not None:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.momentum = momentum
    return model


@contextlib.contextmanager
def _bn_momentum(model: nn.Module, momentum_of):
    """Inside the block every train-mode BatchNorm's momentum is ``momentum_of(its momentum)``; restored after."""
    saved = [(m, m.momentum) for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m, mom in saved:
        m.momentum = momentum_of(mom)
    try:
        yield model
    finally:
        for m, mom in saved:
            m.momentum = mom


def frozen_bn_stats(model: nn.Module):
    """Use batch statistics but leave BN running statistics untouched.

    Attacks and SGLD run extra forward passes on adversarial or synthetic images during
    training; letting those update the running statistics would corrupt evaluation. Setting
    momentum to 0 makes the running-average update a no-op while keeping train-mode behaviour.
    """
    return _bn_momentum(model, lambda mom: 0.0)


def repeated_bn_update(model: nn.Module, times: int):
    """One train-mode forward whose BN running-statistics update equals ``times`` updates by the same
    batch: momentum m becomes 1 - (1 - m)^times (the statistics are the batch's each time). A cumulative
    average (momentum None) is left as it is."""
    return _bn_momentum(model, lambda mom: None if mom is None else 1 - (1 - mom) ** times)


@contextlib.contextmanager
def running_bn_stats(model: nn.Module):
    """Normalise with BN running statistics (eval-mode BN) inside a train-mode model, and leave
    them untouched: what generation sees, applied to the SGLD negatives of training."""
    switched = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in switched:
        m.eval()
    try:
        yield model
    finally:
        for m in switched:
            m.train()


def sgld_bn_context(model: nn.Module, mode: str):
    """``batch``: the negatives' own batch statistics (JEM/JEM++ train-mode practice), running
    statistics frozen; ``running``: the running statistics, as at generation."""
    if mode == "batch":
        return frozen_bn_stats(model)
    if mode == "running":
        return running_bn_stats(model)
    raise ValueError(f"unknown method.sgld.bn {mode!r}; choose batch or running")


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """``model.eval()`` for the block, then every module back to the mode it had (``train(was)`` would
    put back in train mode the BN layers a surrounding ``running_bn_stats`` had switched off)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
