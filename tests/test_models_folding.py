"""Conv + eval-mode BN folding for attacks (models/folding.py) and the per-stage CPU layout
(models/layout.py): the same function as the plain model, restored afterwards, never applied where
it would be wrong."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from jeat.attacks import pgd
from jeat.attacks.trades_kl import trades_kl
from jeat.models import build_model
from jeat.models.folding import fold_conv_bn, foldable_pairs, folded_bn
from jeat.models.layout import apply_layout, staged_layout


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial running statistics and affine parameters, so a wrong fold shows."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return model


def _logits_and_input_grad(model, x):
    x = x.clone().requires_grad_(True)
    out = model(x)
    (g,) = torch.autograd.grad(out.logsumexp(1).sum(), x)
    return out.detach(), g


ARCHS = [("resnet18", 20), ("preact-resnet18", 8), ("wrn-16-2", 7), ("cnn-small", 6)]


@pytest.mark.parametrize(("arch", "pairs"), ARCHS)
def test_folded_eval_pass_matches_the_plain_one(arch, pairs):
    torch.manual_seed(0)
    model = _randomise_bn(build_model(arch)).double().eval()
    assert len(foldable_pairs(model)) == pairs  # the Classifier's input check does not trace: its children do
    x = torch.rand(3, 3, 32, 32, dtype=torch.float64)
    plain = _logits_and_input_grad(model, x)
    with folded_bn(model) as net:
        assert net is model
        folded = _logits_and_input_grad(model, x)
    for a, b in zip(plain, folded, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    assert all("forward" not in m.__dict__ for m in model.modules())  # restored


def test_fold_really_replaces_the_bn():
    model = _randomise_bn(build_model("resnet18")).eval()
    bn = model.backbone.bn1
    calls = []
    bn.register_forward_hook(lambda *a: calls.append(1))
    with folded_bn(model):
        model(torch.rand(1, 3, 32, 32))
    folded_calls = len(calls)
    model(torch.rand(1, 3, 32, 32))
    assert folded_calls == 1 and len(calls) == 2  # the hook runs, but the module's forward is the identity
    with folded_bn(model):
        assert model.backbone.bn1.forward(torch.ones(1)) == 1  # identity while folded
        assert model.backbone.conv1.forward.__name__ == "<lambda>"


def test_train_mode_bn_is_never_folded():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("resnet18")).train()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        plain = model(x)
        with folded_bn(model):
            assert not any("forward" in m.__dict__ for m in model.modules())
            folded = model(x)
    assert torch.equal(plain, folded)


def test_disabled_and_restored_after_an_error():
    model = build_model("resnet18").eval()
    with folded_bn(model, enabled=False):
        assert not any("forward" in m.__dict__ for m in model.modules())
    with pytest.raises(RuntimeError, match="boom"), folded_bn(model):
        raise RuntimeError("boom")
    assert not any("forward" in m.__dict__ for m in model.modules())


class _SharedConvOutput(nn.Module):
    """The conv's output feeds the BN *and* the sum: folding would change the sum."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        h = self.conv(x)
        return (self.bn(h) + h).flatten(1)


def test_a_conv_output_used_twice_is_not_folded():
    model = _randomise_bn(_SharedConvOutput()).eval()
    assert foldable_pairs(model) == []


def test_folded_weights_follow_updates():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("resnet18")).double().eval()
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64)
    with folded_bn(model), torch.no_grad():
        model(x)
    with torch.no_grad():
        model.backbone.bn1.running_mean.add_(0.5)
        model.backbone.conv1.weight.mul_(1.5)
        plain = model(x)
        with folded_bn(model):
            folded = model(x)
    torch.testing.assert_close(folded, plain, rtol=1e-10, atol=1e-12)


def test_fold_formula_without_affine_and_with_conv_bias():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 4, 3, padding=1, bias=True).double()
    bn = nn.BatchNorm2d(4, affine=False).double().eval()
    bn.running_mean.copy_(torch.randn(4))
    bn.running_var.copy_(torch.rand(4) + 0.1)
    x = torch.randn(2, 2, 5, 5, dtype=torch.float64)
    w, b = fold_conv_bn(conv, bn)
    torch.testing.assert_close(conv._conv_forward(x, w, b), bn(conv(x)), rtol=1e-12, atol=1e-12)


