"""Conv + eval-mode BatchNorm as one convolution, for the passes that need input gradients only.

In eval mode a BN after a convolution is a per-channel affine map with fixed statistics, so

    BN(W * x + b) = (s * W) * x + (s * (b - mu) + beta),   s = gamma / sqrt(var + eps)

one convolution with a folded weight and bias: the BN's forward and backward memory passes go
(ResNet-18, batch 32, one input-gradient pass on this CPU: 0.409 -> 0.392 s in jeat's CPU layout,
benchmarks/results/model_passes_cpu.md). The folded weights are
computed without autograd, so a folded pass gives correct input gradients and *no* parameter
gradients: it is for attacks in eval mode (TRADES' and WEAT's KL attack), never for training.

A pair is folded only where the convolution's output goes to the BN alone (found by tracing the
model with torch.fx; a module that does not trace is searched child by child) and only while that
BN is in eval mode with running statistics.
"""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch import Tensor, nn
from torch.fx import symbolic_trace

_PAIRS: weakref.WeakKeyDictionary[nn.Module, list[tuple[str, str]]] = weakref.WeakKeyDictionary()


def _traced_pairs(module: nn.Module, prefix: str) -> list[tuple[str, str]]:
    try:
        graph = symbolic_trace(module).graph
    except Exception:  # data-dependent control flow (e.g. input checks): search the children
        return [p for name, child in module.named_children() for p in _traced_pairs(child, prefix + name + ".")]
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(module.get_submodule(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if (isinstance(src, torch.fx.Node) and src.op == "call_module" and len(src.users) == 1
                and type(module.get_submodule(src.target)) is nn.Conv2d):  # fmt: skip
            pairs.append((prefix + src.target, prefix + node.target))
    return pairs


def foldable_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv name, BN name) of every convolution whose output feeds one BN and nothing else."""
    if model not in _PAIRS:
        _PAIRS[model] = _traced_pairs(model, "")
    return _PAIRS[model]


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """The weight and bias of one convolution computing ``bn(conv(x))`` with BN's running statistics."""
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    weight = conv.weight * scale.view(-1, 1, 1, 1).to(conv.weight.dtype)  # keeps the weight's memory format
    return weight, shift.to(conv.weight.dtype)


def _identity(x: Tensor) -> Tensor:
    return x


@contextlib.contextmanager
def folded_bn(model: nn.Module, enabled: bool = True):
    """Inside, every foldable conv + eval-mode BN pair of ``model`` runs as one convolution (input
    gradients only; see the module docstring). The model's parameters and buffers are untouched;
    the folded weights are recomputed on each entry, so they follow the optimizer's updates."""
    compiled = getattr(model, "_compiled_call_impl", None) is not None  # a patched forward would recompile
    if not enabled or compiled:
        yield model
        return
    live = []
    for conv_name, bn_name in foldable_pairs(model):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        if not bn.training and bn.track_running_stats and bn.running_mean is not None:
            live.append((conv, bn))
    try:
        for conv, bn in live:
            weight, bias = fold_conv_bn(conv, bn)
            conv.forward = lambda x, c=conv, w=weight, b=bias: c._conv_forward(x, w, b)
            bn.forward = _identity
        yield model
    finally:
        for conv, bn in live:
            conv.__dict__.pop("forward", None)
            bn.__dict__.pop("forward", None)
