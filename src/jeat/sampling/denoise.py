"""Denoising by energy descent (JEAT arXiv v1, Appendix G.1, Fig. 14-15): the Python API behind
``jeat denoise``.

Clean test images get additive Gaussian noise N(0, sigma^2) (clamped to [0, 1]); Langevin
dynamics (by default noise-free descent) on an energy of the classifier then moves them toward
low energy, and PSNR / SSIM against the clean images measure the result. The paper adds noise
"with a mean value of 0 and a variance of 0.3" without naming the pixel scale; ``sigma`` here is
in [0, 1] pixel units and is a parameter. It does not say which energy or label is used either:
``energy`` (``joint`` E(x,y) by default, as Algorithm 1 generates; ``marginal`` E(x) needs no
label) and ``label`` (``true``: the clean image's label; ``pred``: the class the model predicts
for the noisy image, which uses no ground truth) choose.

``PAPER`` (``jeat denoise --paper``) is the appendix's setting as far as it goes: noise of variance 0.3
(std sqrt(0.3) = 0.548, read in [0, 1] pixel units, the images' own scale; read in [-1, 1] units it
would be std 0.274 here), then *Langevin dynamics*, i.e. with noise: the sampler JEAT trains with (JEM's
K = 20 steps of sgld_lr 1, sgld_std 0.01 in [-1, 1] units = step 0.25, noise 0.005 here). The step
count, step size and Langevin noise are not in the appendix; they are the training sampler's.

Outputs (:func:`save_denoising`): ``denoise.png`` (rows: clean, noisy, denoised — Fig. 15) and
``metrics.json`` (mean PSNR/SSIM of the noisy and the denoised images, per-step curves).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from ..training.checkpoint import atomic_write_json
from .grid import image_grid, save_png
from .langevin import LangevinTrace, langevin

try:  # the evaluation package's SSIM/PSNR (Wang et al. 2004)
    from ..evaluation.ssim import psnr, ssim
except ImportError:  # pragma: no cover - only if the evaluation package is absent
    psnr = ssim = None  # type: ignore[assignment]


@dataclass
class DenoiseConfig:
    sigma: float = 0.1  # std of the added Gaussian noise, [0, 1] pixel units
    energy: str = "joint"  # joint | marginal | ce
    label: str = "true"  # true | pred (label for E(x,y)/CE: ground truth or the noisy image's prediction)
    steps: int = 50
    step_size: float = 0.01
    noise: float = 0.0  # Langevin noise; 0 = plain energy descent
    clip_grad: float | None = None
    clamp: bool = True
    seed: int = 0

    def validate(self) -> None:
        if self.energy not in ("joint", "marginal", "ce"):
            raise ValueError(f"unknown energy {self.energy!r}; choose joint, marginal or ce")
        if self.label not in ("true", "pred"):
            raise ValueError(f"label must be 'true' or 'pred', got {self.label!r}")
        if self.sigma < 0 or self.steps < 0:
            raise ValueError("sigma and steps must be non-negative")


@dataclass
class DenoiseResult:
    clean: Tensor
    noisy: Tensor
    denoised: Tensor
    labels: Tensor  # labels used for the energy
    metrics: dict
    trace: LangevinTrace | None
    config: DenoiseConfig = field(default_factory=DenoiseConfig)


# The defaults of `jeat denoise` (a mild, noise-free descent) and Appendix G.1's setting (module docstring).
DEFAULTS = {"sigma": 0.1, "steps": 50, "step_size": 0.01, "noise": 0.0}
PAPER = {"sigma": 0.3**0.5, "steps": 20, "step_size": 0.25, "noise": 0.005}


def add_noise(x: Tensor, sigma: float, generator: torch.Generator | None = None) -> Tensor:
    """x + N(0, sigma^2), clamped to [0, 1]."""
    z = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
    return (x + sigma * z).clamp(0, 1)


def denoise(model: nn.Module, clean: Tensor, y: Tensor, cfg: DenoiseConfig | None = None) -> DenoiseResult:
    """Noise ``clean`` (float (N, C, H, W) in [0, 1]) and descend the energy; PSNR/SSIM vs clean."""
    cfg = cfg or DenoiseConfig()
    cfg.validate()
    if psnr is None:
        raise RuntimeError("jeat.evaluation.ssim is missing; it provides PSNR/SSIM")
    was_training = model.training
    model.eval()
    gen = torch.Generator().manual_seed(cfg.seed)
    noisy = add_noise(clean, cfg.sigma, gen)
    with torch.no_grad():
        pred = model(noisy).argmax(1)
    labels = y if cfg.label == "true" else pred
    curve_psnr, curve_ssim = [psnr(noisy, clean).mean()], [ssim(noisy, clean).mean()]

    def on_step(t: int, x: Tensor) -> None:
        with torch.no_grad():
            xc = x.clamp(0, 1)
            curve_psnr.append(psnr(xc, clean).mean())
            curve_ssim.append(ssim(xc, clean).mean())

    with torch.random.fork_rng(devices=[clean.device] if clean.device.type == "cuda" else []):
        torch.manual_seed(cfg.seed)
        out, tr = langevin(model, noisy, None if cfg.energy == "marginal" else labels, cfg.energy, cfg.steps,
                           cfg.step_size, cfg.noise, cfg.clip_grad, cfg.clamp, True, on_step=on_step)  # fmt: skip
    out = out.clamp(0, 1)
    with torch.no_grad():
        acc = lambda v: (model(v).argmax(1) == y).float().mean()  # noqa: E731
        accs = torch.stack([acc(clean), acc(noisy), acc(out)]).tolist()
    p = torch.stack(curve_psnr).tolist()
    s = torch.stack(curve_ssim).tolist()
    metrics = {
        "n": len(clean),
        "psnr_noisy": p[0],
        "psnr_denoised": p[-1],
        "ssim_noisy": s[0],
        "ssim_denoised": s[-1],
        "best_step_psnr": int(max(range(len(p)), key=p.__getitem__)),
        "psnr_best": max(p),
        "accuracy_clean": accs[0],
        "accuracy_noisy": accs[1],
        "accuracy_denoised": accs[2],
        "psnr_curve": p,
        "ssim_curve": s,
    }
    model.train(was_training)
    return DenoiseResult(clean, noisy, out, labels, metrics, tr, cfg)


def save_denoising(res: DenoiseResult, out_dir: str | Path, max_cols: int = 10, extra: dict | None = None) -> dict:
    """Write ``denoise.png`` (rows: clean / noisy / denoised) and ``metrics.json``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = min(max_cols, len(res.clean))
    rows = torch.cat([res.clean[:n], res.noisy[:n], res.denoised[:n]]).cpu()
    paths = {"grid": save_png(image_grid(rows, n), out / "denoise.png")}
    info = {"config": asdict(res.config), **(extra or {}), **res.metrics}
    if res.trace is not None:
        info["trace"] = res.trace.to_dict()
    paths["metrics"] = atomic_write_json(out / "metrics.json", info)
    return paths


