"""``--init``: start a run from another run's weights (fine-tuning, or a RobustBench model `jeat import`ed).

Only the weights travel: the optimizer, the schedule and any replay buffer start fresh, as in the
papers' fine-tuning runs; `--resume` is the way to continue a run where it stopped.
"""

from __future__ import annotations

import torch

from ..config import TrainConfig


def init_from(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Load ``cfg.init``'s weights (a jeat run, checkpoint.pt or model.safetensors; `jeat import` turns
    RobustBench / robustness-library checkpoints into one) into the freshly built model."""
    from ..loading import load_trained

    src = load_trained(cfg.init, weights=cfg.init_weights)
    theirs = (src.config.model.arch, src.config.model.normalization)
    ours = (cfg.model.arch, cfg.model.normalization)
    if theirs != ours:
        raise ValueError(f"--init {cfg.init}: its model is {theirs[0]!r} with normalization {theirs[1]!r}, "
                         f"this run's {ours[0]!r} with {ours[1]!r} (set model.arch / model.normalization)")  # fmt: skip
    missing, unexpected = model.load_state_dict(src.model.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"--init {cfg.init}: weights do not fit this run's model (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")  # fmt: skip
