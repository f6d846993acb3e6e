"""Joint and Marginal Fisher Scores (JEAT arXiv v1, Eq. 21-24, Table 2).

With the score s = grad_x log p = -grad_x E, the score-matching objective (Eq. 22)
E[1/2 ||s||^2 + tr(grad_x s)] becomes
    JFS = E_{p_data(x,y)} [ 1/2 ||grad_x E(x,y)||^2 - tr(grad_x^2 E(x,y)) ]     (Eq. 23)
    MFS = E_{p_data(x)}   [ 1/2 ||grad_x E(x)||^2   - tr(grad_x^2 E(x))   ]     (Eq. 24)
Lower is better. The Hessian trace is estimated with Hutchinson's estimator
    tr(H) ~ (1/K) sum_k v_k^T H v_k,   v_k Rademacher (+-1),
one Hessian-vector product per probe (double backprop). Gradients are taken with respect to
images in [0, 1] pixel units, so values are not comparable with numbers computed on other input
scalings. Note that for piecewise-linear nets (ReLU / LeakyReLU / max-pool) E(x,y) = -f(x)[y]
is piecewise linear in x, so its Hessian trace is 0 almost everywhere and JFS = E[1/2||grad||^2];
E(x) keeps curvature from the logsumexp.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..energy import energy as energy_fn
from .common import EvalContext, batches

EnergyFn = Callable[[Tensor], Tensor]  # x (N, ...) -> per-example energy (N,)


def fisher_terms(fn: EnergyFn, x: Tensor, probes: int = 1, generator: torch.Generator | None = None):
    """Per-example 1/2||grad E||^2, the Hutchinson trace estimate and its per-example probe variance."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    half_sq = 0.5 * g.detach().flatten(1).pow(2).sum(1)
    est = []
    for k in range(probes):
        v = torch.randint(0, 2, x.shape, generator=generator, device=x.device if generator is None else "cpu")
        v = v.to(x.device, x.dtype).mul_(2).sub_(1)
        (hv,) = torch.autograd.grad(g, x, grad_outputs=v, retain_graph=k < probes - 1)  # H v (H is symmetric)
        est.append((v * hv).flatten(1).sum(1))
    est = torch.stack(est)  # (K, N)
    var = est.var(0, unbiased=True) if probes > 1 else torch.full_like(est[0], float("nan"))
    return half_sq, est.mean(0), var


def exact_hessian_trace(fn: EnergyFn, x: Tensor) -> Tensor:
    """tr(grad_x^2 E) per example by one backward pass per input coordinate (tiny inputs only)."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    g = g.flatten(1)
    tr = torch.zeros(len(x), dtype=x.dtype, device=x.device)
    for d in range(g.shape[1]):
        (row,) = torch.autograd.grad(g[:, d].sum(), x, retain_graph=True)
        tr += row.flatten(1)[:, d]
    return tr


def fisher_score(model, data, kind: str, probes: int, batch_size: int, device, seed: int = 0, bar=None) -> dict:
    """JFS (kind='joint') or MFS (kind='marginal') over an ImageSet, with standard errors."""
    gen = torch.Generator().manual_seed(seed)
    halves, traces, variances = [], [], []
    for x, y in batches(data, batch_size, device):
        h, t, v = fisher_terms(lambda z, y=y: energy_fn(model(z), y, kind), x, probes, gen)
        halves.append(h.detach())
        traces.append(t.detach())
        variances.append(v.detach())
        if bar is not None:
            bar.update(len(y))
    h, t, v = (torch.cat(a).double().cpu() for a in (halves, traces, variances))
    s = h - t
    n = len(s)
    se = float(s.std(unbiased=True) / math.sqrt(n)) if n > 1 else float("nan")
    hutch_se = float(v.div(probes).sum().sqrt() / n) if probes > 1 else float("nan")
    return {
        "score": float(s.mean()),
        "se": se,
        "half_grad_sq": float(h.mean()),
        "trace": float(t.mean()),
        "hutchinson_se": hutch_se,
        "n": n,
        "probes": probes,
        "probe": "rademacher",
    }


def run(ctx: EvalContext) -> dict:
    model = ctx.model.eval()
    probes = ctx.opt("fisher", "probes", 4)
    n = min(len(ctx.test), ctx.opt("fisher", "n", len(ctx.test)))
    data = ctx.test.subset(n) if n < len(ctx.test) else ctx.test
    res = {"units": "gradients w.r.t. x in [0, 1] pixels", "estimator": "Hutchinson, Rademacher probes"}
    for name, kind, eq in (("jfs", "joint", "Eq. 23"), ("mfs", "marginal", "Eq. 24")):
        bar = ctx.bar(len(data), f"fisher {name.upper()}")
        res[name] = {**fisher_score(model, data, kind, probes, ctx.batch_size, ctx.device, ctx.seed, bar), "eq": eq}
        bar.close()
    return res
