"""Unit checks of the metric formulas: Frechet distance, Hutchinson trace, ECE, IS, PGD ball."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from jeat.evaluation.calibration import ece
from jeat.evaluation.cw import cw_linf, margin
from jeat.evaluation.fid import frechet_distance, inception_score, preprocess, resize_tf1, stats
from jeat.evaluation.fisher import exact_hessian_trace, fisher_terms


def _sqrtm_denman_beavers(a: np.ndarray, iters: int = 100) -> np.ndarray:
    """An independent float64 matrix square root (Denman-Beavers iteration)."""
    y, z = a.copy(), np.eye(len(a))
    for _ in range(iters):
        y, z = 0.5 * (y + np.linalg.inv(z)), 0.5 * (z + np.linalg.inv(y))
    return y


def _fid_reference(mu1, s1, mu2, s2) -> float:
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * _sqrtm_denman_beavers(s1 @ s2)))


def _random_cov(rng, d, rank=None):
    a = rng.standard_normal((d, rank or d))
    return a @ a.T / (rank or d) + 1e-3 * np.eye(d)


def test_frechet_closed_form_diagonal_and_self():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    # Commuting (diagonal) covariances: FID = |mu1 - mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    expected = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + (3 - 1) ** 2
    assert math.isclose(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected, rel_tol=1e-10)
    s = _random_cov(np.random.default_rng(0), 20)
    assert abs(frechet_distance(mu1[:1].repeat(20), s, mu1[:1].repeat(20), s)) < 1e-8


def test_frechet_matches_float64_reference():
    rng = np.random.default_rng(1)
    for d, rank in ((8, None), (64, None), (64, 10)):  # rank-deficient, as with fewer images than features
        s1, s2 = _random_cov(rng, d, rank), _random_cov(rng, d)
        mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
        assert math.isclose(frechet_distance(mu1, s1, mu2, s2), _fid_reference(mu1, s1, mu2, s2), rel_tol=1e-7)
    scipy_linalg = pytest.importorskip("scipy.linalg")
    s1, s2, mu1, mu2 = _random_cov(rng, 32), _random_cov(rng, 32), rng.standard_normal(32), rng.standard_normal(32)
    ref = ((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * np.real(scipy_linalg.sqrtm(s1 @ s2)))
    assert math.isclose(frechet_distance(mu1, s1, mu2, s2), ref, rel_tol=1e-7)


def _exact_samples(rng, n, mu, cov):
    """n points whose sample mean and covariance (ddof 1) are exactly mu and cov."""
    z = rng.standard_normal((n, len(mu)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whiten: sample cov = I
    return z @ np.linalg.cholesky(cov).T + mu


def test_fid_of_shifted_gaussians_matches_closed_form():
    """Feature sets N(mu, S) and N(mu + d, S): FID = |d|^2; with S1 != S2 the closed form has the trace term."""
    rng = np.random.default_rng(2)
    s, d = _random_cov(rng, 8), np.full(8, 0.5)
    f1, f2 = _exact_samples(rng, 500, np.zeros(8), s), _exact_samples(rng, 700, d, s)
    assert math.isclose(frechet_distance(*stats(f1), *stats(f2)), (d**2).sum(), rel_tol=1e-8)
    assert abs(frechet_distance(*stats(f1), *stats(f1))) < 1e-8  # a set with itself
    # Diagonal covariances a, b: |d|^2 + sum (sqrt a - sqrt b)^2
    a, b = np.diag([1.0, 2.0, 3.0]), np.diag([4.0, 2.0, 0.5])
    f1, f2 = _exact_samples(rng, 300, np.zeros(3), a), _exact_samples(rng, 300, np.ones(3), b)
    expected = 3 + ((np.sqrt(np.diag(a)) - np.sqrt(np.diag(b))) ** 2).sum()
    assert math.isclose(frechet_distance(*stats(f1), *stats(f2)), expected, rel_tol=1e-8)


def test_preprocess_is_tf1_resize_and_scaling():
    x = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8)
    y = preprocess(x, size=16)
    # TF1 legacy bilinear: output pixel j samples input coordinate j * in/out -> even outputs hit inputs exactly
    assert torch.allclose(y[..., ::2, ::2], (x.float() - 128) / 128, atol=1e-5)
    assert torch.allclose(preprocess(x, size=8), (x.float() - 128) / 128)
    assert resize_tf1(torch.ones(1, 1, 4, 4), 9).sub(1).abs().max() < 1e-6


def test_inception_score_bounds():
    assert math.isclose(inception_score(torch.zeros(100, 10), splits=2)[0], 1.0, rel_tol=1e-9)  # uniform p(y|x)
    confident = torch.eye(10).repeat(10, 1) * 100  # one-hot predictions spread over 10 classes
    assert math.isclose(inception_score(confident, splits=1)[0], 10.0, rel_tol=1e-6)


def test_hutchinson_matches_exact_trace_on_quadratic_energy():
    torch.manual_seed(0)
    d = 12
    a = torch.randn(d, d, dtype=torch.float64)
    a = a + a.T  # E(x) = 1/2 x^T A x -> grad = A x, Hessian = A
    fn = lambda x: 0.5 * torch.einsum("ni,ij,nj->n", x, a, x)
    x = torch.randn(5, d, dtype=torch.float64)
    exact = exact_hessian_trace(fn, x)
    assert torch.allclose(exact, torch.full((5,), a.trace().item(), dtype=torch.float64))
    half_sq, est, var = fisher_terms(fn, x, probes=4000, generator=torch.Generator().manual_seed(0))
    se = (var / 4000).sqrt()
    assert ((est - exact).abs() <= 5 * se + 1e-9).all()
    assert torch.allclose(half_sq, 0.5 * (x @ a).pow(2).sum(1))


def test_hutchinson_matches_exact_trace_on_smooth_net():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Softplus(), nn.Linear(16, 3)).double()
    fn = lambda x: -torch.logsumexp(net(x), 1)  # the marginal energy E(x)
    x = torch.rand(4, 3, 2, 2, dtype=torch.float64)
    exact = exact_hessian_trace(fn, x)
    _, est, var = fisher_terms(fn, x, probes=3000, generator=torch.Generator().manual_seed(1))
    assert ((est - exact).abs() <= 5 * (var / 3000).sqrt() + 1e-9).all()


def test_ece_perfectly_calibrated_is_zero():
    g = torch.Generator().manual_seed(0)
    conf = torch.rand(200_000, generator=g) * 0.9 + 0.1
    correct = torch.rand(200_000, generator=g) < conf  # P(correct | conf) = conf
    assert ece(conf, correct)["ece"] < 0.005


def test_ece_hand_values():
    assert math.isclose(
        ece(torch.full((10,), 0.9, dtype=torch.float64), torch.tensor([1] * 6 + [0] * 4))["ece"], 0.3, rel_tol=1e-12
    )
    # Half the data at conf 0.93 all right (gap 0.07), half at 0.53 with 1/4 right (gap 0.28) -> 0.175
    conf = torch.tensor([0.93] * 4 + [0.53] * 4, dtype=torch.float64)
    correct = torch.tensor([1, 1, 1, 1, 1, 0, 0, 0])
    r = ece(conf, correct, bins=20)
    assert math.isclose(r["ece"], 0.5 * 0.07 + 0.5 * 0.28, rel_tol=1e-12)
    assert r["count"][18] == 4 and r["count"][10] == 4 and sum(r["count"]) == 8  # bins (0.9, 0.95] and (0.5, 0.55]


def test_cw_attack_stays_in_ball_and_raises_margin():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    x, y = torch.rand(16, 3, 4, 4), torch.randint(0, 5, (16,))
    eps = 8 / 255
    x_adv = cw_linf(net, x, y, eps=eps, step_size=2 / 255, steps=10)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        assert margin(net(x_adv), y).mean() > margin(net(x), y).mean()


# ---------------------------------------------------------------------------- C&W l_2 (the paper's)


def _trained_mlp(seed: int = 0):
    """A small MLP fitted to a separable 4-class problem on 3x6x6 images: a trained model with
    margins of all sizes, so C&W's outcome depends on c."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.rand(4, 3, 6, 6, generator=g)
    y = torch.arange(256) % 4
    x = (centers[y] + 0.15 * torch.randn(256, 3, 6, 6, generator=g)).clamp(0, 1)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(108, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return net.eval(), x, y


def test_cw_l2_keeps_the_smallest_misclassified_example_or_the_image():
    from jeat.attacks import cw_l2

    net, x, y = _trained_mlp()
    x_adv = cw_l2(net, x, y, c=5.0, steps=50)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    with torch.no_grad():
        wrong = net(x_adv).argmax(1) != y
        clean_ok = net(x).argmax(1) == y
    unchanged = (x_adv == x).flatten(1).all(1)
    assert bool((wrong | unchanged).all())  # every returned image is a success or the original
    assert int((wrong & clean_ok).sum()) > 0
    weak = cw_l2(net, x, y, c=0.01, steps=50)  # a tiny c: distortion dominates, fewer successes
    with torch.no_grad():
        assert int((net(weak).argmax(1) != y).sum()) < int(wrong.sum())
    with pytest.raises(ValueError, match="c > 0"):
        cw_l2(net, x, y, c=0.0)


def test_cw_l2_agrees_with_torchattacks_cw():
    torchattacks = pytest.importorskip("torchattacks")
    from jeat.attacks import cw_l2

    net, x, y = _trained_mlp(1)
    # torchattacks' f takes its maxima over onehot-masked logits, i.e. max(0, .): on logits that
    # are negative it loses its gradient. C&W's objective (ours) depends only on logit differences,
    # so a constant shift that makes every logit positive changes nothing for us and removes the
    # quirk for torchattacks: on that model the two implementations must agree.
    shifted = nn.Sequential(net, _Shift(50.0)).eval()
    for c in (0.2, 2.0):
        ours = cw_l2(net, x, y, c=c, steps=50, lr=0.01)
        torch.testing.assert_close(cw_l2(shifted, x, y, c=c, steps=50, lr=0.01), ours)  # shift-invariant
        theirs = torchattacks.CW(shifted, c=c, kappa=0, steps=50, lr=0.01)(x, y)
        with torch.no_grad():
            acc_ours = (net(ours).argmax(1) == y).float().mean().item()
            acc_theirs = (net(theirs).argmax(1) == y).float().mean().item()
        assert abs(acc_ours - acc_theirs) <= 3 / len(y), (c, acc_ours, acc_theirs)
    assert acc_ours < 1.0  # at c = 2 the attack does succeed on some images


class _Shift(nn.Module):
    def __init__(self, b: float):
        super().__init__()
        self.b = b

    def forward(self, z):
        return z + self.b
