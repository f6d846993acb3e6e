"""JEM++'s proximal sampler: outer/inner step counts, clipping, the box, units, and that reusing
the outer gradient is exactly JEM++'s YOPO Hamiltonian step for an affine first layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jeat.energy import marginal_energy
from jeat.models import build_model
from jeat.sampling import pyld
from jeat.sampling.pyld import JEMPP_INNER_CLIP, JEMPP_INNER_STEP, JEMPP_STEP


class Counting(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def _linear(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5))


def _reference(model, x, m, n, step, inner_lr, clip):
    """JEM++'s sample_q (fba6ba5) as we read it, on [0, 1] pixels, without noise. The reference
    itself runs beside pyld in benchmarks/parity/jempp.py."""
    for _ in range(m):
        x = x.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(marginal_energy(model(x)).sum(), x)
        x = x.detach()
        if step > 0:
            x = torch.clamp(x - torch.clamp(step * g, -2 * step, 2 * step), 0, 1)
        for _ in range(n):
            x = torch.clamp(x - torch.clamp(inner_lr * g, -clip, clip), 0, 1)
    return x


def test_outer_steps_are_forwards_and_inner_steps_are_clipped_box_steps():
    model = Counting(_linear())
    x0 = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    out = pyld(model, x0, steps=7, inner_steps=5)
    assert model.calls == 7  # one forward (and backward) per outer step, none per inner step
    torch.testing.assert_close(out, _reference(model.net, x0, 7, 5, JEMPP_STEP, JEMPP_INNER_STEP, JEMPP_INNER_CLIP))
    assert out.min() >= 0 and out.max() <= 1


def test_an_inner_step_moves_a_pixel_by_at_most_the_clip():
    model = _linear()
    with torch.no_grad():
        model[1].weight.mul_(1000)  # huge gradients: every inner step hits the clip
    x0 = torch.full((2, 3, 4, 4), 0.5)
    one = pyld(model, x0, steps=1, inner_steps=1, step_size=0.0, inner_step_size=1.0, inner_clip=0.01)
    assert (one - x0).abs().max() <= 0.01 + 1e-7
    assert (one - x0).abs().max() > 0.0099
    three = pyld(model, x0, steps=1, inner_steps=3, step_size=0.0, inner_step_size=1.0, inner_clip=0.01)
    assert (three - x0).abs().max() == pytest.approx(0.03, abs=1e-6)


def test_pyld_lowers_the_energy_and_labels_pick_the_joint_energy():
    model = _linear()
    x0 = torch.rand(16, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    x = pyld(model, x0, steps=5, inner_steps=5)
    assert marginal_energy(model(x)).mean() < marginal_energy(model(x0)).mean()
    y = torch.zeros(16, dtype=torch.long)
    xy = pyld(model, x0, y, steps=5, inner_steps=5)
    assert (-model(xy)[:, 0]).mean() < (-model(x0)[:, 0]).mean()  # E(x, y=0) went down


@pytest.mark.parametrize("sgld_lr", [0.0, 1.0])
def test_units_match_jempp_in_minus_one_one(sgld_lr):
    """A JEM++ step on u = 2x - 1 with its own settings equals ours on x with the converted ones:
    sgld_lr 0 (its default at HEAD: no outer step of its own) and 1 (an outer step clipped by the
    same eps and clamped to the box, then the inner steps from there)."""
    model = _linear(3)
    x0 = torch.rand(4, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    ours = pyld(model, x0, steps=3, inner_steps=5, step_size=sgld_lr / 4)

    def f_u(u):  # the same network seen on [-1, 1] inputs
        return model((u + 1) / 2)

    u = 2 * x0 - 1
    for _ in range(3):  # pyld_lr = 0.2, eps = 1, box [-1, 1]
        u = u.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(marginal_energy(f_u(u)).sum(), u)
        u = u.detach()
        if sgld_lr > 0:
            u = torch.clamp(u - sgld_lr * torch.clamp(g, -1, 1), -1, 1)
        for _ in range(5):
            u = torch.clamp(u - 0.2 * torch.clamp(g, -1, 1), -1, 1)
    torch.testing.assert_close(ours, (u + 1) / 2)
    assert JEMPP_STEP == 0.0  # the default is the reference's HEAD (sgld_lr = 0)


def test_reusing_the_outer_gradient_is_the_yopo_hamiltonian_step():
    """JEM++'s inner gradient is grad_x <layer_one(x), p>, p = dE/d(layer_one output) frozen at the
    outer point. With jeat's models the first layer (normalisation + first conv) is affine, so the
    gradient at any inner point equals the outer gradient."""
    model = build_model("cnn-small", 10, 3).eval()
    first = nn.Sequential(model.normalize, model.backbone.features[0])
    rest = nn.Sequential(*list(model.backbone.features)[1:], model.backbone.fc)
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(4)).requires_grad_(True)
    h = first(x)
    (g,) = torch.autograd.grad(marginal_energy(rest(h)).sum(), x, retain_graph=True)
    (p,) = torch.autograd.grad(marginal_energy(rest(h)).sum(), h)
    x_inner = (x.detach() - 0.3 * g.sign()).clamp(0, 1).requires_grad_(True)  # some other inner point
    (g_h,) = torch.autograd.grad((first(x_inner) * p).sum(), x_inner)
    torch.testing.assert_close(g_h, g)


def test_bad_steps_are_refused():
    with pytest.raises(ValueError, match="inner_steps"):
        pyld(_linear(), torch.rand(1, 3, 4, 4), steps=1, inner_steps=-1)
