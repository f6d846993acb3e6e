"""The energy identities of jeat.energy (JEAT paper, Eq. 12-13)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from jeat.energy import ENERGY_KINDS, cross_entropy, energy, joint_energy, marginal_energy


@pytest.fixture
def logits_y():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=gen, dtype=torch.float64) * 3
    y = torch.randint(0, 10, (64,), generator=gen)
    return logits, y


def test_joint_and_marginal_definitions(logits_y):
    logits, y = logits_y
    assert torch.equal(joint_energy(logits, y), -logits[torch.arange(len(y)), y])
    expected = -torch.log(torch.exp(logits).sum(1))
    torch.testing.assert_close(marginal_energy(logits), expected, rtol=0, atol=1e-12)
    assert joint_energy(logits, y).shape == (64,)
    assert marginal_energy(logits).shape == (64,)


def test_cross_entropy_equals_joint_minus_marginal(logits_y):
    logits, y = logits_y
    ref = F.cross_entropy(logits, y, reduction="none")
    torch.testing.assert_close(cross_entropy(logits, y), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(joint_energy(logits, y) - marginal_energy(logits), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1e-3, 50.0, 1e3])
def test_cross_entropy_matches_torch_at_extreme_scales_float32(scale):
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(32, 100, generator=gen) * scale
    y = torch.randint(0, 100, (32,), generator=gen)
    ce = cross_entropy(logits, y)
    assert torch.isfinite(ce).all()
    torch.testing.assert_close(ce, F.cross_entropy(logits, y, reduction="none"), rtol=1e-5, atol=1e-3)


def test_marginal_energy_is_below_every_joint_energy(logits_y):
    logits, _ = logits_y
    # logsumexp >= max, so E(x) <= E(x, y) for every y and CE >= 0.
    e_x = marginal_energy(logits)
    for k in range(logits.shape[1]):
        y = torch.full((logits.shape[0],), k)
        assert (e_x <= joint_energy(logits, y)).all()
        assert (cross_entropy(logits, y) >= 0).all()


def test_energies_shift_with_logits_but_ce_does_not(logits_y):
    logits, y = logits_y
    shifted = logits + 5.0
    torch.testing.assert_close(joint_energy(shifted, y), joint_energy(logits, y) - 5.0)
    torch.testing.assert_close(marginal_energy(shifted), marginal_energy(logits) - 5.0)
    torch.testing.assert_close(cross_entropy(shifted, y), cross_entropy(logits, y))


def test_gradient_of_joint_energy_is_minus_one_hot(logits_y):
    logits, y = logits_y
    f = logits.clone().requires_grad_(True)
    joint_energy(f, y).sum().backward()
    expected = -F.one_hot(y, 10).to(f.dtype)
    assert torch.equal(f.grad, expected)  # dE(x,y)/df_y = -1, 0 elsewhere


def test_gradient_of_marginal_energy_is_minus_softmax(logits_y):
    logits, _ = logits_y
    f = logits.clone().requires_grad_(True)
    marginal_energy(f).sum().backward()
    torch.testing.assert_close(f.grad, -torch.softmax(logits, 1), rtol=0, atol=1e-12)
    assert (f.grad < 0).all()


def test_gradient_of_cross_entropy_is_softmax_minus_one_hot(logits_y):
    logits, y = logits_y
    f = logits.clone().requires_grad_(True)
    cross_entropy(f, y).sum().backward()
    expected = torch.softmax(logits, 1) - F.one_hot(y, 10).to(f.dtype)
    torch.testing.assert_close(f.grad, expected, rtol=0, atol=1e-12)
    # Ascending CE lowers the true logit and raises the others.
    assert (f.grad[torch.arange(len(y)), y] <= 0).all()


def test_energy_dispatch(logits_y):
    logits, y = logits_y
    assert ENERGY_KINDS == ("joint", "marginal", "ce")
    assert torch.equal(energy(logits, y, "joint"), joint_energy(logits, y))
    assert torch.equal(energy(logits, y), joint_energy(logits, y))  # default kind
    assert torch.equal(energy(logits, y, "ce"), cross_entropy(logits, y))
    assert torch.equal(energy(logits, y, "marginal"), marginal_energy(logits))
    assert torch.equal(energy(logits, None, "marginal"), marginal_energy(logits))


@pytest.mark.parametrize("kind", ["joint", "ce"])
def test_energy_dispatch_needs_labels(logits_y, kind):
    logits, _ = logits_y
    with pytest.raises(ValueError, match="needs labels"):
        energy(logits, None, kind)


def test_energy_dispatch_unknown_kind(logits_y):
    logits, y = logits_y
    with pytest.raises(ValueError, match="unknown energy kind 'px'.*joint, marginal or ce"):
        energy(logits, y, "px")
