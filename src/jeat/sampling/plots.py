"""Figures of sampling traces: ||grad_x E(x,y)|| vs ||grad_x E(x)|| over Langevin iterations
(JEAT appendix Fig. 11-12 / arXiv Fig. 12-13), drawn by ``jeat plot grad-norms DIR``."""

from __future__ import annotations

from pathlib import Path

from .generate import read_traces


def plot_grad_norms(path: str | Path, out: str | Path | None = None, every: int | None = None) -> Path:
    """Mean +- std of the two gradient norms per iteration from a ``traces.json`` (or its directory).

    ``every`` thins the error bars (default: about 25 per curve). Returns the PNG path.
    """
    tr = read_traces(path)
    series = [("joint_grad_norm", r"$\|\nabla_x E(x, y)\|_2$", "tab:red"),
              ("marginal_grad_norm", r"$\|\nabla_x E(x)\|_2$", "tab:blue")]  # fmt: skip
    if not any(k in tr for k, _, _ in series):
        raise ValueError(f"{path}: the trace has no per-component gradient norms; run `jeat generate` without "
                         "--no-component-trace")  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for key, label, color in series:
        if key not in tr:
            continue
        mean, std = tr[key], tr.get(key + "_std")
        n = len(mean)
        step = every or max(1, n // 25)
        xs = list(range(1, n + 1))
        ax.plot(xs, mean, color=color, lw=1.2, label=label)
        if std:
            idx = list(range(0, n, step))
            ax.errorbar([xs[i] for i in idx], [mean[i] for i in idx], yerr=[std[i] for i in idx], fmt="o", ms=3,
                        capsize=2, color=color)  # fmt: skip
    cfg = tr.get("config", {})
    ax.set_xlabel("iteration")
    ax.set_ylabel("per-example L2 gradient norm")
    ax.set_title(f"sampler {cfg.get('sampler', '?')}, seeds {cfg.get('seed_dist', '?')}: mean $\\pm$ std over samples")
    ax.legend()
    p = Path(path)
    out = Path(out) if out else (p if p.is_dir() else p.parent) / "grad_norms.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