def denoise_from_checkpoint(checkpoint: str | Path, out: str | Path | None = None, data: str | Path | None = None,
                            n: int = 100, split: str = "test", test_file: str | None = None, device: str = "cpu",
                            weights: str = "auto", **kw) -> DenoiseResult:  # fmt: skip
    """Load a model, take the first ``n`` images of a split, denoise them (``**kw``: :class:`DenoiseConfig`
    fields) and (with ``out``) save the grid and metrics. Mirrors ``jeat denoise``."""
    from ..data import data_root, load_dataset
    from ..loading import apply_run_malloc, load_trained
    from .generate import _resolve_device

    cfg = DenoiseConfig(**kw)
    dev = _resolve_device(device)
    trained = load_trained(checkpoint, device=dev, weights=weights)
    apply_run_malloc(trained, dev)
    dc = trained.config.data
    root = data or dc.root
    if test_file is None and split == "test" and dc.name == "cifar10":
        base = data_root(root)
        # Prefer the lossless test images when present (the shared JPEG test set is itself noisy).
        for d in (base, base / "cifar10"):
            if (d / "test1k_lossless.npz").is_file():
                test_file = "test1k_lossless.npz"
                break
    ds = load_dataset(dc.name, split, root=root, test_file=test_file or dc.test_file, image_size=dc.image_size)
    clean = ds.images[:n].float().div(255).to(dev)
    y = ds.labels[:n].to(dev)
    res = denoise(trained.model, clean, y, cfg)
    res.metrics["weights"] = trained.weights
    if out is not None:
        save_denoising(res, out, extra={"checkpoint": str(trained.path), "split": split, "test_file": test_file})
    return res
