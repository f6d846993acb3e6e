"""Attacks, SGLD and the replay buffer as the training methods use them (issue 3)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jeat.config import TrainConfig
from jeat.data import ImageSet
from jeat.energy import cross_entropy, joint_energy, marginal_energy
from jeat.methods import build_method
from jeat.sampling import ClassGaussian, ReplayBuffer

SHAPE, K = (3, 8, 8), 4


def fake_set(n: int = 64, shape=SHAPE, k: int = K, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)
    return ImageSet(images, torch.arange(n) % k, [str(i) for i in range(k)])


def small_cnn(k: int = K) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(32, k),
    )  # fmt: skip


def linear(k: int = K) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, k))


def method_for(name: str, model: nn.Module, **attack):
    cfg = TrainConfig(amp="none")
    cfg.method.name = name
    cfg.method.sgld.buffer_size, cfg.method.sgld.steps = 32, 3
    for k, v in attack.items():
        setattr(cfg.method.attack, k, v)
    return build_method(cfg, model, fake_set(), "cpu")


def batch(n: int = 32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, *SHAPE, generator=g)
    x[:4] = 0.0  # pixels on the box boundary must stay inside [0, 1]
    x[4:8] = 1.0
    return x, torch.arange(n) % K


@pytest.mark.parametrize("name", ["pgd", "fgsm", "prejeat", "energy-pgd", "jeat", "robust-jem"])
def test_attack_stays_in_eps_ball_and_box(name):
    model = small_cnn().train()
    eps = 8 / 255
    m = method_for(name, model, eps=eps, step_size=3 / 255, steps=3)
    x, y = batch()
    running = model[1].running_mean.clone()
    x_adv = m.inputs(model, x, y)
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > eps / 2  # it moved
    assert torch.equal(model[1].running_mean, running), "attacks must not touch BN running statistics"
    assert all(p.grad is None for p in model.parameters())


def test_energy_attack_increases_joint_energy_exactly_as_algorithm_2():
    """Linear f: grad_x E(x, y) = -w_y, so Alg. 2 is x + delta0 + eps*sign(-w_y), clipped."""
    model = linear()
    eps = 8 / 255
    m = method_for("prejeat", model, eps=eps, step_size=eps, steps=1)
    x, y = batch()
    x = 0.1 + 0.8 * x  # away from the box: no clipping at [0, 1]
    torch.manual_seed(5)
    x_adv = m.inputs(model, x, y)
    torch.manual_seed(5)
    delta = torch.empty_like(x).uniform_(-eps, eps)  # delta ~ U(-eps, eps): the first draw
    w = model[1].weight.detach()[y].view_as(x)
    expected = x + (delta - eps * w.sign()).clamp(-eps, eps)
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        e0, e1 = joint_energy(model(x), y), joint_energy(model(x_adv), y)
    assert (e1 - e0).mean() > 0
    # without the random start every single example's energy goes up
    m.mcfg.attack.random_start = False
    x_adv2 = m.inputs(model, x, y)
    with torch.no_grad():
        e2 = joint_energy(model(x_adv2), y)
    assert (e2 > e0).all()


def test_ce_attack_increases_cross_entropy():
    model = small_cnn().train()
    m = method_for("pgd", model, eps=8 / 255, step_size=2 / 255, steps=5)
    x, y = batch()
    x_adv = m.inputs(model, x, y)
    with torch.no_grad():
        assert cross_entropy(model(x_adv), y).mean() > cross_entropy(model(x), y).mean()


def test_sgld_lowers_marginal_energy_of_the_buffer():
    model = linear()
    m = method_for("jeat", model)
    m.mcfg.sgld.reinit_prob = 0.0
    buf = m.negatives.buffer
    with torch.no_grad():
        before = marginal_energy(model(buf.x)).mean()
    for _ in range(3):
        x_neg, _ = m.negatives.sample(model, 16)
    with torch.no_grad():
        after = marginal_energy(model(buf.x)).mean()
        assert marginal_energy(model(x_neg)).mean() < before
    assert after < before


@pytest.mark.parametrize("conditional", [False, True])
def test_buffer_reinit_rate_is_rho(conditional):
    calls = []

    def seed_fn(n, labels):
        calls.append(n)
        return torch.full((n, 1, 2, 2), float(len(calls)))  # 1.0 for the initial fill, then 2, 3, ...

    torch.manual_seed(0)
    buf = ReplayBuffer(1000, (1, 2, 2), 10, seed_fn, conditional=conditional)
    rho, n, draws = 0.05, 500, 40
    fresh = 0
    for _ in range(draws):
        y = torch.randint(0, 10, (n,))
        x0, idx, labels = buf.sample(n, rho, y=y if conditional else None)
        fresh += int((x0[:, 0, 0, 0] > 1.0).sum())  # not from the (all-ones) buffer
        if conditional:
            assert torch.equal(labels, y) and torch.equal(buf.labels[idx], y)
    rate, sd = fresh / (n * draws), (rho * (1 - rho) / (n * draws)) ** 0.5
    assert abs(rate - rho) < 4 * sd, (rate, rho)


def test_class_gaussian_sample_matches_per_example_factor():
    data = fake_set(200, shape=(1, 3, 3), k=3)
    g = ClassGaussian.fit(data)
    y = torch.tensor([2, 0, 1, 2, 2, 0])
    torch.manual_seed(3)
    got = g.sample(y, clamp=False)
    torch.manual_seed(3)
    z = torch.randn(len(y), 9)
    ref = g.mean[y] + (g.chol[y] @ z.unsqueeze(-1)).squeeze(-1)  # the textbook form, D x D per example
    torch.testing.assert_close(got.view(len(y), -1), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["pgd", "fgsm", "prejeat", "jeat", "robust-jem", "trades"])
def test_l2_attack_stays_in_l2_ball_and_box(name):
    """method.attack.norm=l2: every adversarial method's attack stays within the l_2 ball and [0, 1]."""
    model = small_cnn().train()
    eps = 0.5
    m = method_for(name, model, norm="l2", eps=eps, step_size=0.2, steps=4)
    x, y = batch()
    x_adv = m.kl_attack(model, x) if name == "trades" else m.inputs(model, x, y)
    dist = (x_adv - x).flatten(1).norm(dim=1)
    assert dist.max() <= eps + 1e-5 and dist.max() > eps / 2  # inside the ball, and it moved
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert (x_adv - x).abs().max() > 8 / 255  # an l_2 step is not confined to the l_inf ball


