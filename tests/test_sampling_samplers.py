"""Langevin samplers (Eq. 16, Eq. 17, SGLD), their traces, combined inference and denoising, on tiny
models whose input gradients are meaningful (a linear classifier; a nearest-prototype classifier)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jeat.energy import energy as energy_fn
from jeat.energy import joint_energy, marginal_energy
from jeat.sampling import (
    DenoiseConfig,
    LangevinTrace,
    adversarial_prior,
    combined_inference,
    denoise,
    langevin,
    reduce_contrast,
)

SHAPE = (3, 8, 8)
K = 4


def linear_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, K))
    with torch.no_grad():
        m[1].weight.mul_(3.0)
    return m.eval()


class Prototypes(nn.Module):
    """logits_k(x) = -||x - p_k||^2 / 2: E(x, y) is the squared distance to prototype y."""

    def __init__(self, protos: torch.Tensor):
        super().__init__()
        self.register_buffer("p", protos.flatten(1))

    def forward(self, x):
        return -0.5 * (x.flatten(1)[:, None, :] - self.p[None]).pow(2).sum(-1)


@pytest.fixture
def model():
    return linear_model()


@pytest.mark.parametrize("kind", ["ce", "joint", "marginal"])
def test_each_sampler_lowers_its_target_energy(model, kind):
    torch.manual_seed(1)
    x0 = torch.rand(16, *SHAPE)
    y = torch.arange(16) % K
    yy = None if kind == "marginal" else y
    x, tr = langevin(model, x0, yy, kind, steps=30, step_size=0.02, noise=0.001, clamp=True, trace=True)
    with torch.no_grad():
        before, after = energy_fn(model(x0), y, kind), energy_fn(model(x), y, kind)
    assert after.mean() < before.mean() - 0.3, (before.mean(), after.mean())
    assert (after < before).float().mean() >= 0.9
    assert tr.energy.shape == (30,) and tr.grad_norm.shape == (30,)
    assert tr.energy[-1] < tr.energy[0]
    assert torch.isclose(tr.energy[0], before.mean(), atol=1e-4)


def test_clamping_keeps_samples_in_the_box(model):
    torch.manual_seed(0)
    x0 = torch.rand(8, *SHAPE)
    y = torch.arange(8) % K
    free, _ = langevin(model, x0, y, "joint", steps=10, step_size=1.0, noise=0.1, clamp=False)
    assert free.min() < 0 or free.max() > 1  # the test is meaningful: without clamping samples leave [0, 1]
    boxed, _ = langevin(model, x0, y, "joint", steps=10, step_size=1.0, noise=0.1, clamp=True)
    assert boxed.min() >= 0 and boxed.max() <= 1


def test_gradient_clipping_bounds_each_step(model):
    x0 = torch.full((4, *SHAPE), 0.5)
    y = torch.zeros(4, dtype=torch.long)
    x, _ = langevin(model, x0, y, "joint", steps=1, step_size=100.0, noise=0.0, clip_grad=0.01)
    assert (x - x0).abs().max() <= 0.01 + 1e-6


def test_trace_without_components_is_the_old_format(model):
    x0 = torch.rand(4, *SHAPE)
    _, tr = langevin(model, x0, torch.zeros(4, dtype=torch.long), "joint", steps=3, trace=True)
    assert set(tr.to_dict()) == {"energy", "grad_norm"}
    _, none = langevin(model, x0, None, "marginal", steps=3)
    assert none is None


@pytest.mark.parametrize("kind", ["ce", "joint", "marginal"])
def test_component_trace_matches_direct_gradients(model, kind):
    torch.manual_seed(0)
    x0 = torch.rand(6, *SHAPE)
    y = torch.arange(6) % K
    xg = x0.clone().requires_grad_(True)
    logits = model(xg)
    (gj,) = torch.autograd.grad(joint_energy(logits, y).sum(), xg, retain_graph=True)
    (gm,) = torch.autograd.grad(marginal_energy(logits).sum(), xg)
    target = {"ce": gj - gm, "joint": gj, "marginal": gm}[kind]
    # the component path gives the same samples as the plain path (same RNG draws)
    torch.manual_seed(5)
    x_plain, _ = langevin(model, x0, y, kind, steps=4, step_size=0.01, trace=True)
    torch.manual_seed(5)
    x_comp, tr = langevin(model, x0, y, kind, steps=4, step_size=0.01, trace=True, components=True)
    torch.testing.assert_close(x_comp, x_plain, rtol=0, atol=1e-6)
    d = tr.to_dict()
    assert {"joint_grad_norm", "marginal_grad_norm", "joint_grad_norm_std", "energy_std"} <= d.keys()
    n = lambda g: g.flatten(1).norm(dim=1)  # noqa: E731
    torch.testing.assert_close(tr.joint_grad_norm[0], n(gj).mean())
    torch.testing.assert_close(tr.joint_grad_norm_std[0], n(gj).std(unbiased=False))
    torch.testing.assert_close(tr.marginal_grad_norm[0], n(gm).mean())
    torch.testing.assert_close(tr.grad_norm[0], n(target).mean(), rtol=1e-4, atol=1e-5)


def test_trace_merge_pools_means_and_stds():
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 6.0, 8.0]])  # per-example values, 2 steps x 3 examples
    b = torch.tensor([[5.0], [0.0]])
    t = lambda v: LangevinTrace(v.mean(1), v.mean(1), v.std(1, unbiased=False), v.std(1, unbiased=False))  # noqa: E731
    m = LangevinTrace.merge([t(a), t(b)], [3, 1])
    full = torch.cat([a, b], 1)
    torch.testing.assert_close(m.energy, full.mean(1))
    torch.testing.assert_close(m.energy_std, full.std(1, unbiased=False))
    assert m.joint_grad_norm is None


def test_on_step_sees_every_state(model):
    seen = []
    langevin(model, torch.rand(2, *SHAPE), None, "marginal", steps=5, on_step=lambda t, x: seen.append(t))
    assert seen == [0, 1, 2, 3, 4]


def test_bad_arguments(model):
    with pytest.raises(ValueError, match="needs labels"):
        langevin(model, torch.rand(2, *SHAPE), None, "joint", steps=1)
    with pytest.raises(ValueError, match="unknown energy"):
        langevin(model, torch.rand(2, *SHAPE), None, "bogus", steps=1)


# ---------------------------------------------------------------- combined inference (Robust JEM)
def test_pgd_prior_raises_the_target_class_probability(model):
    torch.manual_seed(0)
    x0 = torch.rand(32, *SHAPE)
    y = torch.arange(32) % K
    prior = adversarial_prior(model, x0, y, eps=0.1, steps=10)
    assert (prior - x0).abs().max() <= 0.1 + 1e-6 and prior.min() >= 0 and prior.max() <= 1
    with torch.no_grad():
        p0 = model(x0).softmax(1).gather(1, y[:, None])
        p1 = model(prior).softmax(1).gather(1, y[:, None])
    assert (p1 > p0).all() and p1.mean() > p0.mean() + 0.2
    x, tr, st = combined_inference(model, x0, y, eps=0.1, pgd_steps=10, contrast=0.9, steps=5, step_size=0.01,
                                   trace=True, components=True)  # fmt: skip
    assert st.p_prior > st.p_seed and st.p_final >= st.p_prior - 0.05
    assert tr.energy.shape == (5,) and tr.joint_grad_norm is not None


def test_reduce_contrast():
    x = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(reduce_contrast(x, 0.8), torch.tensor([0.1, 0.5, 0.9]))
    with pytest.raises(ValueError):
        reduce_contrast(x, 0.0)


# ---------------------------------------------------------------- denoising
def test_denoising_by_energy_descent_raises_psnr():
    torch.manual_seed(0)
    clean = torch.rand(K, *SHAPE)
    model = Prototypes(clean).eval()  # E(x, y) = ||x - clean_y||^2 / 2: descent is exact denoising
    y = torch.arange(K)
    res = denoise(model, clean, y, DenoiseConfig(sigma=0.2, steps=20, step_size=0.1, seed=3))
    m = res.metrics
    assert m["psnr_denoised"] > m["psnr_noisy"] + 5 and m["ssim_denoised"] > m["ssim_noisy"]
    assert len(m["psnr_curve"]) == 21 and len(m["ssim_curve"]) == 21
    assert res.noisy.min() >= 0 and res.noisy.max() <= 1
    again = denoise(model, clean, y, DenoiseConfig(sigma=0.2, steps=20, step_size=0.1, seed=3))
    assert torch.equal(again.denoised, res.denoised) and torch.equal(again.noisy, res.noisy)


def test_denoise_with_predicted_labels_needs_no_ground_truth():
    clean = torch.rand(K, *SHAPE)
    model = Prototypes(clean).eval()
    wrong = (torch.arange(K) + 1) % K
    res = denoise(model, clean, wrong, DenoiseConfig(sigma=0.1, steps=10, step_size=0.1, label="pred"))
    assert torch.equal(res.labels, torch.arange(K))  # nearest prototype, not the given labels
    assert res.metrics["psnr_denoised"] > res.metrics["psnr_noisy"]
