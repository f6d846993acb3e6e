"""Every registered model: output shapes, 1/3 channels, square sizes, the [0, 1] input contract."""

from __future__ import annotations

import pytest
import torch
from conftest import jem_state_keys
from torch import nn

from jeat.models import _REGISTRY as REGISTRY
from jeat.models import Classifier, available_models, build_model, frozen_bn_stats, register_model, unwrap
from jeat.models.normalize import CIFAR10_MEAN, CIFAR10_STD

SLOW = {"wrn-28-10", "jem-wrn-28-10", "jempp-wrn-28-10"}  # 36M parameters: shape test with batch 1 only
FAST = [m for m in available_models() if m not in SLOW]


def test_registry_lists_the_papers_architectures():
    names = set(available_models())
    assert {"wrn-28-10", "jem-wrn-28-10", "wrn-28-2", "wrn-16-4", "cnn-small"} <= names
    assert available_models() == sorted(names)


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_and_channels(name, channels):
    torch.manual_seed(0)
    model = build_model(name, num_classes=7, in_channels=channels)
    assert isinstance(model, Classifier)
    assert (model.in_channels, model.num_classes) == (channels, 7)
    x = torch.rand(3, channels, 32, 32)
    out = model(x)
    assert out.shape == (3, 7)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("size", [28, 64])
def test_other_square_sizes(name, size):
    model = build_model(name, num_classes=10, in_channels=1 if size == 28 else 3).eval()
    with torch.no_grad():
        out = model(torch.rand(2, model.in_channels, size, size))
    assert out.shape == (2, 10)


@pytest.mark.parametrize("name", sorted(SLOW))
def test_wrn_28_10_shape_batch_1(name):
    model = build_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = model(torch.rand(1, 3, 32, 32))
    assert out.shape == (1, 10)
    assert torch.isfinite(out).all()


def test_wrn_parameter_counts_match_the_papers():
    # Zagoruyko & Komodakis: WRN-28-10 has 36.5M parameters on CIFAR-10; WRN-28-2 1.5M; WRN-16-4 2.7M.
    def count(name):
        return sum(p.numel() for p in build_model(name).parameters())

    assert count("wrn-28-10") == 36_479_194
    assert count("wrn-28-2") == 1_467_610
    assert count("wrn-16-4") == 2_748_890


def test_jem_variant_has_no_normalisation_and_leaky_relu():
    model = build_model("jem-wrn-16-4")
    kinds = {type(m) for m in model.modules()}
    assert not any(issubclass(k, nn.modules.batchnorm._NormBase) for k in kinds)
    assert nn.ReLU not in kinds
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.2}
    std = build_model("wrn-16-4")
    assert any(isinstance(m, nn.BatchNorm2d) for m in std.modules())
    assert not any(isinstance(m, nn.LeakyReLU) for m in std.modules())


def test_normalize_maps_half_to_cifar_statistics():
    model = build_model("cnn-small")
    x = torch.full((1, 3, 4, 4), 0.5)
    out = model.normalize(x)
    for c in range(3):
        expected = (0.5 - CIFAR10_MEAN[c]) / CIFAR10_STD[c]
        torch.testing.assert_close(out[0, c], torch.full((4, 4), expected))
    # The statistics are the real CIFAR-10 training set's (shared/data/README.md).
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert CIFAR10_STD == (0.2470, 0.2435, 0.2616)


@pytest.mark.parametrize(
    ("name", "normalization", "channels", "value_at_half", "value_at_one"),
    [
        ("jem-cnn-small", None, 3, 0.0, 1.0),  # JEM: (x - 0.5) / 0.5 -> [-1, 1]
        ("cnn-small", "half", 1, 0.0, 1.0),
        ("cnn-small", None, 1, 0.0, 2.0),  # 1-channel 'cifar': (x - 0.5) / 0.25
        ("cnn-small", "none", 3, 0.5, 1.0),
    ],
)
def test_normalisation_kinds(name, normalization, channels, value_at_half, value_at_one):
    model = build_model(name, in_channels=channels, normalization=normalization)
    torch.testing.assert_close(
        model.normalize(torch.full((1, channels, 2, 2), 0.5)), torch.full((1, channels, 2, 2), value_at_half)
    )
    torch.testing.assert_close(
        model.normalize(torch.ones(1, channels, 2, 2)), torch.full((1, channels, 2, 2), value_at_one)
    )


def test_forward_is_backbone_of_normalised_input():
    torch.manual_seed(0)
    model = build_model("wrn-16-2").eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        expected = model.backbone((x - model.normalize.mean) / model.normalize.std)
        torch.testing.assert_close(model(x), expected)


def test_normalisation_is_not_in_the_state_dict():
    # Weights saved from one normalisation load into the same architecture; stats come from the config.
    keys = build_model("cnn-small").state_dict().keys()
    assert not any(k.startswith("normalize") for k in keys)
    assert not list(build_model("cnn-small").normalize.parameters())


@pytest.mark.parametrize("shape", [(2, 1, 32, 32), (2, 4, 32, 32), (3, 32, 32)])
def test_wrong_input_shape_raises_clear_error(shape):
    model = build_model("cnn-small", in_channels=3)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, H, W\) in \[0, 1\]"):
        model(torch.rand(*shape))


def test_grayscale_model_rejects_rgb():
    model = build_model("wrn-16-2", in_channels=1)
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(2, 3, 32, 32))


def test_input_gradient_flows_for_attacks():
    model = build_model("cnn-small").eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape and x.grad.abs().sum() > 0