def test_l2_pgd_step_is_the_unit_gradient_and_random_start_is_in_the_ball():
    from jeat.attacks import pgd
    from jeat.attacks.pgd import project

    model = linear().eval()
    x, y = batch()
    x = x.clamp(0.25, 0.75)  # no pixel at the box: the first step is exactly step_size * g / ||g||
    one = pgd(model, x, y, eps=10.0, step_size=0.1, steps=1, random_start=False, norm="l2")
    assert torch.allclose((one - x).flatten(1).norm(dim=1), torch.full((len(x),), 0.1), atol=1e-6)
    torch.manual_seed(0)
    start = pgd(model, x, y, eps=0.3, step_size=0.1, steps=0, random_start=True, norm="l2")
    assert (start - x).flatten(1).norm(dim=1).max() <= 0.3 + 1e-6
    far = x + 1.0 * torch.randn_like(x)
    assert ((project(far, x, 0.3, "l2") - x).flatten(1).norm(dim=1) <= 0.3 + 1e-6).all()
    with pytest.raises(ValueError, match="norm"):
        pgd(model, x, y, norm="l1")


def test_eb_jdat_refuses_an_l2_attack():
    cfg = TrainConfig(amp="none")
    cfg.method.name, cfg.method.sgld.sampler, cfg.method.attack.norm = "eb-jdat", "pyld", "l2"
    with pytest.raises(ValueError, match="l_inf only"):
        build_method(cfg, small_cnn(), fake_set(), "cpu")
