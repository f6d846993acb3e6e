"""TRADES, WEAT, JEM++ and SAM: losses and gradients against hand-derived ones on a tiny linear
model, the KL attack's ball, SAM's update rule and its reuse of the crafted inputs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_config
from torch import nn

from jeat.attacks.trades_kl import trades_kl
from jeat.config import TrainConfig
from jeat.methods import METHODS
from jeat.methods.trades import weat_weights
from jeat.training import Trainer
from jeat.training.sam import SAM


class Linear(nn.Module):
    """logits = W vec(x) + b: every gradient below has a closed form."""

    def __init__(self, d=12, k=4):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(d, k)

    def forward(self, x):
        return self.fc(x.flatten(1))


class _Data:
    num_classes, shape = 4, (3, 2, 2)


def _method(name: str, beta=6.0, variant="nat"):
    cfg = TrainConfig()
    cfg.method.name, cfg.method.trades_beta, cfg.method.weat_variant = name, beta, variant
    return METHODS[name](cfg, None, _Data(), torch.device("cpu"))


def _hand_gradient(model, x, x_adv, y, beta, w, base_on_adv):
    """d/dW of mean_i w_i (CE_i + beta KL(p_i || q_i)), p = softmax(z), q = softmax(z'), w fixed:
    dCE/dz = p - onehot (or q - onehot on x'), dKL/dz' = q - p, dKL/dz = p * (log p - log q - KL)."""
    z, za = model(x), model(x_adv)
    p, q = z.softmax(1), za.softmax(1)
    kl = (p * (p.log() - q.log())).sum(1, keepdim=True)
    onehot = F.one_hot(y, 4).float()
    n, w = len(x), w.view(-1, 1)
    dz = beta * p * (p.log() - q.log() - kl)
    dza = beta * (q - p)
    if base_on_adv:
        dza = dza + (q - onehot)
    else:
        dz = dz + (p - onehot)
    gw = (w * dz).T @ x.flatten(1) / n + (w * dza).T @ x_adv.flatten(1) / n
    gb = (w * dz).sum(0) / n + (w * dza).sum(0) / n
    return gw.detach(), gb.detach()


@pytest.mark.parametrize(("name", "variant"), [("trades", "nat"), ("weat", "nat"), ("weat", "adv")])
def test_loss_gradient_matches_the_hand_derived_one(name, variant):
    model = Linear()
    x, y = torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    x_adv = (x + 0.03 * torch.randn_like(x)).clamp(0, 1)
    m = _method(name, beta=3.0, variant=variant)
    m.kl_attack = lambda model, x: x_adv  # the inputs are fixed; the attack is tested below
    loss, metrics = m.loss(model, x, y)
    gw, gb = torch.autograd.grad(loss, [model.fc.weight, model.fc.bias])
    w = weat_weights(model(x)) if name == "weat" else torch.ones(6)
    hw, hb = _hand_gradient(model, x, x_adv, y, 3.0, w, base_on_adv=variant == "adv")
    assert torch.allclose(gw, hw, atol=1e-5) and torch.allclose(gb, hb, atol=1e-5)
    assert ("weat_weight" in metrics) == (name == "weat")


def test_weat_weights_are_one_over_softplus_of_the_energy_magnitude():
    logits = torch.tensor([[0.0, 0.0], [5.0, -5.0], [-8.0, -9.0]], requires_grad=True)
    e = -torch.logsumexp(logits, 1)
    w = weat_weights(logits)
    assert torch.allclose(w, 1 / torch.log1p(torch.exp(e.abs())))
    assert not w.requires_grad  # WEAT detaches the weights
    assert w[2] < w[0]  # larger |E(x)|, smaller weight


def test_kl_attack_stays_in_the_ball_and_raises_the_kl():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    x = torch.rand(32, 3, 2, 2)
    x[:4] = 0.0  # at the box's edge
    eps = 8 / 255
    x_adv = trades_kl(model, x, eps, 2 / 255, 10)
    assert (x_adv - x).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    p = F.softmax(model(x), 1)

    def kl(z):
        return F.kl_div(F.log_softmax(model(z), 1), p, reduction="none").sum(1).mean()

    start = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    assert kl(x_adv) > 10 * kl(start)


def test_jempp_needs_the_proximal_sampler():
    cfg = TrainConfig()
    cfg.method.name = "jempp"
    with pytest.raises(ValueError, match="sampler=pyld"):
        METHODS["jempp"](cfg, None, _Data(), torch.device("cpu"))


@pytest.mark.parametrize("adaptive", [False, True])
def test_sam_step_follows_its_rule(adaptive):
    torch.manual_seed(0)
    w0 = torch.randn(5)
    w = nn.Parameter(w0.clone())
    target = torch.randn(5)

    def loss_at(v):
        return ((v - target) ** 2 * torch.arange(1.0, 6.0)).sum() + v.pow(4).sum()

    loss_at(w).backward()
    g = w.grad.clone()
    sam = SAM([w], rho=0.3, adaptive=adaptive)
    sam.perturb()
    t = w0.abs() if adaptive else torch.ones(5)
    e = 0.3 * t * t * g / (t * g).norm()
    assert torch.allclose(w.detach(), w0 + e, atol=1e-6)
    w.grad = None
    loss_at(w).backward()
    sam.restore()
    assert torch.equal(w.detach(), w0)  # bit-exact back at w
    v = (w0 + e).clone().requires_grad_()
    loss_at(v).backward()
    assert torch.allclose(w.grad, v.grad)  # the gradient used is the one at w + e(w)


class _Counting(METHODS["pgd"]):
    name = "test-count"
    calls = 0

    def inputs(self, model, x, y):
        type(self).calls += 1
        return super().inputs(model, x, y)


def test_sam_reuses_the_crafted_inputs(npz_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(METHODS, "test-count", _Counting)
    cfg = tiny_config(npz_dir, tmp_path, epochs=1)
    cfg.method.name, cfg.method.attack.steps = "test-count", 1
    cfg.optim.sam_rho = 0.05
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=3)
    assert _Counting.calls == 3  # one attack per step, though the loss ran twice per step
    assert not t.method.reuse_crafted


def test_ebjdat_attack_stays_in_the_box_and_within_its_unprojected_reach():
    from jeat.attacks.ebjdat import ebjdat_attack

    torch.manual_seed(2)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    x, y = torch.rand(16, 3, 2, 2), torch.randint(0, 4, (16,))
    x_adv = ebjdat_attack(model, x, y, start_eps=4 / 255, step_size=1 / 255, steps=5)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= 9 / 255 + 1e-6  # start 4/255 + 5 steps of 1/255, no ball


@pytest.mark.parametrize("objective", ["energy", "ce"])
def test_ebjdat_attack_step_is_the_sign_of_the_references_objective(objective):
    # Reference (jkcjkc/EB-JDAT 327ea16, sampleXadv + perceptionloss + feat_diff): sum of f(x', y)
    # over a sub-batch of 2 plus feat_diff's val, whose loop runs over L = len(outs0) = the sub-batch
    # and *sums* the per-example distances (val has shape (1,), so its .mean() changes nothing):
    # weight 1 per example. One step from a known start, by hand; the reference function itself
    # runs beside ours in benchmarks/parity/ebjdat.py.
    from jeat.attacks.ebjdat import ebjdat_attack

    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4))
    with torch.no_grad():  # small logits and a wide start: both terms move some signs (weight 1/2 would fail)
        model[3].weight.mul_(0.1), model[3].bias.mul_(0.1)
    x, y = torch.rand(8, 3, 2, 2) * 0.5 + 0.25, torch.randint(0, 4, (8,))
    torch.manual_seed(7)
    x_adv = ebjdat_attack(model, x, y, start_eps=0.1, step_size=1 / 255, steps=1, objective=objective)
    torch.manual_seed(7)
    start = (x + torch.empty_like(x).uniform_(-0.1, 0.1)).requires_grad_(True)
    pairs = []
    for i in range(0, 8, 2):
        za, zr = model(start[i : i + 2]), model(x[i : i + 2]).detach()
        pd = [((za[k] / za[k].norm() - zr[k] / zr[k].norm()) ** 2).sum() for k in range(2)]
        target = (
            F.cross_entropy(za, y[i : i + 2], reduction="sum")
            if objective == "ce"
            else za.gather(1, y[i : i + 2, None]).sum()
        )
        pairs.append(target + torch.stack(pd).sum())
    (grad,) = torch.autograd.grad(torch.stack(pairs).sum(), start)
    torch.testing.assert_close(x_adv, (start.detach() + grad.sign() / 255).clamp(0, 1))


def test_ebjdat_rejects_an_unknown_attack_objective():
    cfg = TrainConfig()
    cfg.method.name, cfg.method.sgld.sampler, cfg.method.ebjdat_attack = "eb-jdat", "pyld", "pgd"
    with pytest.raises(ValueError, match="unknown method.ebjdat_attack 'pgd'; choose energy, ce"):
        METHODS["eb-jdat"](cfg, None, _Data(), torch.device("cpu"))


def test_ebjdat_loss_gradient_matches_the_hand_derived_one():
    cfg = TrainConfig()
    cfg.method.name, cfg.method.sgld.sampler, cfg.method.sgld.init = "eb-jdat", "pyld", "uniform"
    cfg.method.sgld.buffer_size = 8
    a, b = cfg.method.ebjdat_px_weight, cfg.method.ebjdat_ce_weight
    m = METHODS["eb-jdat"](cfg, None, _Data(), torch.device("cpu"))
    model = Linear()
    x, y = torch.rand(6, 3, 2, 2), torch.tensor([0, 1, 2, 3, 0, 1])
    xn, xa = torch.rand(6, 3, 2, 2), (x + 0.02).clamp(0, 1)
    m.reuse_crafted, m._crafted = True, {"x_cls": x, "x_neg": xn, "x_adv": xa}  # fixed crafted inputs
    loss, metrics = m.loss(model, x, y)
    gw, gb = torch.autograd.grad(loss, [model.fc.weight, model.fc.bias])
    # L = CE(x) + E(x) - E(x~) + a (E(x) - E(x')) + b CE(x'), E = -logsumexp: dE/dz = -softmax(z)
    n, onehot = 6, F.one_hot(y, 4).float()
    p, pn, pa = model(x).softmax(1), model(xn).softmax(1), model(xa).softmax(1)
    dz, dzn, dza = (p - onehot - (1 + a) * p) / n, pn / n, (a * pa + b * (pa - onehot)) / n
    hw = dz.T @ x.flatten(1) + dzn.T @ xn.flatten(1) + dza.T @ xa.flatten(1)
    hb = dz.sum(0) + dzn.sum(0) + dza.sum(0)
    assert torch.allclose(gw, hw.detach(), atol=1e-5) and torch.allclose(gb, hb.detach(), atol=1e-5)
    assert {"ce_adv", "energy_gap_adv"} <= metrics.keys()


def test_px_data_clean_draws_unaugmented_training_images(npz_dir, tmp_path):
    cfg = tiny_config(npz_dir, tmp_path, epochs=1)
    cfg.method.name, cfg.method.px_data = "jem", "clean"
    cfg.method.sgld.steps, cfg.method.sgld.buffer_size = 1, 16
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=1)
    x_px = t.method._crafted["x_px"]
    assert x_px.shape[0] == cfg.data.batch_size
    as_bytes = (x_px * 255).round().to(torch.uint8).cpu()
    train = t.train_set.images
    assert all(any(torch.equal(img, other) for other in train) for img in as_bytes)  # exact, not augmented
    cfg.method.name = "jeat"
    with pytest.raises(ValueError, match="px_data=clean"):
        Trainer(cfg, tmp_path / "jeat", progress=False)
