"""Energy landscape around a real image (JEAT paper Fig. 2 and Fig. 13).

    E(x + a d1 + b d2, y),   (a, b) on a G x G grid in [-r, r]^2
with d1, d2 random Gaussian directions, orthogonalised (Gram-Schmidt) and normalised to unit l2
norm, so r is an l2 radius in [0, 1] pixel units (the l_inf ball of 8/255 reaches l2 1.74 on
CIFAR). Images are not clipped to [0, 1], so the grid is a true plane. Dark = low energy; the
star marks the real image.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from ..energy import energy as energy_fn  # noqa: E402
from .common import EvalContext, to_float  # noqa: E402


def directions(x: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    d1 = torch.randn(x.shape, generator=generator).to(x)
    d2 = torch.randn(x.shape, generator=generator).to(x)
    d1 = d1 / d1.norm()
    d2 = d2 - (d2 * d1).sum() * d1  # orthogonal to d1
    return d1, d2 / d2.norm()


@torch.no_grad()
def energy_grid(
    model: nn.Module,
    x: Tensor,
    y: int,
    d1: Tensor,
    d2: Tensor,
    radius: float,
    grid: int,
    kind: str = "joint",
    batch_size: int = 256,
) -> tuple[Tensor, Tensor]:
    """E on the plane through x spanned by d1, d2: returns (coords (G,), energies (G, G)) [row = b]."""
    t = torch.linspace(-radius, radius, grid, device=x.device)
    b, a = torch.meshgrid(t, t, indexing="ij")
    pts = x + a.reshape(-1, 1, 1, 1) * d1 + b.reshape(-1, 1, 1, 1) * d2
    labels = torch.full((len(pts),), y, dtype=torch.long, device=x.device)
    e = torch.cat(
        [
            energy_fn(model(pts[i : i + batch_size]), labels[i : i + batch_size], kind)
            for i in range(0, len(pts), batch_size)
        ]
    )
    return t.cpu(), e.view(grid, grid).float().cpu()


def plot(t: Tensor, e: Tensor, title: str, path) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    cs = ax.contourf(t.numpy(), t.numpy(), e.numpy(), levels=20, cmap="viridis")
    ax.contour(t.numpy(), t.numpy(), e.numpy(), levels=20, colors="k", linewidths=0.3)
    ax.plot([0], [0], marker="*", color="tab:blue", markersize=14, markeredgecolor="w")
    fig.colorbar(cs, ax=ax, label="E(x, y)")
    ax.set(xlabel="direction 1 (l2)", ylabel="direction 2 (l2)", title=title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(ctx: EvalContext) -> dict:
    model = ctx.model.eval()
    radius, grid = ctx.opt("landscape", "radius", 2.0), ctx.opt("landscape", "grid", 21)
    k = min(ctx.opt("landscape", "images", 1), len(ctx.test))
    gen = torch.Generator().manual_seed(ctx.seed)
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    out = {"radius_l2": radius, "grid": grid, "energy": "E(x,y) = -f(x)[y] (Eq. 12)", "images": [], "plots": []}
    for i in range(k):
        x = to_float(ctx.test.images[i : i + 1], ctx.device)[0]
        y = int(ctx.test.labels[i])
        d1, d2 = directions(x, gen)
        t, e = energy_grid(model, x, y, d1, d2, radius, grid, batch_size=ctx.batch_size)
        c = grid // 2
        name = f"landscape_{i}.png"
        cls = ctx.test.classes[y]
        plot(t, e, f"E(x,y) around test image {i} ({cls})", ctx.out_dir / name)
        # How flat and how centred the basin is: the numbers behind Fig. 2's visual claim.
        out["images"].append(
            {
                "index": i,
                "class": cls,
                "energy_center": float(e[c, c]),
                "energy_min": float(e.min()),
                "energy_max": float(e.max()),
                "center_is_min": bool(e[c, c] <= e.min() + 1e-6),
            }
        )
        out["plots"].append(name)
    return out
