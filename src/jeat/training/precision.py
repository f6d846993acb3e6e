"""Which autocast a run trains under: ``amp = auto | bf16 | none`` resolved once, at the start.

bf16 pays only where the hardware computes it natively: on a CPU with AVX512-BF16 or AMX
(oneDNN's bf16 kernels) it trained the CPU presets 2.7-4x faster than fp32; on an AVX2-only
CPU (no native bf16) PyTorch emulates it and the same run was 10.7x *slower* (cpu-standard,
2,000 images: 31 vs 327 images/s, docs/SCALE.md). ``auto`` therefore picks bf16 only where it
is native, and only for a method whose bf16 training was *measured* neutral against fp32 (issue 38: a
default must be the precision the results hold in): ``BF16_NEUTRAL`` lists them with their evidence;
every other method trains in fp32 under ``auto`` until the precision study
(``benchmarks/precision/precision.py``, ``benchmarks/results/precision_cpu.md``) proves it. ``amp=bf16`` stays an
explicit choice for any method. The resolved value is what config.json records (with ``amp_why``), so a
resumed run keeps its precision whatever machine it resumes on (bit-for-bit resume).
"""

from __future__ import annotations

import warnings

import torch

AMP_CHOICES = ("auto", "bf16", "none")

# Methods whose bf16 autocast training was measured neutral against fp32: every quality column of the precision
# study (clean, PGD-20, C&W, AutoAttack, FID, ECE, OOD AUROC) within 2 standard errors, 3 seeds a side,
# benchmarks/results/precision_cpu.md. The same bf16 numerics run on a GPU, so the verdict holds there too.
_STUDY = "bf16 measured neutral against fp32 (benchmarks/results/precision_cpu.md, 3 seeds a side)"
BF16_NEUTRAL: dict[str, str] = {  # method -> its evidence
    "standard": _STUDY,
    "pgd": _STUDY,
    "jeat": _STUDY + "; 2026-12-06: no column against bf16 by a material amount (FID +13 +- 14, ECE +1.9 +- 1.0, "
    "accuracies +0.3 to +3.7 points)",
    "fgsm": _STUDY + "; 2026-12-06: every difference within 1 point of accuracy, FID -0.1 +- 3.2, ECE -1.0 +- 1.7",
    "free": _STUDY + "; 2026-12-06 (session 21): accuracies +0.0 to +1.1 points, FID -4.1 +- 7.8, ECE -0.2 +- 1.1, "
    "OOD AUROC +1.2 +- 4.1",
    "trades": _STUDY + "; 2026-12-06 (session 21): accuracies -0.4 to +1.6 points, FID -2.0 +- 8.5, ECE +0.7 +- 1.3, "
    "OOD AUROC +1.1 +- 3.5",
    "robust-jem": _STUDY + "; 2026-12-06 (session 25): accuracies -1.0 to +0.7 points, FID +1.8 +- 6.2, ECE +0.8 +- "
    "2.3, OOD AUROC +2.1 +- 21.5 (errors that wide decide little; nothing points against bf16)",
    "eb-jdat": _STUDY + "; 2026-12-06 (session 25): accuracies -0.7 to +0.0 points, FID +20.5 +- 12.0 (against bf16, "
    "1.7 SE, under the 30-point material line), ECE -0.3 +- 1.2, OOD AUROC +11.0 +- 15.4",
    "dat": _STUDY + "; 2026-12-06 (session 25): accuracies -0.3 to +0.7 points, FID -1.1 +- 6.3, ECE -0.3 +- 0.8, "
    "OOD AUROC -0.1 +- 2.8",
}
# Neutral by that rule, but a difference points against bf16 by a *material* amount (benchmarks/precision/
# precision.py's MATERIAL: e.g. 10 points of OOD AUROC, 30 FID): within 2 SE only because the seeds' errors are
# wide, which is absence of evidence, not evidence of absence. Held in fp32, the references' precision, until an
# equivalence margin decides (issue 38). The CI test recomputes both sets from the study's records.
BF16_HELD: dict[str, str] = {
    "jem": "2-SE rule met with wide errors (3 seeds a side, 2026-12-06): OOD AUROC -20.3 +- 12.7, FID +42 +- 44, "
    "clean +1.5 +- 6.2 points"
}
# The 2-SE rule calls some quality column *different* (3 seeds a side): fp32 under amp=auto, with the column named.
BF16_DIFFERS: dict[str, str] = {
    "prejeat": "OOD AUROC -6.3 +- 2.4 points in bf16 (3 seeds a side, 2026-12-06; every other quality column neutral)",
    "noise": "FID -9.4 +- 4.4 in bf16, lower (better) than fp32 (3 seeds a side, 2026-12-06; every other quality "
    "column neutral): the published fp32 numbers would not be what a bf16 run gets",
    "weat": "C&W-inf -1.1 +- 0.4 points in bf16 (3 seeds a side, 2026-12-06, session 21; every other quality column "
    "neutral: PGD-20 -1.0 +- 0.9, AutoAttack +0.0 +- 1.7)",
    "jempp": "C&W-inf -0.7 +- 0.4 points in bf16 (3 seeds a side, 2026-12-06, session 22; every other quality column "
    "neutral: PGD-20 -0.5 +- 0.8, AutoAttack +0.0 +- 2.1, FID -11.4 +- 10.1, OOD AUROC +2.9 +- 6.7)",
}

