"""Samplers and seed distributions, shared by training methods and ``jeat generate``."""

from .buffer import ReplayBuffer
from .combined import ROBUST_JEM_INFERENCE_EPS, adversarial_prior, combined_inference, reduce_contrast
from .denoise import DenoiseConfig, add_noise, denoise, denoise_from_checkpoint
from .generate import GenerateConfig, GenerationResult, generate, generate_from_checkpoint, save_generation
from .gmm import ClassGMM, kmeans
from .langevin import LangevinTrace, langevin, paper_step
from .pyld import pyld
from .seeding import seed_fn
from .seeds import ClassGaussian, uniform_seeds

__all__ = [
    "ROBUST_JEM_INFERENCE_EPS", "ClassGMM", "ClassGaussian", "DenoiseConfig", "GenerateConfig", "GenerationResult",
    "LangevinTrace", "ReplayBuffer", "add_noise", "adversarial_prior", "combined_inference", "denoise",
    "denoise_from_checkpoint", "generate", "generate_from_checkpoint", "kmeans", "langevin", "paper_step",
    "pyld", "reduce_contrast", "save_generation", "seed_fn", "uniform_seeds",
]  # fmt: skip
