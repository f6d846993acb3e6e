"""DAT (issue 24): its losses, attack, curriculum, out-of-distribution sources, --init and exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_npz_dir, tiny_config

from jeat.attacks.dat import dat_attack, dat_logit
from jeat.cli import main
from jeat.config import TrainConfig
from jeat.data import ImageSet
from jeat.methods import build_method
from jeat.methods.dat import DAT
from jeat.methods.outdist import OutDist
from jeat.training import Trainer

K = 4


def fake_set(n=64, size=8, seed=0) -> ImageSet:
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8), torch.arange(n) % K,
                    [str(i) for i in range(K)])  # fmt: skip


def small_cnn():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(32, K))  # fmt: skip


def dat_method(model, **dat) -> DAT:
    cfg = TrainConfig(amp="none")
    cfg.method.name, cfg.data.batch_size, cfg.data.outdist = "dat", 16, "uniform"
    cfg.method.attack.norm, cfg.method.attack.eps, cfg.method.attack.step_size = "l2", 0.5, 0.2
    cfg.method.attack.steps, cfg.method.attack.random_start = 2, False
    for k, v in dat.items():
        setattr(cfg.method.dat, k, v)
    return build_method(cfg, model, fake_set(), "cpu")


def test_outdist_attack_ascends_the_conditional_logit_and_stays_in_the_box():
    model = small_cnn().eval()
    x, y = torch.rand(16, 3, 8, 8), torch.arange(16) % K
    x_adv = dat_attack(model, x, y, steps=5, step_size=0.1, eps=None, kind="conditional")
    with torch.no_grad():
        before, after = dat_logit(model(x), y, "conditional"), dat_logit(model(x_adv), y, "conditional")
    assert (after > before).float().mean() > 0.9 and x_adv.min() >= 0 and x_adv.max() <= 1
    bounded = dat_attack(model, x, y, steps=20, step_size=0.1, eps=0.3, kind="logsumexp")
    assert (bounded - x).flatten(1).norm(dim=1).max() <= 0.3 + 1e-5
    assert torch.equal(dat_attack(model, x, y, 0, 0.1, None, "conditional"), x)


def test_loss_is_bce_of_the_discriminator_plus_ce_on_l2_adversarial_examples():
    model = small_cnn().train()
    m = dat_method(model, max_steps=3, start_steps=2)
    x, y = torch.rand(16, 3, 8, 8), torch.arange(16) % K
    running = model[1].running_mean.clone()
    loss, metrics = m.loss(model, x, y)
    assert torch.equal(model[1].running_mean, running), "dat.bn=frozen must leave BN statistics alone"
    inp = m.last_inputs
    assert (inp["x_cls"] - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5  # the classifier's l_2 ball
    model.eval()  # frozen BN = eval-mode BN: recompute by hand
    with torch.no_grad():
        s_in = torch.logsumexp(model(inp["x_in"]), 1)
        s_adv = torch.logsumexp(model(inp["x_out_adv"]), 1)
        bce = F.binary_cross_entropy_with_logits(torch.cat([s_in, s_adv]), torch.cat([torch.ones(16), torch.zeros(16)]))
        ce = F.cross_entropy(model(inp["x_cls"]), y)
    assert torch.allclose(loss, bce + ce, atol=1e-5)
    assert torch.allclose(metrics["bce"], bce, atol=1e-5) and metrics["dat_steps"] == 2
    assert 0 <= float(metrics["adv_auc"]) <= 1
    # Its discriminator part (the loss less the CE) is what a step lowers: the BCE of data vs attacked images.
    model.train()
    with m.bn_context(model):
        d_part = loss - F.cross_entropy(model(inp["x_cls"]), y)
    d_part.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad
        model.eval()
        s_in2, s_adv2 = torch.logsumexp(model(inp["x_in"]), 1), torch.logsumexp(model(inp["x_out_adv"]), 1)
        target = torch.cat([torch.ones(16), torch.zeros(16)])
        bce2 = F.binary_cross_entropy_with_logits(torch.cat([s_in2, s_adv2]), target)
    assert bce2 < bce


def test_curriculum_adds_a_step_once_a_full_window_passes_the_threshold():
    m = dat_method(small_cnn(), auc_window=48, auc_threshold=0.8, max_steps=2)  # window = 48 / 16 = 3 steps
    assert m.window == 3 and m.steps == 0

    def feed(auc):
        m._pending = torch.tensor([auc, 0.5])
        m.after_update(None)

    feed(0.9), feed(0.9)
    assert m.steps == 0  # window not full yet
    feed(0.5)
    assert m.steps == 0  # full, mean 0.77 < 0.8
    feed(0.95)
    assert m.steps == 0  # the last three, 0.9 0.5 0.95, average 0.783
    feed(0.99)
    assert m.steps == 1 and m.aucs == []  # 0.5 0.95 0.99: 0.813 -> T + 1, window restarts
    for _ in range(3):
        feed(0.99)
    assert m.steps == 2
    for _ in range(6):
        feed(0.99)
    assert m.steps == 2  # max_steps
    state = m.state_dict()
    other = dat_method(small_cnn(), auc_window=48, max_steps=2)
    other.load_state_dict(state)
    assert other.steps == 2 and other.aucs == m.aucs


def test_outdist_sources(tmp_path):
    train = fake_set()
    for spec in ("gaussian", "uniform"):
        x = OutDist(spec, train, None, "cpu").sample(5)
        assert x.shape == (5, 3, 8, 8) and x.min() >= 0 and x.max() <= 1
    np.savez(tmp_path / "train.npz", x=np.zeros((10, 8, 8, 3), np.uint8), y=np.zeros(10, np.int64))
    src = OutDist(f"npz:{tmp_path / 'train.npz'}", train, None, "cpu")
    assert src.sample(4).shape == (4, 3, 8, 8) and "10 images" in src.describe()
    with pytest.raises(ValueError, match="unknown data.outdist"):
        OutDist("tiny-images", train, None, "cpu")
    np.savez(tmp_path / "big.npz", x=np.zeros((10, 16, 16, 3), np.uint8), y=np.zeros(10, np.int64))
    with pytest.raises(ValueError, match="shape"):
        OutDist(f"npz:{tmp_path / 'big.npz'}", train, None, "cpu")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_npz_dir(tmp_path_factory.mktemp("dat") / "data", n_train=64, n_test=16, size=16)


def _dat_cfg(data, out, **kw):
    cfg = tiny_config(data, out, epochs=2, **kw)
    cfg.method.name, cfg.data.outdist = "dat", "uniform"
    cfg.method.attack.norm, cfg.method.attack.eps, cfg.method.attack.step_size = "l2", 0.5, 0.2
    cfg.method.attack.steps, cfg.method.attack.random_start = 2, False
    cfg.method.dat.auc_window, cfg.method.dat.auc_threshold, cfg.method.dat.max_steps = 16, 0.0, 5  # grows each step
    cfg.ema.decay = 0.9
    return cfg


def _fit(cfg, run_dir, resume=False, max_steps=None):
    t = Trainer(cfg, run_dir=run_dir, resume=resume, progress=False)
    t.fit(max_steps=max_steps)
    return t


def test_dat_resume_is_bit_identical_including_the_curriculum(data, tmp_path):
    straight = _fit(_dat_cfg(data, tmp_path), tmp_path / "a")
    _fit(_dat_cfg(data, tmp_path), tmp_path / "b", max_steps=3)
    resumed = _fit(_dat_cfg(data, tmp_path), tmp_path / "b", resume=True)
    assert straight.method.steps == resumed.method.steps == 5  # 8 steps, +1 per step up to 5
    for k, v in straight.model.state_dict().items():
        assert torch.equal(v, resumed.model.state_dict()[k]), k
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["dat"]["outdist"].startswith("uniform") and summary["dat"]["steps"] == 5


def test_init_starts_from_another_runs_weights_and_refuses_a_mismatch(data, tmp_path):
    base = tiny_config(data, tmp_path, epochs=1)
    _fit(base, tmp_path / "pgd")
    from jeat.loading import load_trained

    src = load_trained(tmp_path / "pgd", weights="raw").model.state_dict()
    cfg = _dat_cfg(data, tmp_path)
    cfg.init, cfg.init_weights = str(tmp_path / "pgd"), "raw"
    t = Trainer(cfg, run_dir=tmp_path / "stage2", progress=False)
    for k, v in src.items():
        assert torch.equal(t.model.state_dict()[k], v), k
    bad = _dat_cfg(data, tmp_path)
    bad.init, bad.model.arch = str(tmp_path / "pgd"), "cnn-medium"
    with pytest.raises(ValueError, match="--init"):
        Trainer(bad, run_dir=tmp_path / "bad", progress=False)


def test_jeat_train_method_dat_from_the_cli(data, tmp_path, capsys):
    rc = main(["train", "--preset", "tiny", "--method", "dat", "--dataset", "npz", "--data", str(data), "--epochs", "1",
               "--out", str(tmp_path), "--name", "dat", "--no-progress", "--device", "cpu", "--outdist", "gaussian",
               "--set", "data.batch_size=16", "--set", "method.attack.steps=1",
               "--set", "data.valid_size=16"])  # fmt: skip
    assert rc == 0
    cfg = json.loads((tmp_path / "dat" / "config.json").read_text())
    assert cfg["method"]["attack"]["norm"] == "l2" and cfg["method"]["attack"]["eps"] == 0.5  # implied by --method
    assert json.loads((tmp_path / "dat" / "summary.json").read_text())["dat"]["outdist"].startswith("gaussian")


def test_generate_with_the_dat_sampler_raises_the_class_logit():
    from jeat.sampling.generate import GenerateConfig, generate

    model = small_cnn().eval()
    seeds = torch.rand(8, 3, 8, 8)
    cfg = GenerateConfig(sampler="dat", per_class=2, steps=10, step_size=0.2, batch_size=8)
    res = generate(model, K, (3, 8, 8), cfg, seeds=lambda y: seeds[: len(y)])
    with torch.no_grad():
        before = model(seeds).gather(1, res.y.view(-1, 1)).squeeze(1)
        after = model(res.x).gather(1, res.y.view(-1, 1)).squeeze(1)
    assert (after > before).all() and res.x.min() >= 0 and res.x.max() <= 1 and res.trace is None


def test_r1_penalty_is_half_the_mean_squared_input_gradient_and_enters_the_loss():
    from jeat.methods.dat import r1_penalty

    model = small_cnn().eval()
    x = torch.rand(6, 3, 8, 8, requires_grad=True)
    s = torch.logsumexp(model(x), 1)
    r1 = r1_penalty(s, x)
    (g,) = torch.autograd.grad(s.sum(), x)
    assert torch.allclose(r1, 0.5 * g.pow(2).flatten(1).sum(1).mean())
    m = dat_method(small_cnn().train(), r1=10.0)
    loss, metrics = m.loss(m_model := small_cnn().train(), torch.rand(16, 3, 8, 8), torch.arange(16) % K)
    assert metrics["r1"] > 0 and torch.allclose(loss, metrics["bce"] + metrics["ce"] + 10.0 * metrics["r1"], atol=1e-5)
    loss.backward()  # the penalty's double backward reaches the weights
    assert all(p.grad is not None for p in m_model.parameters())
