"""C&W-style l_inf attack: PGD on the margin loss (Carlini & Wagner's f6 objective).

Robustness tables (TRADES, Fast AT, the JEAT paper's Table 2 "C&W" column) usually report
"C&W_inf": l_inf PGD that ascends the margin
    max_{j != y} f(x)[j] - f(x)[y]
instead of the cross-entropy, with the same eps / step / random start as PGD. That is what this
is; it is not the original l_2 C&W optimisation with its constant c (the paper cites c = 0.2,
which only has a meaning for that l_2 formulation). The report says so next to the number.
"""

from __future__ import annotations

from torch import Tensor, nn

from ..attacks import pgd


def margin(logits: Tensor, y: Tensor) -> Tensor:
    """max_{j != y} f_j - f_y per example; > 0 means misclassified."""
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return other - true


def cw_linf(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float = 8 / 255,
    step_size: float = 2 / 255,
    steps: int = 20,
    random_start: bool = True,
    norm: str = "linf",
) -> Tensor:
    """PGD (l_inf, or l_2 with ``norm="l2"``) ascending the margin; returns x_adv in the eps-ball and [0, 1]."""
    return pgd(model, x, y, eps, step_size, steps, random_start=random_start, objective=margin, norm=norm)
