"""JEAT / JEM / Robust JEM losses against hand-derived gradients on a linear model, and the
energy-change tracking (Eq. 15) against a direct computation."""

from __future__ import annotations

import pytest
import torch
from test_methods_attacks import K, batch, fake_set, linear

from jeat.config import TrainConfig
from jeat.energy import joint_energy, marginal_energy
from jeat.methods import build_method


def make(name: str, px_weight: float = 0.5, track: bool = False):
    model = linear()
    cfg = TrainConfig(amp="none")
    cfg.method.name, cfg.method.px_weight, cfg.method.track_energy = name, px_weight, track
    cfg.method.attack.eps, cfg.method.attack.step_size, cfg.method.attack.steps = 8 / 255, 8 / 255, 1
    cfg.method.sgld.buffer_size, cfg.method.sgld.steps = 32, 2
    return model, build_method(cfg, model, fake_set(), "cpu")


def hand_grads(W, b, x, y, x_px, x_neg, w):
    """d/d(W, b) of mean CE(x, y) + w * [mean E(x_px) - mean E(x_neg)] for f(x) = W x + b.

    dCE/df = softmax(f) - onehot(y);  dE(x)/df = -softmax(f);  df/dW = x^T, df/db = 1."""
    flat = lambda t: t.reshape(len(t), -1)  # noqa: E731
    x, x_px, x_neg = flat(x), flat(x_px), flat(x_neg)
    p = torch.softmax(x @ W.T + b, 1)
    g_ce = (p - torch.nn.functional.one_hot(y, K).float()) / len(x)
    g_pos = -torch.softmax(x_px @ W.T + b, 1) / len(x_px)
    g_neg = -torch.softmax(x_neg @ W.T + b, 1) / len(x_neg)
    gW = g_ce.T @ x + w * (g_pos.T @ x_px - g_neg.T @ x_neg)
    gb = g_ce.sum(0) + w * (g_pos.sum(0) - g_neg.sum(0))
    return gW, gb


@pytest.mark.parametrize("name", ["jeat", "jem", "robust-jem"])
def test_loss_gradient_equals_hand_derived(name):
    model, m = make(name)
    x, y = batch(16)
    loss, metrics = m.loss(model, x, y)
    W, b = model[1].weight, model[1].bias
    gW, gb = torch.autograd.grad(loss, [W, b])
    x_cls, x_neg = m.last_inputs["x_cls"], m.last_inputs["x_neg"]
    if name == "jem":
        assert torch.equal(x_cls, x)
    else:
        assert not torch.equal(x_cls, x)
    x_px = x_cls if name == "jeat" else x  # JEAT: E(x_adv) (Alg. 1); JEM, Robust JEM: E(x)
    hW, hb = hand_grads(W.detach(), b.detach(), x_cls, y, x_px, x_neg, 0.5)
    torch.testing.assert_close(gW, hW, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gb, hb, atol=1e-5, rtol=1e-4)
    for k, v in metrics.items():
        assert v.dim() == 0 and torch.isfinite(v), k


def test_jeat_negatives_come_from_the_buffer_and_go_back():
    model, m = make("jeat")
    m.mcfg.sgld.reinit_prob = 0.0
    before = m.negatives.buffer.x.clone()
    x, y = batch(8)
    m.loss(model, x, y)
    changed = (m.negatives.buffer.x != before).flatten(1).any(1)
    assert 1 <= int(changed.sum()) <= 8  # the drawn chains (with replacement) were written back
    x_neg = m.last_inputs["x_neg"]
    # every rewritten chain holds one of the returned samples (a chain drawn twice keeps one)
    assert all(any(torch.equal(s, t) for t in x_neg) for s in m.negatives.buffer.x[changed])


