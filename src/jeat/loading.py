"""Load a trained model from a run directory, a ``checkpoint.pt`` or a ``model.safetensors``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainConfig
from .models import Classifier, build_model
from .training.allocator import apply_cpu_malloc
from .training.checkpoint import CheckpointError, load_checkpoint, read_safetensors


@dataclass
class TrainedModel:
    model: Classifier
    config: TrainConfig
    path: Path
    class_names: list[str]
    checkpoint: dict | None = None  # the full training state when loaded from checkpoint.pt
    weights: str = "raw"  # raw | ema: which weights were loaded (training/ema.py)

    @property
    def run_dir(self) -> Path:
        return self.path if self.path.is_dir() else self.path.parent


def load_trained(path: str | Path, device: str | torch.device = "cpu", weights: str = "auto") -> TrainedModel:
    """Rebuild the architecture from the saved config and load weights (never pickled code).

    ``weights``: ``ema`` (the run's weight average), ``raw`` (the trained weights) or ``auto``
    (the average when the run kept one, as its evaluation did)."""
    if weights not in ("auto", "ema", "raw"):
        raise ValueError(f"weights must be auto, ema or raw, got {weights!r}")
    path = Path(path)
    ckpt_file = path / "checkpoint.pt" if path.is_dir() else path
    if path.is_dir() and not ckpt_file.exists() and (path / "model.safetensors").exists():
        ckpt_file = path / "model.safetensors"
    if not ckpt_file.exists():
        raise CheckpointError(f"no checkpoint.pt or model.safetensors at {path}")
    if ckpt_file.suffix == ".safetensors":
        cfg_file = ckpt_file.parent / "config.json"
        if not cfg_file.exists():
            raise CheckpointError(f"{ckpt_file} needs its config.json beside it to rebuild the model")
        cfg = TrainConfig.from_dict(json.loads(cfg_file.read_text()))
        ema_file = ckpt_file.with_name("model_ema.safetensors")
        if ckpt_file.name == "model.safetensors" and weights != "raw" and ema_file.exists():
            ckpt_file = ema_file
        elif weights == "ema" and ckpt_file.name != ema_file.name:
            raise CheckpointError(f"weights=ema: no model_ema.safetensors beside {ckpt_file} (trained without ema)")
        used = "ema" if ckpt_file.name == ema_file.name else "raw"
        state, ckpt = read_safetensors(ckpt_file, device=str(device)), None
        num_classes = state["backbone.fc.weight"].shape[0] if "backbone.fc.weight" in state else 10
        in_ch = _in_channels(state)
        names = [str(i) for i in range(num_classes)]
    else:
        ckpt = load_checkpoint(ckpt_file, map_location=device)
        cfg = TrainConfig.from_dict(json.loads(ckpt["config"]))
        state, num_classes, in_ch = ckpt["model"], ckpt["num_classes"], ckpt["image_shape"][0]
        names = list(ckpt.get("class_names", [str(i) for i in range(num_classes)]))
        ema = ckpt.get("ema")
        if weights == "ema" and not ema:
            raise CheckpointError(f"weights=ema: {ckpt_file} holds no weight average (trained without ema)")
        used = "ema" if ema and weights != "raw" else "raw"
        if used == "ema":
            state = {k: v.to(state[k].dtype) for k, v in ema["shadow"].items()}
    model = build_model(cfg.model.arch, num_classes, in_ch, cfg.model.normalization)
    model.load_state_dict(state)
    model.to(device).eval()
    return TrainedModel(model, cfg, ckpt_file, names, ckpt, used)


def apply_run_malloc(trained: TrainedModel, device: str | torch.device) -> bool:
    """Give this process the run's ``cpu_malloc`` (``jeat evaluate``, ``generate``, ``denoise``): their attack,
    SGLD and Inception passes free and retake the same large blocks as a training step does. Without it, a
    FID evaluation of the medium study spent 41 % of its CPU time in the kernel on page faults; with it,
    every metric is bit-identical (benchmarks/results/allocator_eval_cpu.md)."""
    choice = trained.config.cpu_malloc if trained.config is not None else "cached"
    return apply_cpu_malloc(choice, torch.device(device).type)


def _in_channels(state: dict) -> int:
    for k, v in state.items():
        if k.endswith("weight") and v.dim() == 4:
            return v.shape[1]
    return 3
