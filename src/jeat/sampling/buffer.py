"""The replay buffer of persistent SGLD chains (JEM; JEAT Algorithm 1).

Each training step draws a batch of chain states; with probability ``reinit_prob`` (rho) a
state is replaced by a fresh seed (uniform noise or a class-conditional Gaussian). After K
SGLD steps the states are written back. With ``conditional=True`` the buffer is split into
one block per class (JEM's class-conditional buffer) and draws carry their class labels.
The buffer lives on the training device and is saved in checkpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

SeedFn = Callable[[int, Tensor], Tensor]  # (n, labels) -> images in [0, 1]


class ReplayBuffer:
    def __init__(self, size: int, shape: tuple[int, ...], num_classes: int, seed_fn: SeedFn,
                 device: torch.device | str = "cpu", conditional: bool = False):  # fmt: skip
        if size <= 0:
            raise ValueError(f"buffer size must be positive, got {size}")
        if conditional and size < num_classes:
            raise ValueError(f"a class-conditional buffer needs size >= num_classes ({num_classes}), got {size}")
        self.size, self.shape, self.num_classes = size, tuple(shape), num_classes
        self.seed_fn, self.conditional, self.device = seed_fn, conditional, torch.device(device)
        # Labels: class blocks for a conditional buffer; random labels otherwise (used only by seeds).
        if conditional:
            self.labels = torch.arange(size, device=self.device) % num_classes
        else:
            self.labels = torch.randint(0, num_classes, (size,), device=self.device)
        self.x = seed_fn(size, self.labels).to(self.device)
        self.last_reinit = torch.zeros(0, dtype=torch.bool, device=self.device)

    def sample(self, n: int, reinit_prob: float, y: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Draw n states: returns (x0, buffer indices, labels). ``y`` picks classes (conditional)."""
        if self.conditional:
            if y is None:
                y = torch.randint(0, self.num_classes, (n,), device=self.device)
            per_class = self.size // self.num_classes
            idx = torch.randint(0, per_class, (n,), device=self.device) * self.num_classes + y.to(self.device)
        else:
            idx = torch.randint(0, self.size, (n,), device=self.device)
        labels = self.labels[idx]
        x0 = self.x[idx]
        reinit = torch.rand(n, device=self.device) < reinit_prob
        self.last_reinit = reinit  # which of this draw's states were re-seeded (the parity harness feeds them)
        # Seed only the reinitialised states (one host sync per draw, never inside SGLD): a
        # class-conditional Gaussian seed costs O(D^2) per image, and rho is small.
        re_idx = reinit.nonzero().squeeze(1)
        if len(re_idx):
            x0[re_idx] = self.seed_fn(len(re_idx), labels[re_idx]).to(self.device, x0.dtype)
        return x0, idx, labels

    def push(self, x: Tensor, idx: Tensor) -> None:
        # A chain drawn twice in one batch (indices are drawn with replacement) keeps its last
        # state; writing that same value for every duplicate makes the result independent of
        # the (parallel, unordered) write order, so runs and resumes are bit-identical.
        idx = idx.to(self.device)
        pos = torch.arange(len(idx), device=self.device)
        last = torch.full((self.size,), -1, dtype=torch.long, device=self.device).scatter_reduce(0, idx, pos, "amax")
        self.x[idx] = x.detach().to(self.x.dtype)[last[idx]]

    def state_dict(self) -> dict[str, Tensor]:
        return {"x": self.x, "labels": self.labels}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if tuple(state["x"].shape) != (self.size, *self.shape):
            raise ValueError(f"saved buffer has shape {tuple(state['x'].shape)}, expected {(self.size, *self.shape)}")
        self.x = state["x"].to(self.device)
        self.labels = state["labels"].to(self.device)
