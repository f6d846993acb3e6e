"""Augmentation (flip-crop, JEM noise), BatchStream (determinism, resume, DDP ranks) and ImageSet checks."""

from __future__ import annotations

import pytest
import torch

from jeat.data import AUGMENTATIONS, BatchStream, ImageSet, augment, pad_crop_flip

# ---------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("kind", AUGMENTATIONS)
@pytest.mark.parametrize("shape", [(8, 3, 32, 32), (5, 1, 28, 28)])
def test_augment_keeps_shape_range_and_is_deterministic(kind, shape):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(0))
    a = augment(x, kind, torch.Generator().manual_seed(3))
    b = augment(x, kind, torch.Generator().manual_seed(3))
    assert a.shape == x.shape and a.dtype == x.dtype
    if kind != "jem":  # JEM's noise is not clamped (as in JEM's code)
        assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    if kind != "none":
        assert not torch.equal(a, augment(x, kind, torch.Generator().manual_seed(4)))


def test_jem_noise_is_jems_std_in_its_minus_one_one_units_and_unclamped():
    # JEM: x in [-1, 1], then + 0.03 * N(0, 1). Ours: x in [0, 1]; in JEM's units (2x - 1) the std is 0.03.
    x = torch.full((64, 3, 32, 32), 0.5)  # flat images: crop/flip leave them unchanged
    a = augment(x, "jem", torch.Generator().manual_seed(0))
    std_jem_units = (2 * a - 1).std().item()
    assert std_jem_units == pytest.approx(0.03, rel=0.02)
    edge = augment(torch.ones(64, 3, 32, 32), "jem", torch.Generator().manual_seed(0))
    assert edge.max() > 1  # no clamp


def test_augment_none_is_identity_and_unknown_raises():
    x = torch.rand(2, 3, 8, 8)
    assert torch.equal(augment(x, "none", torch.Generator()), x)
    with pytest.raises(ValueError, match="unknown augmentation 'rotate'"):
        augment(x, "rotate", torch.Generator())


def test_pad_crop_flip_is_a_flipped_crop_of_the_reflect_padded_image():
    x = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    out = pad_crop_flip(x, torch.Generator().manual_seed(1), pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    flips = 0
    for i in range(len(x)):
        candidates = [
            (padded[i, :, oy : oy + 8, ox : ox + 8], flip)
            for oy in range(5)
            for ox in range(5)
            for flip in (False, True)
        ]
        matches = [flip for c, flip in candidates if torch.equal(out[i], c.flip(-1) if flip else c)]
        assert matches, f"sample {i} is not a (flipped) crop"
        flips += matches[0]
    assert 0 < flips < len(x)  # about half are flipped


def test_pad_crop_flip_without_padding_keeps_or_mirrors():
    x = torch.rand(32, 1, 6, 6)
    out = pad_crop_flip(x, torch.Generator().manual_seed(0), pad=0)
    for i in range(len(x)):
        assert torch.equal(out[i], x[i]) or torch.equal(out[i], x[i].flip(-1))


# ---------------------------------------------------------------------------- BatchStream


@pytest.fixture
def small_set():
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8, generator=gen)
    return ImageSet(images, torch.arange(50) % 5, [str(i) for i in range(5)])


def _batches(stream, epoch, start=0):
    return list(stream.epoch(epoch, start))


@pytest.mark.parametrize("augmentation", ["none", "flip-crop", "jem"])
def test_batch_stream_is_a_pure_function_of_seed_and_epoch(small_set, augmentation):
    s1 = BatchStream(small_set, 8, augmentation=augmentation, seed=7)
    s2 = BatchStream(small_set, 8, augmentation=augmentation, seed=7)
    torch.manual_seed(123)  # the global RNG plays no part
    a = _batches(s1, 2)
    torch.manual_seed(456)
    b = _batches(s2, 2)
    assert len(a) == len(s1) == 6  # 50 // 8, last partial batch dropped
    for (xa, ya), (xb, yb) in zip(a, b, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert xa.dtype == torch.float32 and xa.shape == (8, 3, 8, 8)
        assert augmentation == "jem" or (0 <= xa.min() and xa.max() <= 1)  # JEM's noise is unclamped
    other_epoch = _batches(s1, 3)
    assert not all(torch.equal(ya, yc) for (_, ya), (_, yc) in zip(a, other_epoch, strict=True))
    other_seed = _batches(BatchStream(small_set, 8, augmentation=augmentation, seed=8), 2)
    assert not all(torch.equal(xa, xc) for (xa, _), (xc, _) in zip(a, other_seed, strict=True))


@pytest.mark.parametrize("start", [0, 1, 4, 5, 6])
def test_batch_stream_start_step_skips_exactly(small_set, start):
    stream = BatchStream(small_set, 8, augmentation="jem", seed=1)
    full = _batches(stream, 0)
    rest = _batches(stream, 0, start)
    assert len(rest) == len(full) - start
    for (xa, ya), (xb, yb) in zip(full[start:], rest, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_batch_stream_epoch_is_a_permutation(small_set):
    stream = BatchStream(small_set, 10, augmentation="none", seed=0)
    xs = torch.cat([x for x, _ in stream.epoch(0)])
    assert xs.shape[0] == 50
    as_uint8 = (xs * 255).round().to(torch.uint8)
    # Every image exactly once: sort the flattened images and compare with the data set's.
    key = lambda t: sorted(map(tuple, t.reshape(len(t), -1).tolist()))  # noqa: E731
    assert key(as_uint8) == key(small_set.images)
    ordered = torch.cat([x for x, _ in BatchStream(small_set, 10, shuffle=False).epoch(0)])
    assert torch.equal((ordered * 255).round().to(torch.uint8), small_set.images)


def test_batch_stream_ranks_are_disjoint(small_set):
    streams = [BatchStream(small_set, 5, augmentation="none", seed=0, rank=r, world_size=2) for r in (0, 1)]
    assert len(streams[0]) == len(streams[1]) == 5
    seen = [torch.cat([x for x, _ in s.epoch(0)]) for s in streams]
    flat = [set(map(tuple, (v * 255).round().to(torch.uint8).reshape(len(v), -1).tolist())) for v in seen]
    assert not flat[0] & flat[1] and len(flat[0] | flat[1]) == 50


def test_batch_stream_no_drop_last_and_errors(small_set):
    stream = BatchStream(small_set, 8, drop_last=False)
    sizes = [len(y) for _, y in stream.epoch(0)]
    assert sizes == [8] * 6 + [2] and len(stream) == 7
    with pytest.raises(ValueError, match="fewer than one batch"):
        BatchStream(small_set, 64)
    with pytest.raises(ValueError, match="positive"):
        BatchStream(small_set, 0)


def test_image_set_validates():
    ok = torch.zeros(2, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="uint8"):
        ImageSet(ok.float(), torch.zeros(2, dtype=torch.long), ["a"])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        ImageSet(ok, torch.tensor([0, 2]), ["a", "b"])
    with pytest.raises(ValueError, match="1 or 3 channels"):
        ImageSet(torch.zeros(2, 2, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long), ["a"])
