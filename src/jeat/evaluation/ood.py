"""Out-of-distribution detection (JEM, Grathwohl et al. 2020, Sec. 5.2 and Table 3).

Test images are the positives; each out-of-distribution set is scored with
- ``logpx``: log p(x) up to the constant, -E(x) = logsumexp_y f(x)[y] (JEM's "log p(x)");
- ``maxprob``: max_y p(y|x) (Hendrycks & Gimpel's baseline);
- ``grad_norm``: -||d log p(x) / dx||_2, JEM's "approximate mass" (a mode has a small gradient);
and reported as AUROC, AUPR-In and FPR at 95 % TPR (:mod:`.ood_metrics`).

Sets (``--set ood.sets=...``, comma-separated); the synthetic ones need no download:
- ``uniform``: U[0, 1] pixels; ``gaussian``: N(mu_c, sigma_c^2) per channel with the test set's
  channel mean and std, clamped to [0, 1] (harder than fixed-variance noise: right colour statistics);
- ``constant``: one random colour per image; ``interp``: (x_i + x_j) / 2 of two test images (JEM's
  "CIFAR10 Interp"); ``grayscale``: the test images' luminance in all three channels; ``permuted``:
  the test images with channels reversed (BGR);
- named sets: ``cifar100``, ``svhn``, ``cifar10`` (test splits, from the data root; ``ood.download=1``
  or ``jeat evaluate --download`` fetches them where online), ``npz:PATH`` and ``folder:PATH``.
Every synthetic image is quantised to 8 bits like the test images. Plots: ``ood_hist.png``.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from ..data import load_dataset  # noqa: E402
from ..energy import upcast  # noqa: E402
from .common import EvalContext  # noqa: E402
from .ood_metrics import detection_metrics  # noqa: E402

SYNTHETIC = ("uniform", "gaussian", "constant", "interp", "grayscale", "permuted")
NAMED = ("cifar10", "cifar100", "svhn")
SCORES = ("logpx", "maxprob", "grad_norm")
DEFAULT_SETS = ",".join(SYNTHETIC)
# Sets made from the colour channels of the test images: without colour there is nothing to take away or permute.
RGB_ONLY = {"grayscale": "a grayscale copy of grayscale images is the images themselves",
            "permuted": "a one-channel image has no channels to permute"}  # fmt: skip


def score_batch(model: nn.Module, x: Tensor, scores=SCORES) -> dict[str, Tensor]:
    """Per-example scores, higher = more in-distribution."""
    out = {}
    need_grad = "grad_norm" in scores
    with torch.enable_grad() if need_grad else torch.no_grad():
        xg = x.detach().requires_grad_(need_grad)
        logits = upcast(model(xg))
        logpx = torch.logsumexp(logits, 1)
        if need_grad:
            (g,) = torch.autograd.grad(logpx.sum(), xg)
            out["grad_norm"] = -g.flatten(1).norm(dim=1).detach()
    if "logpx" in scores:
        out["logpx"] = logpx.detach()
    if "maxprob" in scores:
        out["maxprob"] = F.softmax(logits.detach(), 1).amax(1)
    return out


def _quantise(x: Tensor) -> Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def synthetic_set(name: str, test: Tensor, n: int, generator: torch.Generator) -> Tensor:
    """``n`` images of a synthetic set in [0, 1] (NCHW float), derived from ``test`` where needed."""
    shape = (n, *test.shape[1:])
    if name == "uniform":
        x = torch.rand(shape, generator=generator)
    elif name == "gaussian":
        mu, sd = test.mean((0, 2, 3), keepdim=True), test.std((0, 2, 3), keepdim=True)
        x = mu + sd * torch.randn(shape, generator=generator)
    elif name == "constant":
        x = torch.rand(n, shape[1], 1, 1, generator=generator).expand(shape).clone()
    elif name == "interp":
        i, j = (torch.randint(0, len(test), (n,), generator=generator) for _ in range(2))
        x = 0.5 * test[i] + 0.5 * test[j]
    elif name == "grayscale":
        if test.shape[1] != 3:
            raise ValueError("ood set 'grayscale' needs RGB test images")
        lum = (test[:n] * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        x = lum.expand(-1, 3, -1, -1)
    elif name == "permuted":
        if test.shape[1] < 2:
            raise ValueError("ood set 'permuted' needs more than one channel")
        x = test[:n].flip(1)
    else:
        raise ValueError(f"unknown synthetic ood set {name!r}")
    return _quantise(x)


def load_set(ctx: EvalContext, name: str, n: int, generator: torch.Generator) -> Tensor:
    test = ctx.test.images.float() / 255
    if name in SYNTHETIC:
        return synthetic_set(name, test, n, generator)
    download = bool(int(ctx.opt("ood", "download", 0)))
    if name in NAMED:
        data = load_dataset(name, "test", root=ctx.data_root, download=download)
    elif name.startswith(("npz:", "folder:")):
        kind, path = name.split(":", 1)
        split = "test"
        data = load_dataset(kind, split, root=path, image_size=test.shape[-1])
    else:
        raise ValueError(
            f"unknown ood set {name!r}; choose from {', '.join(SYNTHETIC + NAMED)}, npz:PATH or folder:PATH"
        )
    if tuple(data.images.shape[1:]) != tuple(test.shape[1:]):
        raise ValueError(f"ood set {name!r} has images of shape {tuple(data.images.shape[1:])}, "
                         f"the model's test images {tuple(test.shape[1:])}")  # fmt: skip
    idx = torch.randperm(len(data), generator=generator)[:n]
    return data.images[idx].float() / 255


def _scores_of(ctx: EvalContext, images: Tensor, scores, desc: str) -> dict[str, Tensor]:
    out: dict[str, list[Tensor]] = {s: [] for s in scores}
    bar = ctx.bar(len(images), desc)
    for i in range(0, len(images), ctx.batch_size):
        x = images[i : i + ctx.batch_size].to(ctx.device)
        for k, v in score_batch(ctx.model, x, scores).items():
            out[k].append(v.cpu())
        bar.update(len(x))
    bar.close()
    return {k: torch.cat(v) for k, v in out.items()}


def histogram(in_scores: dict[str, Tensor], out_scores: dict[str, dict[str, Tensor]], path) -> None:
    names = list(in_scores)
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, s in zip(axes[0], names, strict=True):
        lo = min(float(in_scores[s].min()), *(float(v[s].min()) for v in out_scores.values()))
        hi = max(float(in_scores[s].max()), *(float(v[s].max()) for v in out_scores.values()))
        bins = torch.linspace(lo, hi if hi > lo else lo + 1, 41).numpy()
        ax.hist(in_scores[s].numpy(), bins=bins, alpha=0.55, label="test (in)", color="k")
        for name, v in out_scores.items():
            ax.hist(v[s].numpy(), bins=bins, alpha=0.4, label=name, histtype="stepfilled")
        ax.set_title(s)
        ax.set_xlabel("score (higher = in-distribution)")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(ctx: EvalContext) -> dict:
    ctx.model.eval()
    sets = [s.strip() for s in str(ctx.opt("ood", "sets", DEFAULT_SETS)).split(",") if s.strip()]
    skipped = {}
    if "ood.sets" not in ctx.options and ctx.test.shape[0] == 1:  # the default list, on one-channel data
        skipped = {s: f"skipped: {RGB_ONLY[s]} (the test images have 1 channel)" for s in sets if s in RGB_ONLY}
        sets = [s for s in sets if s not in skipped]
    scores = [s.strip() for s in str(ctx.opt("ood", "scores", ",".join(SCORES))).split(",") if s.strip()]
    bad = set(scores) - set(SCORES)
    if bad or not scores or not sets:
        raise ValueError(f"ood.scores must name some of {', '.join(SCORES)} (got {scores}); ood.sets {sets}")
    unknown = [s for s in sets if s not in SYNTHETIC + NAMED and not s.startswith(("npz:", "folder:"))]
    if unknown:  # before any scoring
        raise ValueError(f"unknown ood set {unknown[0]!r}; choose from {', '.join(SYNTHETIC + NAMED)}, npz:PATH or "
                         "folder:PATH")  # fmt: skip
    n = len(ctx.test)
    g = torch.Generator().manual_seed(ctx.seed)
    in_scores = _scores_of(ctx, ctx.test.images.float() / 255, scores, "ood: test")
    res: dict = {"n_in": n, "scores": scores, "positive": "test images (in-distribution)", "sets": {},
                 **({"skipped": skipped} if skipped else {})}  # fmt: skip
    out_scores = {}
    for name in sets:
        x = load_set(ctx, name, n, g)
        out_scores[name] = _scores_of(ctx, x, scores, f"ood: {name}")
        res["sets"][name] = {"n": len(x), **{s: detection_metrics(in_scores[s], out_scores[name][s]) for s in scores}}
    res["mean_auroc"] = {s: sum(v[s]["auroc"] for v in res["sets"].values()) / len(sets) for s in scores}
    histogram(in_scores, out_scores, ctx.out_dir / "ood_hist.png")
    res["plots"] = ["ood_hist.png"]
    return res


def table(res: dict, metric: str = "auroc") -> list[str]:
    """Markdown lines shaped like JEM's Table 3: one row per score, one column per set."""
    sets = list(res.get("sets", {}))
    lines = [f"| score ({metric}) | " + " | ".join(sets) + " | mean |", "|---" * (len(sets) + 2) + "|"]
    for s in res.get("scores", []):
        cells = [f"{res['sets'][k][s][metric]:.3f}" for k in sets]
        mean = sum(res["sets"][k][s][metric] for k in sets) / max(len(sets), 1)
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {mean:.3f} |")
    return lines