def test_kl_attack_is_the_same_with_and_without_folding():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("resnet18")).double().eval()
    x = torch.rand(4, 3, 32, 32, dtype=torch.float64)
    torch.manual_seed(1)
    plain = trades_kl(model, x, steps=3, log_eps=1e-12)
    torch.manual_seed(1)
    with folded_bn(model):
        folded = trades_kl(model, x, steps=3, log_eps=1e-12)
    assert torch.equal(plain, folded)  # the signs of the gradients agree in float64


def test_pgd_with_eval_bn_is_the_same_with_and_without_folding():
    torch.manual_seed(0)
    model = _randomise_bn(build_model("wrn-16-2")).double().eval()
    x, y = torch.rand(4, 3, 32, 32, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    torch.manual_seed(1)
    plain = pgd(model, x, y, 8 / 255, 2 / 255, 5)
    torch.manual_seed(1)
    with folded_bn(model):
        folded = pgd(model, x, y, 8 / 255, 2 / 255, 5)
    assert torch.equal(plain, folded)


# ---------------------------------------------------------------- layout


def _formats(model) -> dict[str, bool]:
    """channels_last or not, per conv weight (1x1 kernels are both, so left out)."""
    return {n: p.is_contiguous(memory_format=torch.channels_last) for n, p in model.named_parameters()
            if p.dim() == 4 and p.shape[-1] > 1}  # fmt: skip


def test_staged_layout_keeps_late_stages_nchw_on_a_cpu_and_computes_the_same():
    torch.manual_seed(0)
    ref = build_model("resnet18").double()
    model = build_model("resnet18").double()
    model.load_state_dict(ref.state_dict())
    apply_layout(model, True, "cpu")
    assert staged_layout(model) == ["backbone.layer3", "backbone.layer4"]
    fmt = _formats(model)
    assert fmt["backbone.layer2.0.conv1.weight"] and not fmt["backbone.layer3.0.conv1.weight"]
    assert not fmt["backbone.layer4.1.conv2.weight"] and fmt["backbone.conv1.weight"]
    seen = {}
    model.backbone.layer3.register_forward_pre_hook(lambda m, a: seen.update(nchw=a[0].is_contiguous()))
    x = torch.rand(2, 3, 32, 32, dtype=torch.float64).contiguous(memory_format=torch.channels_last)
    a, ga = _logits_and_input_grad(ref.train(), x.contiguous())
    b, gb = _logits_and_input_grad(model.train(), x)
    assert seen["nchw"]  # layer3 received an NCHW input
    torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gb, ga, rtol=1e-10, atol=1e-12)
    apply_layout(model, True, "cpu")  # again: still one conversion hook
    assert len(model.backbone.layer3._forward_pre_hooks) == 2  # ours and the test's


@pytest.mark.parametrize(("channels_last", "device", "staged"), [(True, "cuda", True), (True, "cpu", False)])
def test_uniform_channels_last_off_a_cpu_or_when_not_staged(channels_last, device, staged):
    model = apply_layout(build_model("resnet18"), channels_last, device, staged)
    assert all(_formats(model).values())
    assert not model.backbone.layer3._forward_pre_hooks


def test_nchw_when_channels_last_is_off():
    model = apply_layout(build_model("resnet18"), False, "cpu")
    assert not any(_formats(model).values())


@pytest.mark.parametrize("staged", [True, False])
def test_the_trainer_trains_in_the_staged_layout_on_a_cpu(npz_dir, tmp_path, staged):
    from conftest import tiny_config

    from jeat.training.loop import Trainer

    cfg = tiny_config(npz_dir, tmp_path, model__arch="resnet18", channels_last=True, staged_layout=staged,
                      method__name="weat", method__attack__steps=1)  # fmt: skip
    tr = Trainer(cfg, run_dir=tmp_path / f"run-{staged}", progress=False)
    fmt = _formats(tr.model)
    assert fmt["backbone.layer1.0.conv1.weight"] and fmt["backbone.layer4.0.conv1.weight"] is not staged
    xb = torch.rand(16, 3, 16, 16)
    yb = torch.randint(0, 4, (16,))
    assert torch.isfinite(tr.train_step(xb, yb)["loss"])  # the KL attack (folded) and the step run
