"""Samplers and seed distributions, shared by training methods and ``jeat generate``."""

from .buffer import ReplayBuffer
from .langevin import LangevinTrace, langevin, paper_step
from .seeds import ClassGaussian, uniform_seeds

__all__ = ["ClassGaussian", "LangevinTrace", "ReplayBuffer", "langevin", "paper_step", "uniform_seeds"]
