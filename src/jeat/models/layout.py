"""The memory layout a model trains in: channels_last, and on a CPU per stage where a model says so.

oneDNN's channels_last convolutions are faster on this CPU at 32x32 and 16x16 and slower at 8x8
and 4x4 with 256-512 channels (benchmarks/results/layout_cpu.md: ResNet-18's 512-channel 4x4
convolutions take 1.4-1.5x longer in channels_last). A backbone names the stages that should stay
in the default (NCHW) layout on a CPU in ``cpu_nchw_stages``; their weights stay NCHW and their input
is converted once, at the first of them (the conversion's backward converts the gradient back).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _to_nchw(module: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return (args[0].contiguous(), *args[1:])


def apply_layout(model: nn.Module, channels_last: bool, device_type: str, staged: bool = True) -> nn.Module:
    """``model`` in channels_last (or NCHW); on a CPU with ``staged``, every module declaring
    ``cpu_nchw_stages`` keeps those submodules in NCHW. Returns the model (converted in place)."""
    model = model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    if not (channels_last and staged and device_type == "cpu"):
        return model
    for owner in list(model.modules()):
        names = getattr(owner, "cpu_nchw_stages", ())
        for i, name in enumerate(names):
            stage = owner.get_submodule(name).to(memory_format=torch.contiguous_format)
            if i == 0 and not getattr(stage, "_jeat_nchw_hook", False):
                stage.register_forward_pre_hook(_to_nchw)
                stage._jeat_nchw_hook = True
    return model


def staged_layout(model: nn.Module) -> list[str]:
    """Names of the submodules a staged layout keeps in NCHW (for logs and tests)."""
    return [f"{prefix}.{name}".lstrip(".") for prefix, m in model.named_modules()
            for name in getattr(m, "cpu_nchw_stages", ())]  # fmt: skip
