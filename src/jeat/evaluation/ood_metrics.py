"""Detection metrics of a score where in-distribution is the positive class (higher = more in-distribution).

AUROC is the Mann-Whitney probability P(s_in > s_out) + P(s_in = s_out) / 2 (ties count half, the
trapezoid under the ROC curve); AUPR is the average precision with in-distribution positive (the
"AUPR-In" of Hendrycks & Gimpel); FPR95 is the share of out-of-distribution inputs scoring at or
above the threshold that keeps 95 % of in-distribution inputs. No scikit-learn needed.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _as_double(s: Tensor) -> Tensor:
    s = torch.as_tensor(s).detach().double().flatten().cpu()
    if not torch.isfinite(s).all():
        raise ValueError("scores must be finite (a NaN/inf score cannot be ranked)")
    return s


def auroc(s_in: Tensor, s_out: Tensor) -> float:
    """P(s_in > s_out) + 0.5 P(s_in == s_out), by average ranks (O(n log n))."""
    a, b = _as_double(s_in), _as_double(s_out)
    if not len(a) or not len(b):
        raise ValueError("auroc needs at least one in- and one out-of-distribution score")
    both = torch.cat([a, b])
    values, inverse, counts = torch.unique(both, return_inverse=True, return_counts=True)
    # average rank of each distinct value (1-based): ranks of ties are shared
    ends = counts.cumsum(0).double()
    avg_rank = ends - (counts.double() - 1) / 2
    rank_in = avg_rank[inverse[: len(a)]].sum()
    u = rank_in - len(a) * (len(a) + 1) / 2
    return float(u / (len(a) * len(b)))


def aupr_in(s_in: Tensor, s_out: Tensor) -> float:
    """Average precision with in-distribution as the positive class (ties broken pessimistically)."""
    a, b = _as_double(s_in), _as_double(s_out)
    scores = torch.cat([a, b])
    pos = torch.cat([torch.ones_like(a), torch.zeros_like(b)])
    order = torch.argsort(scores, descending=True, stable=True)
    scores, pos = scores[order], pos[order]
    # one threshold per distinct score: precision/recall after all inputs with that score are in
    last = torch.ones_like(scores, dtype=torch.bool)
    last[:-1] = scores[1:] != scores[:-1]
    tp, k = pos.cumsum(0)[last], torch.arange(1, len(scores) + 1, dtype=torch.double)[last]
    precision, recall = tp / k, tp / len(a)
    d_recall = torch.diff(recall, prepend=torch.zeros(1, dtype=torch.double))
    return float((precision * d_recall).sum())


def fpr_at_tpr(s_in: Tensor, s_out: Tensor, tpr: float = 0.95) -> float:
    """Share of out-of-distribution scores >= the threshold that keeps ``tpr`` of in-distribution ones."""
    a, b = _as_double(s_in), _as_double(s_out)
    k = max(int(torch.ceil(torch.tensor(tpr * len(a))).item()), 1)  # in-dist inputs that must pass
    threshold = torch.sort(a, descending=True).values[k - 1]
    return float((b >= threshold).double().mean())


def detection_metrics(s_in: Tensor, s_out: Tensor) -> dict[str, float]:
    return {"auroc": auroc(s_in, s_out), "aupr_in": aupr_in(s_in, s_out), "fpr95": fpr_at_tpr(s_in, s_out)}
