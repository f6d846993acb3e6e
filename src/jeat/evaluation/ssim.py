"""SSIM and PSNR in torch (Wang et al. 2004), shared by the memorisation check and denoising.

SSIM(x, y) = mean over windows of
    (2 mu_x mu_y + C1)(2 sigma_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(sigma_x^2 + sigma_y^2 + C2))
with an 11x11 Gaussian window (sigma 1.5), C1 = (0.01 L)^2, C2 = (0.03 L)^2, L the data range,
"valid" filtering (no padding, as Wang's reference MATLAB code and pytorch-msssim) and the
mean over channels. Images are float (N, C, H, W); in jeat they lie in [0, 1], so L = 1.
``pairwise_ssim`` compares every image of one set with every image of another without forming
the N x M stack in memory: the window means and variances of each image are computed once and
only the cross term sigma_xy is filtered per pair.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

K1, K2 = 0.01, 0.03


def gaussian_window(size: int = 11, sigma: float = 1.5, device=None, dtype=torch.float32) -> Tensor:
    """1-D normalised Gaussian (the 2-D window is its outer product, applied separably)."""
    r = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    w = torch.exp(-(r**2) / (2 * sigma**2))
    return w / w.sum()


def _filter(x: Tensor, w: Tensor) -> Tensor:
    """Separable 'valid' Gaussian filter of every channel of x (N, C, H, W)."""
    c = x.shape[1]
    x = F.conv2d(x, w.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, w.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _window(x: Tensor, win_size: int, sigma: float) -> Tensor:
    # Images smaller than the window (e.g. 8x8 test images) use the largest odd window that fits.
    size = min(win_size, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2
    return gaussian_window(size, sigma, x.device, x.dtype)


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, win_size: int = 11, sigma: float = 1.5) -> Tensor:
    """Per-image SSIM of matching pairs x[i], y[i] (shape (N,)); 1 means identical."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(f"ssim needs two (N, C, H, W) tensors of one shape, got {tuple(x.shape)}, {tuple(y.shape)}")
    x, y = x.float(), y.float()
    w = _window(x, win_size, sigma)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mx, my = _filter(x, w), _filter(y, w)
    sxx = _filter(x * x, w) - mx * mx
    syy = _filter(y * y, w) - my * my
    sxy = _filter(x * y, w) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def pairwise_ssim(
    a: Tensor, b: Tensor, data_range: float = 1.0, chunk: int = 4096, win_size: int = 11, sigma: float = 1.5
) -> Tensor:
    """SSIM of every a[i] against every b[j]: shape (len(a), len(b)). Same formula as :func:`ssim`."""
    if a.dim() != 4 or a.shape[1:] != b.shape[1:]:
        raise ValueError(f"pairwise_ssim needs (N, C, H, W) sets of one shape, got {tuple(a.shape)}, {tuple(b.shape)}")
    a, b = a.float(), b.float()
    w = _window(a, win_size, sigma)
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    out = torch.empty(len(a), len(b), device=a.device)
    ma, saa = _filter(a, w), _filter(a * a, w)
    saa = saa - ma * ma
    for j in range(0, len(b), chunk):
        bj = b[j : j + chunk]
        mb = _filter(bj, w)
        sbb = _filter(bj * bj, w) - mb * mb
        for i in range(len(a)):
            sab = _filter(a[i : i + 1] * bj, w) - ma[i : i + 1] * mb
            num = (2 * ma[i : i + 1] * mb + c1) * (2 * sab + c2)
            den = (ma[i : i + 1] ** 2 + mb * mb + c1) * (saa[i : i + 1] + sbb + c2)
            out[i, j : j + chunk] = (num / den).flatten(1).mean(1)
    return out


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Per-image PSNR in dB: 10 log10(L^2 / MSE); +inf for identical images."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)
