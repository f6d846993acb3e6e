"""Attacks in pixel space [0, 1]: one per file."""

from .pgd import fgsm, pgd, project

__all__ = ["fgsm", "pgd", "project"]
