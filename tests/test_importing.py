"""`jeat import`: JEM / JEM++, robustness-library and RobustBench checkpoints written by the tests
in each format become run directories whose model computes what the source model computes."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import jem_state_keys
from torch import nn

from jeat.cli import main
from jeat.importing import import_checkpoint
from jeat.loading import load_trained
from jeat.models.normalize import CIFAR10_MEAN, CIFAR10_STD


class TradesBlock(nn.Module):
    """The TRADES / RobustBench WideResNet block as that code defines it (pre-activation; when the
    widths differ, the activated input feeds both conv1 and the 1x1 ``convShortcut``)."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(c_out), nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.equal = c_in == c_out
        self.convShortcut = None if self.equal else nn.Conv2d(c_in, c_out, 1, stride, 0, bias=False)

    def forward(self, x):
        a = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(a))))
        return out + (x if self.equal else self.convShortcut(a))


class TradesWRN(nn.Module):
    """conv1, block1-3 (``blockG.layer.I``), an unused ``sub_block1``, bn1, ReLU, 8x8 average pool, fc."""

    def __init__(self, depth=16, widen=2, classes=10):
        super().__init__()
        n, w = (depth - 4) // 6, [16, 16 * widen, 32 * widen, 64 * widen]

        def group(c_in, c_out, stride):
            g = nn.Module()
            g.layer = nn.Sequential(*[TradesBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1)
                                      for i in range(n)])  # fmt: skip
            return g

        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.block1, self.sub_block1 = group(16, w[1], 1), group(16, w[1], 1)
        self.block2, self.block3 = group(w[1], w[2], 2), group(w[2], w[3], 2)
        self.bn1, self.fc = nn.BatchNorm2d(w[3]), nn.Linear(w[3], classes)

    def forward(self, x):
        out = self.block3.layer(self.block2.layer(self.block1.layer(self.conv1(x))))
        out = F.avg_pool2d(F.relu(self.bn1(out)), 8)
        return self.fc(out.flatten(1))


def _trades_model() -> TradesWRN:
    torch.manual_seed(0)
    net = TradesWRN()
    for m in net.modules():  # non-trivial BN statistics, so that a misplaced buffer shows
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
    return net.eval()


def test_robustbench_state_dict_computes_the_same_logits(tmp_path):
    ref = _trades_model()
    src = tmp_path / "rb.pt"
    torch.save({"module." + k: v for k, v in ref.state_dict().items()}, src)  # DataParallel prefix
    run = import_checkpoint(src, "robustbench", tmp_path / "run")
    model = load_trained(run).model
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), ref(x), atol=1e-5)
    info = json.loads((run / "import.json").read_text())
    assert info["arch"] == "wrn-16-2" and info["normalization"] == "none" and len(info["sha256"]) == 64


def test_robustness_library_checkpoint_keeps_its_normaliser(tmp_path):
    ref = _trades_model()
    mean, std = torch.tensor(CIFAR10_MEAN).view(3, 1, 1), torch.tensor(CIFAR10_STD).view(3, 1, 1)
    sd = {f"module.model.{k}": v for k, v in ref.state_dict().items()}
    sd |= {f"module.attacker.model.{k}": v for k, v in ref.state_dict().items()}
    sd |= {"module.normalizer.new_mean": mean, "module.normalizer.new_std": std}
    torch.save({"model": sd, "epoch": 150}, tmp_path / "madry.pt")
    run = import_checkpoint(tmp_path / "madry.pt", "robustness", tmp_path / "run")
    trained = load_trained(run)
    assert trained.config.model.normalization == "cifar"
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(trained.model(x), ref((x - mean) / std), atol=1e-5)

    # Statistics that are none of the named ones are kept as they are.
    sd["module.normalizer.new_mean"] = torch.tensor([0.1, 0.2, 0.3]).view(3, 1, 1)
    torch.save({"model": sd}, tmp_path / "odd.pt")
    run = import_checkpoint(tmp_path / "odd.pt", "robustness", tmp_path / "odd")
    assert load_trained(run).config.model.normalization.startswith("mean=0.1,0.2,0.3;std=0.247")


@pytest.mark.parametrize("bn", [False, True], ids=["jem", "jempp"])
def test_jem_checkpoint_with_its_replay_buffer(tmp_path, bn):
    torch.manual_seed(0)
    state = {k: torch.randn(s) * 0.1 for k, s in jem_state_keys(16, 4, bn).items()}
    if bn:  # a real JEM++ state dict carries BN buffers too
        for k in [k for k in state if k.endswith("bn1.weight") or k.endswith("bn2.weight")]:
            base = k[: -len("weight")]
            state[base + "running_mean"] = torch.zeros(state[k].shape)
            state[base + "running_var"] = torch.ones(state[k].shape)
            state[base + "num_batches_tracked"] = torch.tensor(7)
    buffer = torch.rand(20, 3, 32, 32) * 2 - 1  # JEM's [-1, 1] units
    torch.save({"model_state_dict": state, "replay_buffer": buffer}, tmp_path / "CIFAR10_MODEL.pt")
    run = import_checkpoint(tmp_path / "CIFAR10_MODEL.pt", "jem", tmp_path / "run")
    trained = load_trained(run)
    assert trained.config.model.arch == ("jempp-wrn-16-4" if bn else "jem-wrn-16-4")
    assert trained.config.model.normalization == "half" and trained.config.method.name == "jem"
    assert torch.equal(trained.model.backbone.fc.weight, state["class_output.weight"])
    from safetensors.torch import load_file

    saved = load_file(str(run / "replay_buffer.safetensors"))["x"]
    assert torch.allclose(saved, (buffer + 1) / 2) and 0 <= saved.min() and saved.max() <= 1
    from jeat.sampling.generate import generate_from_checkpoint

    res = generate_from_checkpoint(run, per_class=1, steps=1, batch_size=10, seed_dist="buffer")
    assert res.x.shape == (10, 3, 32, 32)


def test_a_mismatch_names_the_missing_and_unexpected_keys(tmp_path, capsys):
    sd = _trades_model().state_dict()
    sd.pop("block2.layer.0.conv1.weight")
    sd["block9.extra"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"1 missing keys \['backbone.features.3.conv1.weight'\]; "
                                         r"1 unexpected keys \['backbone.block9.extra'\]"):  # fmt: skip
        import_checkpoint(tmp_path / "bad.pt", "robustbench", tmp_path / "run")
    torch.save(_trades_model().state_dict(), tmp_path / "ok.pt")
    assert main(["import", str(tmp_path / "ok.pt"), "--format", "robustbench", "--out", str(tmp_path / "r"),
                 "--arch", "wrn-16-4"]) == 1  # fmt: skip
    assert "keys of another shape" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "ok.pt"), "--format", "jem", "--out", str(tmp_path / "j")]) == 1
    assert "not a JEM / JEM++ checkpoint" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_pickle_with_code_is_refused(tmp_path, capsys):
    torch.save({"model_state_dict": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(RuntimeError, match="could execute code"):
        import_checkpoint(tmp_path / "evil.pt", "jem", tmp_path / "run")
    assert "pickled code ran" not in capsys.readouterr().out
    # From the command line: one line naming the file and saying why, never torch's advice to retry with
    # weights_only=False (which would run the code).
    assert main(["import", str(tmp_path / "evil.pt"), "--format", "jem", "--out", str(tmp_path / "r2")]) == 1
    err = capsys.readouterr().err
    assert (
        "evil.pt" in err and "could execute code" in err and "weights_only" not in err.replace("weights_only=True", "")
    )
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
