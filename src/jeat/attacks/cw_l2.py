"""Carlini & Wagner's l_2 attack (Carlini & Wagner 2017), the JEAT paper's "C&W, c = 0.2" column.

Minimum-distortion optimisation in tanh space, x' = (tanh(w) + 1) / 2, with Adam on

    ||x' - x||_2^2 + c * max(f(x')[y] - max_{j != y} f(x')[j], -kappa)

keeping, per image, the misclassified x' of smallest l_2 distance seen; an image with none stays
x (the attack failed, the image counts as robust). There is no eps-ball: with a small c the
distortion term dominates and many images survive, which is why C&W accuracies in the paper's
Table 2 sit far above PGD's. Settings the paper leaves open are torchattacks' CW defaults:
50 steps, Adam lr 0.01, kappa 0, no binary search over c. Like torchattacks, optimisation stops
(here: stops updating the kept examples) the first time the summed cost rose since the last of
its ``steps // 10``-spaced checks; the check stays on the device (no host sync).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

C_PAPER = 0.2  # JEAT paper, Sec. 5.1


def _margin_term(logits: Tensor, y: Tensor, kappa: float) -> Tensor:
    true = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return (true - other).clamp_min(-kappa)


def cw_l2(model: nn.Module, x: Tensor, y: Tensor, c: float = C_PAPER, kappa: float = 0.0, steps: int = 50,
          lr: float = 0.01) -> Tensor:  # fmt: skip
    """Return the smallest-l_2 misclassified x' found for each image (x itself where none was)."""
    if steps < 1 or c <= 0:
        raise ValueError(f"C&W needs steps >= 1 and c > 0, got steps={steps}, c={c}")
    x = x.detach()
    w = torch.atanh((2 * x - 1).clamp(-1 + 1e-6, 1 - 1e-6)).requires_grad_(True)
    opt = torch.optim.Adam([w], lr=lr)
    best = x.clone()
    best_l2 = torch.full((len(x),), float("inf"), device=x.device)
    active = torch.ones((), device=x.device)  # 0 after the early-stop condition (device-side)
    prev = torch.full((), float("inf"), device=x.device)
    check = max(steps // 10, 1)
    for t in range(steps):
        adv = (torch.tanh(w) + 1) / 2
        l2 = (adv - x).flatten(1).square().sum(1)
        logits = model(adv)
        cost = l2.sum() + c * _margin_term(logits, y, kappa).sum()
        opt.zero_grad(set_to_none=True)
        cost.backward()
        opt.step()
        with torch.no_grad():
            better = (logits.argmax(1) != y) & (l2 < best_l2) & active.bool()
            best_l2 = torch.where(better, l2, best_l2)
            best = torch.where(better.view(-1, 1, 1, 1), adv, best)
            if t % check == 0:
                active = active * (cost <= prev)
                prev = cost.detach()
    return best.detach()
