"""The options that make paper-* presets the authors' code (issue 23; docs/PARITY.md): the data term's
own batch, its size, which forwards move BN running statistics, the EB-JDAT / TRADES extra
forwards, zero-padded crops, the standard ResNet-18, and the presets that use them. The harness in
benchmarks/parity/ runs the references themselves; these tests pin the behaviour without them."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_config
from torch import nn

from jeat import get_preset
from jeat.data.augment import augment
from jeat.models import build_model
from jeat.models.utils import set_bn_momentum
from jeat.models.wrn import from_jem_state_dict
from jeat.training import Trainer
from jeat.training.optim import lr_factor


def _jem(npz_dir, tmp_path, **method):
    cfg = tiny_config(npz_dir, tmp_path, epochs=1)
    cfg.method.name = method.pop("name", "jem")
    cfg.method.sgld.steps, cfg.method.sgld.buffer_size = 2, 32
    for k, v in method.items():
        setattr(cfg.method, k, v)
    return cfg


def test_separate_data_batch_is_drawn_apart_and_sized_by_px_batch_size(npz_dir, tmp_path):
    cfg = _jem(npz_dir, tmp_path, px_data="separate", px_batch_size=8)
    cfg.data.augment = "none"  # then every image of the data batch is a training image, byte for byte
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=1)
    x_px, x_neg = t.method.last_inputs["x_px"], t.method.last_inputs["x_neg"]
    assert x_px.shape[0] == 8 and x_neg.shape[0] == 8 and t.method.last_inputs["x_cls"].shape[0] == 16
    as_bytes = (x_px * 255).round().to(torch.uint8).cpu()
    assert all(any(torch.equal(img, other) for other in t.train_set.images) for img in as_bytes)
    assert not torch.equal(x_px, t.method.last_inputs["x_cls"][:8])


def test_separate_data_batch_is_augmented_like_the_ce_batch(npz_dir, tmp_path):
    cfg = _jem(npz_dir, tmp_path, px_data="separate")
    cfg.data.augment = "jem"  # crops + unclamped noise: no longer training images
    t = Trainer(cfg, progress=False)
    t.fit(max_steps=1)
    x_px = t.method.last_inputs["x_px"]
    assert x_px.min() < 0 or x_px.max() > 1 or not torch.equal(x_px, (x_px * 255).round() / 255)


def test_px_batch_size_needs_a_batch_of_its_own(npz_dir, tmp_path):
    cfg = _jem(npz_dir, tmp_path, px_batch_size=8)  # px_data=batch: the CE batch itself
    with pytest.raises(ValueError, match="px_batch_size needs a data batch of its own"):
        Trainer(cfg, progress=False)


def _running(model):
    return torch.cat([m.running_mean for m in model.modules() if isinstance(m, nn.BatchNorm2d)])


@pytest.mark.parametrize("bn_stats", ["classifier", "all"])
def test_bn_stats_says_which_forwards_move_the_running_statistics(npz_dir, tmp_path, bn_stats):
    cfg = _jem(npz_dir, tmp_path, bn_stats=bn_stats)
    t = Trainer(cfg, progress=False)
    t.model.train()
    start = {k: v.clone() for k, v in t.model.state_dict().items()}
    x, y = next(iter(t.stream.epoch(0)))
    t.method.loss(t.model, x, y)
    after_loss = _running(t.model)
    t.model.load_state_dict(start)
    with torch.no_grad():
        t.model(t.method.last_inputs["x_cls"])  # the classifier's forward alone
    only_cls = _running(t.model)
    if bn_stats == "classifier":
        torch.testing.assert_close(after_loss, only_cls)  # SGLD and the negatives left them alone
    else:
        assert not torch.allclose(after_loss, only_cls)


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 5))
    return set_bn_momentum(net, 0.9).train()


def test_ebjdat_reference_forwards_equal_a_data_forward_and_two_adversarial_ones():
    """EB-JDAT's loop forwards x_px again and x_adv twice in train mode; jeat does x_px without a
    graph and x_adv once with the momentum of two updates. Outputs and BN statistics must agree."""
    from jeat.methods.ebjdat import EBJDAT

    x_px, x_adv = torch.rand(4, 3, 6, 6), torch.rand(4, 3, 6, 6)
    ours, ref = _bn_net(), _bn_net()
    method = EBJDAT.__new__(EBJDAT)  # only the helper is exercised
    method.reuse_crafted = False
    out = EBJDAT._forward_as_reference(method, ours, x_px, x_adv)
    with torch.no_grad():
        ref(x_px), ref(x_adv)
        ref_out = ref(x_adv)
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(ours[1].running_mean, ref[1].running_mean)
    torch.testing.assert_close(ours[1].running_var, ref[1].running_var)
    assert ours[1].momentum == 0.9  # restored


def test_trades_with_bn_stats_all_forwards_the_clean_batch_again(npz_dir, tmp_path):
    cfg = tiny_config(npz_dir, tmp_path, epochs=1)
    cfg.method.name, cfg.method.attack.steps = "trades", 1
    runs = {}
    for mode in ("classifier", "all"):
        cfg.method.bn_stats = mode
        t = Trainer(cfg, progress=False)
        x, y = next(iter(t.stream.epoch(0)))
        t.model.train()
        torch.manual_seed(1)
        t.method.loss(t.model, x, y)
        runs[mode] = (_running(t.model), t)
    t = runs["all"][1]
    # classifier: x, then x'; all: x, x', x (TRADES' trades_loss forwards x a second time)
    mom = next(m for m in t.model.modules() if isinstance(m, nn.BatchNorm2d)).momentum
    assert mom is not None and not torch.allclose(runs["classifier"][0], runs["all"][0])


def test_zero_padded_crops_pad_with_zeros_and_reflect_does_not():
    ones = torch.ones(64, 3, 8, 8)
    zero = augment(ones, "flip-crop-zero", torch.Generator().manual_seed(0))
    reflect = augment(ones, "flip-crop", torch.Generator().manual_seed(0))
    assert (zero == 0).any() and (reflect == 1).all()


def test_resnet18_is_the_standard_cifar_resnet18():
    m = build_model("resnet18", 10)
    n = sum(p.numel() for p in m.parameters())
    assert n == 11_173_962  # the CIFAR ResNet-18 (3x3 stem, no max-pool)
    keys = set(m.state_dict())
    assert {"backbone.conv1.weight", "backbone.layer2.0.shortcut.0.weight", "backbone.layer2.0.shortcut.1.running_var",
            "backbone.linear.weight"} <= keys  # fmt: skip
    assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_jempp_yopo_aliases_are_dropped_on_import():
    state = {"f.conv1.weight": torch.zeros(1), "f.layer_one.weight": torch.zeros(1),
             "f.other_layers.0.0.bn1.weight": torch.zeros(1), "f.layer1.0.bn1.weight": torch.zeros(1)}  # fmt: skip
    assert set(from_jem_state_dict(state, 10)) == {"backbone.features.0.weight", "backbone.features.1.bn1.weight"}


def test_paper_presets_carry_the_references_settings():
    jempp, sada, eb = get_preset("paper-jempp"), get_preset("paper-sadajem"), get_preset("paper-eb-jdat")
    for c in (jempp, sada, eb, get_preset("paper-robust-jem")):
        assert (c.model.bn_momentum, c.method.bn_stats, c.amp) == (0.9, "all", "none")
    assert (jempp.method.px_data, eb.method.px_data, get_preset("paper-jem").method.px_data) == ("separate",) * 3
    assert (jempp.method.sgld.step_size, eb.method.ebjdat_perception_weight) == (0.0, 1.0)
    assert (sada.data.batch_size, sada.method.px_batch_size, sada.method.px_data) == (128, 64, "clean")
    weat, trades = get_preset("paper-weat"), get_preset("paper-trades")
    assert (weat.model.arch, weat.optim.cycle_momentum, weat.data.augment) == ("resnet18", True, "flip-crop-zero")
    assert (trades.model.normalization, trades.data.augment, trades.method.bn_stats) == ("none", "flip-crop-zero",
                                                                                         "all")  # fmt: skip
    # TRADES counts epochs from 1 and decays when epoch >= 75: its epochs 75 and 76 (0-based 74, 75)
    o = trades.optim
    assert [o.lr * lr_factor(o, e * 10, 10, 760) for e in (73, 74, 75)] == pytest.approx([0.1, 0.01, 0.01])
    assert all(get_preset(n).amp == "none" for n in ("paper-jem", "paper-jeat", "paper-pgd", "paper-trades"))


def test_weat_kl_takes_log_of_softmax_plus_1e12_and_trades_log_softmax():
    from jeat.attacks.trades_kl import kl_to_clean
    from jeat.methods.trades import TRADES, WEAT

    z = torch.tensor([[0.0, 40.0, -40.0]], dtype=torch.float64)  # one class far below 1e-12
    p = torch.tensor([[0.2, 0.5, 0.3]], dtype=torch.float64)
    weat = (p * (p.log() - torch.log(z.softmax(1) + 1e-12))).sum(1)
    trades = (p * (p.log() - z.log_softmax(1))).sum(1)
    torch.testing.assert_close(kl_to_clean(z, p, WEAT.kl_log_eps), weat)
    torch.testing.assert_close(kl_to_clean(z, p, TRADES.kl_log_eps), trades)
    assert (trades - weat).item() > 1.0  # the cap matters here


def test_cycliclr_steps_as_torchs_cycliclr_with_its_momentum():
    # locuslab/fast_adversarial's Fast AT: CyclicLR(base 0, max lr, step_size_up = step_size_down = total / 2),
    # cycle_momentum left at torch's default (0.8 - 0.9). Compared step by step with torch's own scheduler.
    from jeat.config import OptimConfig
    from jeat.training.optim import build_scheduler

    total, spe = 40, 8
    w = torch.nn.Parameter(torch.zeros(1))
    ref_opt = torch.optim.SGD([w], lr=0.2, momentum=0.9)
    ref = torch.optim.lr_scheduler.CyclicLR(ref_opt, base_lr=0.0, max_lr=0.2, step_size_up=total / 2,
                                            step_size_down=total / 2)  # fmt: skip
    ours_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.2, momentum=0.9)
    ours = build_scheduler(ours_opt, OptimConfig("sgd", lr=0.2, schedule="cycliclr", cycle_momentum=True), spe,
                           total // spe)  # fmt: skip
    for _ in range(total):
        a, b = ours_opt.param_groups[0], ref_opt.param_groups[0]
        assert a["lr"] == pytest.approx(b["lr"], abs=1e-15) and a["momentum"] == pytest.approx(b["momentum"])
        ref_opt.step()
        ref.step()
        ours_opt.step()
        ours.step()
    # jeat's own `cyclic` (the cpu-* presets) starts one step in: step 0 is not at lr 0
    plain = build_scheduler(torch.optim.SGD([w], lr=0.2), OptimConfig("sgd", lr=0.2, schedule="cyclic"), spe, 5)
    assert plain.get_last_lr()[0] > 0


def test_an_attack_that_updates_bn_moves_the_running_statistics_and_the_default_does_not():
    from jeat.config import AttackConfig, MethodConfig
    from jeat.methods.pgd import FGSMTraining

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                              torch.nn.LazyLinear(10))  # fmt: skip
    net(torch.rand(2, 3, 8, 8))
    net.train()
    x, y = torch.rand(4, 3, 8, 8), torch.tensor([0, 1, 2, 3])
    for update, moves in ((False, False), (True, True)):
        m = FGSMTraining.__new__(FGSMTraining)
        m.mcfg = MethodConfig("fgsm", attack=AttackConfig("ce", 8 / 255, 10 / 255, 1, update_bn=update))
        m.cfg = type("C", (), {"fold_bn": False})()
        before = net[1].running_mean.clone()
        m.attack(net, x, y)
        assert (not torch.equal(before, net[1].running_mean)) is moves