def test_energy_tracking_matches_direct_computation():
    model, m = make("prejeat", track=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x, y = batch(16)
    torch.manual_seed(0)
    loss, metrics = m.loss(model, x, y)
    torch.manual_seed(0)
    x_adv = m.inputs(model, x, y)  # the same attack again
    with torch.no_grad():
        f_x, f_adv = model(x), model(x_adv)
    dx_xy = joint_energy(f_adv, y) - joint_energy(f_x, y)
    dx_x = marginal_energy(f_adv) - marginal_energy(f_x)
    torch.testing.assert_close(metrics["dx_energy_xy_mean"], dx_xy.mean())
    torch.testing.assert_close(metrics["dx_energy_xy_std"], dx_xy.std(correction=0))
    torch.testing.assert_close(metrics["dx_energy_x_mean"], dx_x.mean())
    assert metrics["dx_energy_xy_mean"] > 0  # the energy attack raises E(x, y) (Fig. 3a)
    opt.zero_grad()
    loss.backward()
    opt.step()
    after = m.after_update(model)
    with torch.no_grad():
        f_new = model(x_adv)
    dt_xy = joint_energy(f_new, y) - joint_energy(f_adv, y)
    dt_x = marginal_energy(f_new) - marginal_energy(f_adv)
    torch.testing.assert_close(after["dtheta_energy_xy_mean"], dt_xy.mean())
    torch.testing.assert_close(after["dtheta_energy_x_std"], dt_x.std(correction=0))
    assert after["dtheta_energy_xy_mean"] < 0  # the update lowers E(x_adv, y) (Fig. 3a)
    assert m.after_update(model) == {}  # once per step


def test_delta_theta_tracking_is_fp32_under_bf16_autocast():
    """With Adam 1e-4 a step moves energies by about bf16's rounding: the tracker's forwards are
    fp32 whatever the autocast, and match a float64 reference."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, K))  # fmt: skip
    cfg = TrainConfig(amp="bf16")
    cfg.method.name, cfg.method.track_energy = "standard", True
    m = build_method(cfg, model, fake_set(), "cpu")
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x, y = batch(32)
    ref = [p.detach().double().clone() for p in model.parameters()]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = m.loss(model, x, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        after = m.after_update(model)

    def e64(params):
        h = torch.relu(x.double().flatten(1) @ params[0].T + params[1])
        f = h @ params[2].T + params[3]
        return joint_energy(f, y), marginal_energy(f)

    new = [p.detach().double() for p in model.parameters()]
    (xy0, x0), (xy1, x1) = e64(ref), e64(new)
    d_xy, d_x = (xy1 - xy0).mean(), (x1 - x0).mean()
    assert abs(d_xy.item()) > 1e-4  # a real but small change
    torch.testing.assert_close(after["dtheta_energy_xy_mean"].double(), d_xy, atol=2e-5, rtol=2e-2)
    torch.testing.assert_close(after["dtheta_energy_x_mean"].double(), d_x, atol=2e-5, rtol=2e-2)


def test_standard_has_zero_delta_x():
    model, m = make("standard", track=True)
    x, y = batch(8)
    _, metrics = m.loss(model, x, y)
    assert metrics["dx_energy_xy_mean"] == 0 and metrics["dx_energy_x_std"] == 0


def test_energy_l2_adds_igebm_penalty():
    model, m = make("jem", px_weight=0.5)
    m.mcfg.energy_l2 = 0.3
    x, y = batch(16)
    loss, metrics = m.loss(model, x, y)
    with torch.no_grad():
        e_pos, e_neg = marginal_energy(model(x)), marginal_energy(model(m.last_inputs["x_neg"]))
    expected = (
        metrics["ce"] + 0.5 * (e_pos.mean() - e_neg.mean()) + 0.3 * (e_pos.square().mean() + e_neg.square().mean())
    )
    torch.testing.assert_close(loss.detach(), expected, atol=1e-5, rtol=1e-5)
    m.mcfg.energy_l2 = 0.0
    loss0, metrics0 = m.loss(model, x, y)
    assert torch.isclose(loss0.detach(), metrics0["ce"] + 0.5 * metrics0["energy_gap"], atol=1e-5)


@pytest.mark.parametrize("mode", ["batch", "running"])
def test_sgld_bn_mode_decides_which_statistics_negatives_see(mode):
    from jeat.models import build_model

    torch.manual_seed(0)
    model = build_model("cnn-small", K, 3).train()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():  # non-trivial running statistics, different from any batch's
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(2.0)
    cfg = TrainConfig(amp="none")
    cfg.method.name, cfg.method.sgld.buffer_size, cfg.method.sgld.steps = "jem", 32, 2
    cfg.method.sgld.bn = mode
    m = build_method(cfg, model, fake_set(), "cpu")
    before = bn.running_mean.clone()
    x, y = batch(8)
    m.loss(model, x, y)
    x_neg = m.last_inputs["x_neg"]
    after_loss = bn.running_mean.clone()
    from jeat.models.utils import sgld_bn_context

    with torch.no_grad(), sgld_bn_context(model, mode):
        together = marginal_energy(model(x_neg))
        alone = marginal_energy(model(x_neg[:2]))
    assert torch.equal(bn.running_mean, after_loss)  # the negatives never move running statistics
    assert not torch.equal(before, after_loss)  # (the data forward does, as in plain training)
    if mode == "running":  # each negative's energy is its own, as at generation
        torch.testing.assert_close(together[:2], alone)
    else:  # normalised by the batch it is sampled in
        assert not torch.allclose(together[:2], alone)
    assert model.training and bn.training


def test_unknown_sgld_bn_mode_is_refused():
    cfg = TrainConfig(amp="none")
    cfg.method.name, cfg.method.sgld.bn = "jem", "frozen"
    with pytest.raises(ValueError, match="method.sgld.bn"):
        build_method(cfg, linear(), fake_set(), "cpu")
