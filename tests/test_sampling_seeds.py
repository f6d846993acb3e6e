"""Seed distributions: class-conditional Gaussian and Gaussian mixture statistics, caching, buffers."""

from __future__ import annotations

import pytest
import torch

from jeat.data import ImageSet
from jeat.sampling import ClassGaussian, ClassGMM, kmeans, seed_fn
from jeat.sampling.seeding import buffer_seed_fn, find_buffer
from jeat.sampling.seeds import JEMPP_RIDGE

SHAPE = (3, 2, 2)  # D = 12: full covariances are cheap and well estimated
D = 12


def correlated_images(n_per_class: int = 4000, k: int = 2, seed: int = 0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    imgs, labels = [], []
    for c in range(k):
        a = torch.randn(D, D, generator=g) * 0.05
        z = torch.randn(n_per_class, D, generator=g) @ a.T + (0.3 + 0.4 * c)
        imgs.append((z.clamp(0, 1) * 255).round().to(torch.uint8))
        labels.append(torch.full((n_per_class,), c))
    return ImageSet(torch.cat(imgs).view(-1, *SHAPE), torch.cat(labels), [str(c) for c in range(k)])


def test_class_gaussian_samples_have_the_fitted_mean_and_covariance():
    data = correlated_images()
    g = ClassGaussian.fit(data)
    torch.manual_seed(0)
    n = 20000
    for c in range(2):
        x = g.sample(torch.full((n,), c), clamp=False).flatten(1).double()
        mu, cov = g.mean[c].double(), (g.chol[c] @ g.chol[c].T).double()
        se = (cov.diagonal() / n).sqrt()
        assert ((x.mean(0) - mu).abs() < 5 * se).all()
        emp = torch.cov(x.T)
        # each covariance entry's standard error is about sqrt((s_ii s_jj + s_ij^2) / n)
        se_cov = ((cov.diagonal()[:, None] * cov.diagonal()[None] + cov**2) / n).sqrt()
        assert ((emp - cov).abs() < 5 * se_cov).all()
        # and the fitted statistics are those of the data
        xs = data.images[data.labels == c].flatten(1).double() / 255
        torch.testing.assert_close(mu, xs.mean(0), rtol=0, atol=1e-5)
        # JEM++'s category_mean / init_from_centers: biased covariance + 1e-4 I in [-1, 1] units
        expected = torch.cov(xs.T, correction=0) + JEMPP_RIDGE * torch.eye(D, dtype=torch.float64)
        torch.testing.assert_close(cov, expected, rtol=0, atol=1e-5)
    assert JEMPP_RIDGE == 1e-4 / 4


def test_kmeans_separates_well_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x = torch.cat([c + 0.1 * torch.randn(50, 2, generator=g) for c in centres])
    found, assign = kmeans(x, 3, generator=torch.Generator().manual_seed(1))
    for i in range(3):
        assert assign[i * 50 : (i + 1) * 50].unique().numel() == 1
    assert torch.cdist(found, centres).min(1).values.max() < 0.1


def test_gmm_fits_a_two_mode_class_and_samples_it():
    g = torch.Generator().manual_seed(0)
    n = 2000
    modes = torch.tensor([0.2, 0.8])
    which = torch.randint(0, 2, (n,), generator=g)
    z = modes[which][:, None] + 0.03 * torch.randn(n, D, generator=g)
    data = ImageSet((z.clamp(0, 1) * 255).round().to(torch.uint8).view(-1, *SHAPE), torch.zeros(n, dtype=torch.long),
                    ["only"])  # fmt: skip
    gmm = ClassGMM.fit(data, components=2, rank=3)
    assert gmm.num_components == 2 and gmm.rank == 3
    assert torch.allclose(gmm.weights[0].sort().values, torch.tensor([0.5, 0.5]), atol=0.05)
    means = gmm.means[0].mean(1).sort().values
    assert torch.allclose(means, modes, atol=0.01)
    cov = gmm.covariance(0, 0)
    assert torch.linalg.eigvalsh(cov).min() > 0
    s = gmm.sample(torch.zeros(4000, dtype=torch.long), clamp=False, generator=torch.Generator().manual_seed(2))
    pix = s.flatten(1).mean(1)
    assert 0.4 < (pix > 0.5).float().mean() < 0.6  # both modes, in proportion
    near = torch.minimum((pix - 0.2).abs(), (pix - 0.8).abs())
    assert near.max() < 0.1  # and nothing in between
    # per-pixel spread ~ the data's 0.03
    assert 0.02 < s.flatten(1)[pix < 0.5].std(0).mean() < 0.045


def test_gaussian_and_gmm_seeds_are_cached_in_the_run_directory(tmp_path):
    data = correlated_images(200)
    calls = []

    def loader():
        calls.append(1)
        return data

    for kind, name in [("gaussian", "seeds-gaussian.safetensors"), ("gmm", "seeds-gmm-m2-r2.safetensors")]:
        fn = seed_fn(kind, SHAPE, 2, run_dir=tmp_path, data=loader, gmm_components=2, gmm_rank=2)
        assert (tmp_path / name).is_file()
        x = fn(torch.tensor([0, 1, 1]))
        assert x.shape == (3, *SHAPE) and x.min() >= 0 and x.max() <= 1
        n_calls = len(calls)
        fn2 = seed_fn(kind, SHAPE, 2, run_dir=tmp_path, data=lambda: pytest.fail("refitted"), gmm_components=2,
                      gmm_rank=2)  # fmt: skip
        assert fn2(torch.tensor([0])).shape == (1, *SHAPE) and len(calls) == n_calls
    with pytest.raises(ValueError, match="delete the file"):
        seed_fn("gaussian", SHAPE, 3, run_dir=tmp_path)


def test_uniform_seeds_and_unknown_kinds():
    x = seed_fn("uniform", SHAPE, 2)(torch.zeros(5, dtype=torch.long))
    assert x.shape == (5, *SHAPE) and 0 <= x.min() and x.max() <= 1
    with pytest.raises(ValueError, match="unknown seed"):
        seed_fn("bogus", SHAPE, 2)
    with pytest.raises(ValueError, match="needs the training set"):
        seed_fn("gmm", SHAPE, 2)


def test_buffer_seeds_from_a_checkpoint_state():
    x = torch.rand(12, *SHAPE)
    labels = torch.arange(12) % 3  # a class-conditional buffer: classes in blocks
    state = {"buffer": {"x": x, "labels": labels}}  # what JEM / JEAT / Robust JEM checkpoints hold
    buf = find_buffer(state)
    assert torch.equal(buf["x"], x)
    fn = buffer_seed_fn(buf, 3, torch.Generator().manual_seed(0))
    y = torch.tensor([2, 2, 0, 1])
    seeds = fn(y)
    for s, c in zip(seeds, y, strict=True):  # each seed is a buffer state of its class
        matches = (x == s).flatten(1).all(1).nonzero().squeeze(1)
        assert len(matches) and (labels[matches] == c).all()
    assert torch.equal(find_buffer({"sgld": {"buffer": {"x": x, "labels": labels}}})["x"], x)  # nested
    with pytest.raises(ValueError, match="no replay buffer"):
        find_buffer({})
    with pytest.raises(ValueError, match="no replay buffer"):
        find_buffer(None)