# Study rows that are not methods of their own but a method with another optimiser (SADA-JEM: the jem loss with
# adaptive SAM): verdict (neutral | held | differs) and evidence. amp=auto keys on the method, so a variant's
# run follows its method's verdict; the CI test checks that this is never less cautious than the variant's own.
BF16_VARIANTS: dict[str, tuple[str, str]] = {
    "sadajem": (
        "held",
        "2-SE rule met with wide errors (3 seeds a side, 2026-12-06, session 25): OOD AUROC -14.0 +- 10.1 points, "
        "every other column within 2 points of accuracy or 8 FID (FID -8.1 +- 9.0, in bf16's favour); trains as "
        "method 'jem', itself held",
    )
}


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matmuls/convolutions natively (not emulated in fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def hardware(device: torch.device, cpuinfo: str = "/proc/cpuinfo") -> str:
    """The device in words, with its bf16 instructions on a CPU, for summary.json: the same run in bf16 (and
    fp32, at rounding level) gives other numbers on AMX, AVX512-BF16 and GPU kernels, and speeds differ by
    machine, so every result names the machine it came from."""
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    if device.type != "cpu":
        return device.type
    name, flags = "unknown CPU", set()
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name == "unknown CPU":
                    name = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:  # not Linux: the name is what the platform says, the instructions unknown
        import platform  # noqa: PLC0415

        return f"cpu: {platform.processor() or 'unknown CPU'}"
    bf16 = "AMX" if "amx_bf16" in flags else "AVX512-BF16" if "avx512_bf16" in flags else "no native bf16"
    return f"cpu: {name} ({bf16})"


def resolve_amp(amp: str, device: torch.device, method: str | None = None) -> str:
    """``auto`` -> ``bf16`` where native and (given a ``method``) proven neutral for it, else ``none``;
    an explicit choice is kept (with a warning when bf16 is asked for on hardware that only emulates it)."""
    return resolve_amp_why(amp, device, method)[0]


def resolve_amp_why(amp: str, device: torch.device, method: str | None = None) -> tuple[str, str]:
    """:func:`resolve_amp` and the reason, in words, for the run's summary and first progress line."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {', '.join(AMP_CHOICES)}, got {amp!r}")
    native = native_bf16(device)
    if amp == "auto":
        if not native:
            return "none", f"amp=auto: fp32, {device.type} has no native bf16 (emulated bf16 is ~10x slower)"
        if method is not None and method in BF16_HELD:
            return "none", (f"amp=auto: fp32, bf16 held for method {method!r}: {BF16_HELD[method]} "
                            "(benchmarks/results/precision_cpu.md); --set amp=bf16 to choose it")  # fmt: skip
        if method is not None and method in BF16_DIFFERS:
            return "none", (f"amp=auto: fp32, bf16 measured different for method {method!r}: {BF16_DIFFERS[method]} "
                            "(benchmarks/results/precision_cpu.md); --set amp=bf16 to choose it")  # fmt: skip
        if method is not None and method not in BF16_NEUTRAL:
            return "none", (f"amp=auto: fp32, bf16 not yet proven neutral for method {method!r} "
                            "(benchmarks/results/precision_cpu.md); --set amp=bf16 to choose it")  # fmt: skip
        return "bf16", "amp=auto: bf16, native on this device" + (f"; {BF16_NEUTRAL[method]}" if method else "")
    if amp == "bf16" and not native:
        msg = (
            f"amp=bf16 on {device.type} without native bf16 support: PyTorch emulates it, which was "
            "about 10x slower than fp32 on an AVX2 CPU; amp=auto picks fp32 here"
        )
        warnings.warn(msg, stacklevel=3)
    return amp, f"amp={amp} chosen explicitly"
