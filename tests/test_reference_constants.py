"""The paper-* presets carry their references' own data constants (issue 35): normalisation statistics to
the digit, and the padding their loaders use."""

from __future__ import annotations

import pytest

from jeat import get_preset
from jeat.models import build_model
from jeat.models.normalize import normalization_stats


def test_reference_normalisations_are_the_references_constants():
    mean, std = normalization_stats("cifar-dat", 3)  # xuwangyin/DAT wide_resnet_innoutrobustness.py
    assert mean == (0.4913997551666284, 0.48215855929893703, 0.4465309133731618)
    assert std == (0.24703225141799082, 0.24348516474564, 0.26158783926049628)
    assert normalization_stats("cifar-locuslab", 3)[1] == (0.2471, 0.2435, 0.2616)  # fast_adversarial utils.py
    assert normalization_stats("cifar", 3)[1] == (0.2470, 0.2435, 0.2616)  # jeat's rounded default, unchanged
    with pytest.raises(ValueError, match="3 channels"):
        normalization_stats("cifar-dat", 1)
    with pytest.raises(ValueError, match="cifar-locuslab"):
        normalization_stats("cifar-x", 3)
    m = build_model("cnn-small", normalization="cifar-dat")
    assert m.normalize.std.flatten().tolist() == pytest.approx(list(std), rel=1e-7)


@pytest.mark.parametrize(
    ("preset", "normalization", "augment"),
    [("paper-dat", "cifar-dat", "flip-crop-zero"), ("paper-free", "cifar-locuslab", "flip-crop-zero"),
     ("paper-fast", "cifar-locuslab", "flip-crop-zero")],
)  # fmt: skip
def test_presets_use_their_references_constants_and_padding(preset, normalization, augment):
    cfg = get_preset(preset)
    assert (cfg.model.normalization, cfg.data.augment) == (normalization, augment)


def test_dat_augments_its_discriminator_batches_as_the_run(tmp_path):
    from conftest import make_npz_dir, tiny_config

    from jeat.training import Trainer

    data = make_npz_dir(tmp_path / "d", n_train=64, n_test=16)
    cfg = tiny_config(data, tmp_path / "r", name="r", method__name="dat", data__augment="flip-crop-zero")
    cfg.data.outdist = "npz:" + str(data)
    t = Trainer(cfg, progress=False)
    assert t.method.augmentation == "flip-crop-zero" and t.method.outdist.augmentation == "flip-crop-zero"
