"""Calibration (JEAT arXiv v1, Appendix G.2, Fig. 16): ECE and reliability diagrams.

    ECE = sum_b |B_b| / N * | acc(B_b) - conf(B_b) |
over 20 equal-width bins of the confidence max_y p(y|x) (bin b holds conf in (b/20, (b+1)/20],
the first bin also conf = 0). Measured on clean test images and on FGSM images (Goodfellow et
al.: one signed-gradient step of size eps = 8/255 on the cross-entropy, no random start - the
attack the paper names for Fig. 16).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from ..attacks import pgd  # noqa: E402
from .common import EvalContext, batches  # noqa: E402


def ece(confidence: Tensor, correct: Tensor, bins: int = 20) -> dict:
    """Expected calibration error (in [0, 1]) and the per-bin counts/accuracy/confidence."""
    conf, corr = confidence.double().flatten(), correct.double().flatten()
    idx = (conf * bins).ceil().long().sub(1).clamp(0, bins - 1)  # (b/B, (b+1)/B] -> b
    count = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, torch.ones_like(conf))
    acc_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, corr)
    conf_sum = torch.zeros(bins, dtype=torch.float64).index_add_(0, idx, conf)
    n = max(len(conf), 1)
    gap = (acc_sum - conf_sum).abs()  # |B| * |acc - conf| per bin
    nz = count.clamp(min=1)
    return {
        "ece": float(gap.sum() / n),
        "bins": bins,
        "n": len(conf),
        "count": count.long().tolist(),
        "accuracy": (acc_sum / nz).tolist(),
        "confidence": (conf_sum / nz).tolist(),
    }


def reliability_diagram(results: dict[str, dict], path) -> None:
    """One panel per data kind: accuracy per confidence bin against the diagonal."""
    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 4), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        b = r["bins"]
        centers = [(i + 0.5) / b for i in range(b)]
        acc = [a if c else 0.0 for a, c in zip(r["accuracy"], r["count"], strict=True)]
        ax.bar(centers, acc, width=1 / b, edgecolor="k", color="tab:blue", label="accuracy")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
        ax.set_title(f"{name}: ECE {100 * r['ece']:.2f}% (N={r['n']})")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run(ctx: EvalContext) -> dict:
    model, bins = ctx.model.eval(), ctx.opt("calibration", "bins", 20)
    eps = ctx.opt("calibration", "eps", 8 / 255)
    conf = {"clean": [], "fgsm": []}
    corr = {"clean": [], "fgsm": []}
    bar = ctx.bar(len(ctx.test), "calibration")
    for x, y in batches(ctx.test, ctx.batch_size, ctx.device):
        x_adv = pgd(model, x, y, eps=eps, step_size=eps, steps=1, energy="ce", random_start=False)  # FGSM
        for name, xi in (("clean", x), ("fgsm", x_adv)):
            with torch.no_grad():
                p = model(xi).softmax(1)
            c, pred = p.max(1)
            conf[name].append(c)
            corr[name].append(pred == y)
        bar.update(len(y))
    bar.close()
    res = {name: ece(torch.cat(conf[name]).cpu(), torch.cat(corr[name]).cpu(), bins) for name in conf}
    res["fgsm"].update(eps=eps, attack="FGSM (1 step of size eps on CE, no random start)")
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    reliability_diagram(res, ctx.out_dir / "reliability.png")
    res["plots"] = ["reliability.png"]
    return res