def test_channels_last_gives_same_logits():
    torch.manual_seed(0)
    model = build_model("cnn-small").eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        model_cl = model.to(memory_format=torch.channels_last)
        out = model_cl(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_unknown_model_lists_available():
    with pytest.raises(ValueError, match="unknown model 'resnet-9000'.*wrn-28-10"):
        build_model("resnet-9000")


def test_unknown_normalisation_raises():
    with pytest.raises(ValueError, match="unknown normalisation"):
        build_model("cnn-small", normalization="imagenet")


def test_register_model():
    class Linear(nn.Module):
        def __init__(self, k, c):
            super().__init__()
            self.fc = nn.Linear(c, k)

        def forward(self, x):
            return self.fc(x.mean((2, 3)))

    register_model("test-linear", Linear, normalization="none")
    try:
        assert "test-linear" in available_models()
        model = build_model("test-linear", num_classes=5, in_channels=1)
        assert model(torch.rand(2, 1, 8, 8)).shape == (2, 5)
        assert torch.equal(model.normalize.std, torch.ones(1, 1, 1, 1))
    finally:
        REGISTRY.pop("test-linear", None)


def test_frozen_bn_stats_leaves_running_statistics_untouched():
    torch.manual_seed(0)
    model = build_model("cnn-small").train()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    before = [(m.running_mean.clone(), m.running_var.clone(), m.momentum) for m in bns]
    with frozen_bn_stats(model):
        model(torch.rand(4, 3, 16, 16))
    for m, (mean, var, mom) in zip(bns, before, strict=True):
        assert torch.equal(m.running_mean, mean) and torch.equal(m.running_var, var)
        assert m.momentum == mom
    model(torch.rand(4, 3, 16, 16))  # outside the context the statistics move again
    assert not torch.equal(bns[0].running_mean, before[0][0])


def test_unwrap_nested_wrappers():
    inner = build_model("cnn-small")

    class Wrapper(nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

    assert unwrap(Wrapper(Wrapper(inner))) is inner
    assert unwrap(inner) is inner


# ---------------------------------------------------------------------------- JEM's WRN block


@pytest.mark.parametrize(("arch", "norm"), [("jem-wrn-16-4", False), ("jempp-wrn-16-4", True)])
def test_a_jem_checkpoint_loads_into_the_jem_wrn(arch, norm):
    from jeat.models.wrn import from_jem_state_dict

    model = build_model(arch)
    jem = {k: torch.randn(s) for k, s in jem_state_keys(16, 4, norm).items()}
    mapped = from_jem_state_dict(jem, depth=16)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    assert not unexpected and all("running_" in k or "num_batches" in k or k.startswith("normalize") for k in missing)
    assert torch.equal(model.backbone.fc.weight, jem["class_output.weight"])
    with pytest.raises(KeyError, match="f.extra"):
        from_jem_state_dict({**jem, "f.extra.weight": torch.zeros(1)}, depth=16)


def test_jem_block_strides_its_second_conv_and_shortcuts_the_raw_input():
    from jeat.models.wrn import JEMBlock

    block = JEMBlock(16, 32, 2, "batch", 0.2, 0.0).eval()
    assert block.conv1.stride == (1, 1) and block.conv2.stride == (2, 2)
    seen = {}
    block.shortcut.register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))
    x = torch.randn(2, 16, 8, 8)
    assert block(x).shape == (2, 32, 4, 4)
    assert seen["x"] is x  # JEM: shortcut(x), not shortcut(act(bn1(x)))


def _out_of_place(model: nn.Module) -> nn.Module:
    import copy

    twin = copy.deepcopy(model)
    for m in twin.modules():
        if isinstance(m, (nn.ReLU, nn.LeakyReLU)):
            m.inplace = False
    return twin


@pytest.mark.parametrize(
    ("block", "norm", "leak"),
    [
        ("jem", "none", 0.2),
        ("jem", "batch", 0.2),
        ("preact", "none", 0.0),
        ("preact", "batch", 0.0),
        ("preact", "group", 0.1),
    ],  # fmt: skip
)
def test_in_place_activations_change_no_value_or_gradient(block, norm, leak):
    # The WRNs activate in place where the input is a fresh tensor; a wrong choice (e.g. in place on
    # the block input that the identity shortcut reads) would change the logits or the gradients.
    from jeat.models.wrn import WideResNet

    torch.manual_seed(0)
    net = WideResNet(10, 2, 10, 3, norm=norm, leak=leak, block=block, dropout=0.0).train()
    assert any(getattr(m, "inplace", False) for m in net.modules())
    twin = _out_of_place(net)
    x = torch.rand(4, 3, 32, 32)
    outs = []
    for m in (net, twin):
        xi = x.clone().requires_grad_(True)
        logits = m(xi)
        (gx,) = torch.autograd.grad(logits.logsumexp(1).sum(), xi, create_graph=True)
        (gg,) = torch.autograd.grad(gx.square().sum(), xi)  # double backward (Fisher scores, DAT)
        m.zero_grad()
        m(x).logsumexp(1).sum().backward()
        outs.append([logits, gx, gg, *(p.grad for p in m.parameters())])
    for a, b in zip(*outs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet18", "preact-resnet18"])
def test_in_place_relus_of_the_resnets_change_no_gradient(name):
    torch.manual_seed(0)
    net = build_model(name).train()
    twin = _out_of_place(net)
    x = torch.rand(2, 3, 32, 32)
    grads = []
    for m in (net, twin):
        xi = x.clone().requires_grad_(True)
        (gx,) = torch.autograd.grad(m(xi).logsumexp(1).sum(), xi)
        grads.append(gx)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)
