"""Measurements of trained models."""

from .accuracy import accuracy

__all__ = ["accuracy"]
