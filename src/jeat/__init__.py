"""jeat: image classifiers as energy-based generative models, made robust.

Python API (mirrors the CLI)::

    from jeat import get_preset, train, load_trained
    cfg = get_preset("cpu-standard"); cfg.data.root = "../shared/data"
    summary = train(cfg)
    model = load_trained("runs/cpu-standard").model
"""

from .config import TrainConfig
from .energy import cross_entropy, joint_energy, marginal_energy
from .loading import TrainedModel, load_trained
from .models import available_models, build_model
from .overrides import apply_override
from .presets import available_presets, get_preset
from .training import train

__version__ = "0.1.0"

__all__ = ["TrainConfig", "TrainedModel", "apply_override", "available_models", "available_presets", "build_model",
           "cross_entropy", "get_preset", "joint_energy", "load_trained", "marginal_energy", "train"]  # fmt: skip
