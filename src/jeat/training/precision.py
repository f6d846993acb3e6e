"""Which autocast a run trains under: ``amp = auto | bf16 | none`` resolved once, at the start.

bf16 pays only where the hardware computes it natively: on a CPU with AVX512-BF16 or AMX
(oneDNN's bf16 kernels) it trained the CPU presets 2.7-4x faster than fp32; on an AVX2-only
CPU (no native bf16) PyTorch emulates it and the same run was 10.7x *slower* (cpu-standard,
2,000 images: 31 vs 327 images/s, docs/SCALE.md). ``auto`` therefore picks bf16 only where it
is native. The resolved value is what config.json records, so a resumed run keeps its
precision whatever machine it resumes on (bit-for-bit resume).
"""

from __future__ import annotations

import warnings

import torch

AMP_CHOICES = ("auto", "bf16", "none")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matmuls/convolutions natively (not emulated in fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where native, else ``none``; an explicit choice is kept (with a warning
    when bf16 is asked for on hardware that only emulates it)."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    native = native_bf16(device)
    if amp == "auto":
        return "bf16" if native else "none"
    if amp == "bf16" and not native:
        msg = (
            f"amp=bf16 on {device.type} without native bf16 support: PyTorch emulates it, which was "
            "about 10x slower than fp32 on an AVX2 CPU; amp=auto picks fp32 here"
        )
        warnings.warn(msg, stacklevel=2)
    return amp
