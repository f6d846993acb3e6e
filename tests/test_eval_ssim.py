"""SSIM/PSNR against a direct (loop over windows) float64 reference of Wang et al.'s formula."""

import math

import numpy as np
import torch

from jeat.evaluation.ssim import gaussian_window, pairwise_ssim, psnr, ssim


def _ssim_reference(x: np.ndarray, y: np.ndarray, win: int = 11, sigma: float = 1.5, L: float = 1.0) -> float:
    r = np.arange(win) - (win - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    vals = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - win + 1):
            for j in range(x.shape[2] - win + 1):
                px, py = x[c, i : i + win, j : j + win], y[c, i : i + win, j : j + win]
                mx, my = (w * px).sum(), (w * py).sum()
                sxx, syy = (w * px * px).sum() - mx**2, (w * py * py).sum() - my**2
                sxy = (w * px * py).sum() - mx * my
                vals.append(((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2)))
    return float(np.mean(vals))


def test_ssim_matches_reference_and_identity():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 16, 16, generator=g)
    y = (x + 0.1 * torch.randn(2, 3, 16, 16, generator=g)).clamp(0, 1)
    got = ssim(x, y)
    for i in range(2):
        assert math.isclose(got[i].item(), _ssim_reference(x[i].double().numpy(), y[i].double().numpy()), abs_tol=1e-5)
    assert torch.allclose(ssim(x, x), torch.ones(2))
    assert gaussian_window().sum().item() == torch.tensor(1.0).item()


def test_pairwise_ssim_equals_pairs():
    g = torch.Generator().manual_seed(1)
    a, b = torch.rand(3, 1, 12, 12, generator=g), torch.rand(4, 1, 12, 12, generator=g)
    p = pairwise_ssim(a, b, chunk=3)
    for i in range(3):
        assert torch.allclose(p[i], ssim(a[i : i + 1].expand(4, -1, -1, -1), b), atol=1e-6)


def test_psnr_hand_value():
    x = torch.zeros(1, 1, 4, 4)
    assert math.isclose(psnr(x, x + 0.1).item(), 20.0, rel_tol=1e-5)  # MSE 0.01 -> 10 log10(100)
