"""Measurements of trained models: one metric per module, suites registered in :mod:`.suites`.

``evaluate(checkpoint, suites=...)`` (the API of `jeat evaluate`) writes metrics.json and report.md.
"""

from .accuracy import accuracy
from .calibration import ece
from .evaluate import evaluate
from .fid import frechet_distance
from .fisher import exact_hessian_trace, fisher_terms
from .report import compare_table, load_metrics
from .ssim import pairwise_ssim, psnr, ssim
from .suites import SUITES, get_suite, register_suite

__all__ = [
    "SUITES",
    "accuracy",
    "compare_table",
    "ece",
    "evaluate",
    "exact_hessian_trace",
    "fisher_terms",
    "frechet_distance",
    "get_suite",
    "load_metrics",
    "pairwise_ssim",
    "psnr",
    "register_suite",
    "ssim",
]
