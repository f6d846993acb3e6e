"""Attacks in pixel space [0, 1]: one per file."""

from .cw_l2 import cw_l2
from .pgd import fgsm, pgd, project

__all__ = ["cw_l2", "fgsm", "pgd", "project"]
