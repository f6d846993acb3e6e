"""Data sources (npz, CIFAR python batches, image folders) and their errors (augmentation: test_data_stream.py)."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch
from conftest import write_npz

from jeat.data import (
    CIFAR10_CLASSES,
    DataNotFoundError,
    data_root,
    load_cifar_batches,
    load_dataset,
    load_image_folder,
    load_npz,
)

# ------------------------------------------------------------------------------------------ npz


def test_npz_hwc_is_transposed_to_nchw_exactly(tmp_path):
    x, y = write_npz(tmp_path / "d.npz", n=5, size=8, channels=3, num_classes=3)
    data = load_npz(tmp_path / "d.npz")
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert data.images.shape == (5, 3, 8, 8)
    assert torch.equal(data.images, torch.from_numpy(x).permute(0, 3, 1, 2))
    assert data.images.is_contiguous()
    assert torch.equal(data.labels, torch.from_numpy(y))
    assert data.classes == ["0", "1", "2"] and data.num_classes == 3 and data.shape == (3, 8, 8)
    assert len(data) == 5


def test_npz_grayscale_hw(tmp_path):
    x, _ = write_npz(tmp_path / "g.npz", n=4, size=28, channels=None, num_classes=2)
    data = load_npz(tmp_path / "g.npz")
    assert data.images.shape == (4, 1, 28, 28)
    assert torch.equal(data.images[:, 0], torch.from_numpy(x))


def test_npz_labels_any_integer_dtype_and_shape(tmp_path):
    x = np.zeros((3, 4, 4, 3), np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=np.array([[2], [0], [1]], dtype=np.uint8))
    data = load_npz(tmp_path / "d.npz")
    assert data.labels.tolist() == [2, 0, 1] and data.labels.dtype == torch.int64


def test_npz_missing_file():
    with pytest.raises(DataNotFoundError, match="no .npz file"):
        load_npz("/nonexistent/missing.npz")


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"images": np.zeros((2, 4, 4, 3), np.uint8)}, "expected arrays 'x' and 'y'"),
        ({"x": np.zeros((2, 4, 4, 3), np.float32), "y": np.zeros(2, int)}, "must be uint8"),
        ({"x": np.zeros((2, 4, 4, 4), np.uint8), "y": np.zeros(2, int)}, "1 or 3 channels"),
        ({"x": np.zeros((2, 4, 6, 3), np.uint8), "y": np.zeros(2, int)}, "square"),
        ({"x": np.zeros((2, 4, 4, 3), np.uint8), "y": np.zeros(3, int)}, "2 images but 3 labels"),
    ],
)
def test_npz_errors(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        load_npz(tmp_path / "bad.npz")


def test_npz_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    np.savez(tmp_path / "obj.npz", x=np.array([_Payload(marker)], dtype=object), y=np.zeros(1, int))
    with pytest.raises(ValueError):
        load_npz(tmp_path / "obj.npz")
    assert not marker.exists()


def test_load_dataset_npz_directory_and_file(tmp_path, no_jeat_data):
    write_npz(tmp_path / "train.npz", n=6, size=8)
    write_npz(tmp_path / "test.npz", n=3, size=8)
    write_npz(tmp_path / "other.npz", n=2, size=8)
    assert len(load_dataset("npz", "train", root=tmp_path)) == 6
    assert len(load_dataset("npz", "test", root=tmp_path)) == 3
    assert len(load_dataset("npz", "test", root=tmp_path, test_file="other.npz")) == 2
    assert len(load_dataset("npz", "train", root=tmp_path / "other.npz")) == 2


def test_load_dataset_npz_from_jeat_data(tmp_path, monkeypatch):
    write_npz(tmp_path / "train.npz", n=6, size=8)
    monkeypatch.setenv("JEAT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert len(load_dataset("npz", "train")) == 6


def test_load_dataset_npz_missing_says_where_and_how(tmp_path, no_jeat_data):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("npz", "train", root=tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "train.npz") in msg
    assert "--data" in msg and "JEAT_DATA" in msg


def test_limit_takes_a_fixed_random_subset(tmp_path):
    write_npz(tmp_path / "train.npz", n=40, size=4, num_classes=4)
    a = load_dataset("npz", "train", root=tmp_path, limit=10)
    b = load_dataset("npz", "train", root=tmp_path, limit=10)
    full = load_dataset("npz", "train", root=tmp_path)
    assert len(a) == 10 and torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, full.images[:10])  # a shuffled subset, not the first 10
    assert len(load_dataset("npz", "train", root=tmp_path, limit=1000)) == 40


def test_unknown_dataset_and_split(tmp_path):
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        load_dataset("mnist", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be"):
        load_dataset("npz", "val", root=tmp_path)


# ---------------------------------------------------------------------------- CIFAR batches


def _write_cifar10_batches(directory, per_batch=4, test_n=3, seed=0):
    """The official python-version layout: dicts with byte-string keys, data uint8 (N, 3072) in
    channel-planar RGB order, labels a list; batches.meta with label_names."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    written = {}
    for fname, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", test_n)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, n)]
        batch = {b"batch_label": fname.encode(), b"labels": labels, b"data": data,
                 b"filenames": [f"img_{i}.png".encode() for i in range(n)]}  # fmt: skip
        with open(directory / fname, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[fname] = (data, labels)
    meta = {b"num_cases_per_batch": per_batch, b"label_names": [c.encode() for c in CIFAR10_CLASSES], b"num_vis": 3072}
    with open(directory / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


def test_cifar10_python_batches(tmp_path, no_jeat_data):
    written = _write_cifar10_batches(tmp_path / "cifar-10-batches-py")
    train = load_dataset("cifar10", "train", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    assert train.classes == CIFAR10_CLASSES
    # Batches in order 1..5; each row is the R plane, then G, then B, row-major.
    data1, labels1 = written["data_batch_1"]
    assert torch.equal(train.images[0, 0], torch.from_numpy(data1[0, :1024].reshape(32, 32)))
    assert torch.equal(train.images[0, 2], torch.from_numpy(data1[0, 2048:].reshape(32, 32)))
    data5, labels5 = written["data_batch_5"]
    assert torch.equal(train.images[16:].reshape(4, -1), torch.from_numpy(data5))
    assert train.labels[:4].tolist() == labels1 and train.labels[16:].tolist() == labels5
    assert test.labels.tolist() == written["test_batch"][1]


@pytest.mark.parametrize("layout", ["root/cifar10/batches", "batches dir itself"])
def test_cifar10_batches_other_layouts(tmp_path, layout, no_jeat_data):
    if layout == "root/cifar10/batches":
        _write_cifar10_batches(tmp_path / "cifar10" / "cifar-10-batches-py")
        root = tmp_path
    else:
        _write_cifar10_batches(tmp_path / "b")
        root = tmp_path / "b"
    assert len(load_dataset("cifar10", "train", root=root)) == 20


def test_cifar100_python_batches(tmp_path, no_jeat_data):
    d = tmp_path / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(0)
    for fname, n in (("train", 6), ("test", 2)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"fine_labels": [int(v) for v in rng.integers(0, 100, n)],
                 b"coarse_labels": [int(v) for v in rng.integers(0, 20, n)]}  # fmt: skip
        with open(d / fname, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    with open(d / "meta", "wb") as f:
        meta = {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}  # fmt: skip
        pickle.dump(meta, f, protocol=2)
    train = load_dataset("cifar100", "train", root=tmp_path)
    assert train.images.shape == (6, 3, 32, 32) and train.num_classes == 100 and train.classes[7] == "c7"
    assert len(load_dataset("cifar100", "test", root=tmp_path)) == 2


def test_cifar100_is_not_read_from_a_cifar10_batches_dir(tmp_path, no_jeat_data):
    _write_cifar10_batches(tmp_path / "b")
    with pytest.raises(DataNotFoundError, match="cifar100"):
        load_dataset("cifar100", "train", root=tmp_path / "b")


class _Payload:
    """Unpickling this creates a directory: harmless, but proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_batch_unpickler_refuses_code(tmp_path, no_jeat_data):
    written = _write_cifar10_batches(tmp_path / "cifar-10-batches-py")
    data, labels = written["data_batch_3"]
    marker = tmp_path / "pwned"
    evil = {b"labels": labels, b"data": data, b"x": _Payload(marker)}
    blob = pickle.dumps(evil, protocol=2)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(blob)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load \w+\.mkdir"):
        load_dataset("cifar10", "train", root=tmp_path)
    assert not marker.exists()
    # The payload is real: a plain unpickler would have run it.
    pickle.loads(blob)
    assert marker.is_dir()


# ---------------------------------------------------------------------------- image folders


def _write_images(directory, classes, n, size, mode="RGB", seed=0, sizes=None):
    from PIL import Image

    rng = np.random.default_rng(seed)
    arrays = {}
    for cls in classes:
        (directory / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            s = sizes[i % len(sizes)] if sizes else size
            shape = (s, s, 3) if mode == "RGB" else (s, s)
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            Image.fromarray(a, mode=mode).save(directory / cls / f"{i:03d}.png")
            arrays[(cls, i)] = a
    return arrays


def test_image_folder_rgb(tmp_path):
    arrays = _write_images(tmp_path / "train", ["dog", "cat", "frog"], n=2, size=8)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    data = load_dataset("folder", "train", root=tmp_path)
    assert data.classes == ["cat", "dog", "frog"]  # sorted by name
    assert data.images.shape == (6, 3, 8, 8)
    assert data.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert torch.equal(data.images[2], torch.from_numpy(arrays[("dog", 0)]).permute(2, 0, 1))  # PNG is lossless


def test_image_folder_grayscale(tmp_path):
    arrays = _write_images(tmp_path, ["a", "b"], n=2, size=28, mode="L")
    data = load_image_folder(tmp_path)
    assert data.images.shape == (4, 1, 28, 28)
    assert torch.equal(data.images[3, 0], torch.from_numpy(arrays[("b", 1)]))


def test_image_folder_resize_and_mismatched_sizes(tmp_path):
    _write_images(tmp_path, ["a", "b"], n=2, size=None, sizes=[8, 12])
    with pytest.raises(ValueError, match="differ in size.*image_size"):
        load_image_folder(tmp_path)
    data = load_image_folder(tmp_path, image_size=10)
    assert data.images.shape == (4, 3, 10, 10)
    via_dataset = load_dataset("folder", "train", root=tmp_path, image_size=16)
    assert via_dataset.images.shape == (4, 3, 16, 16)


def test_image_folder_test_split_takes_the_training_classes(tmp_path):
    _write_images(tmp_path / "train", ["a", "b", "c"], n=1, size=8)
    _write_images(tmp_path / "test", ["a", "c"], n=2, size=8)  # no 'b' images in the test split
    test = load_dataset("folder", "test", root=tmp_path)
    assert test.classes == ["a", "b", "c"] and test.labels.tolist() == [0, 0, 2, 2]
    _write_images(tmp_path / "test", ["zebra"], n=1, size=8)
    with pytest.raises(ValueError, match="zebra.*not among the training classes"):
        load_dataset("folder", "test", root=tmp_path)


def test_image_folder_errors(tmp_path, no_jeat_data):
    with pytest.raises(DataNotFoundError, match="no image folder"):
        load_image_folder(tmp_path / "missing")
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataNotFoundError, match="no class sub-folders"):
        load_image_folder(tmp_path / "flat")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(DataNotFoundError, match="no images"):
        load_image_folder(tmp_path / "empty")
    with pytest.raises(DataNotFoundError, match="--data"):
        load_dataset("folder", "train", root=None)


# ---------------------------------------------------------------------------- missing data


def test_missing_cifar_lists_places_and_remedies(tmp_path, no_jeat_data):
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("cifar10", "train", root=tmp_path)
    msg = str(e.value)
    for place in (tmp_path / "train.npz", tmp_path / "cifar10" / "train.npz", tmp_path / "cifar-10-batches-py",
                  tmp_path / "cifar10" / "cifar-10-batches-py"):  # fmt: skip
        assert str(place) in msg
    assert "JEAT_DATA" in msg and "--data" in msg and "--download" in msg
    assert isinstance(e.value, FileNotFoundError)  # the CLI reports it as a clean error
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("cifar10", "test", root=tmp_path)
    assert str(tmp_path / "test_jpeg.npz") in str(e.value)


def test_missing_cifar_uses_jeat_data(tmp_path, monkeypatch):
    monkeypatch.setenv("JEAT_DATA", str(tmp_path / "from-env"))
    with pytest.raises(DataNotFoundError, match="from-env"):
        load_dataset("cifar100", "train")


def test_default_root_without_env(no_jeat_data):
    assert data_root().parts[-3:] == (".cache", "jeat", "data")
    assert data_root("~/x") == data_root("~/x").expanduser()


# ---------------------------------------------------------------------------- real CIFAR-10


def test_real_cifar10_test_sets(shared_data):
    test = load_dataset("cifar10", "test", root=shared_data)  # test.npz absent: the JPEG test set
    assert test.images.shape == (10000, 3, 32, 32)
    assert torch.bincount(test.labels, minlength=10).tolist() == [1000] * 10
    assert test.classes == CIFAR10_CLASSES
    small = load_dataset("cifar10", "test", root=shared_data, test_file="test1k_lossless.npz")
    assert small.images.shape == (1000, 3, 32, 32)


def test_real_cifar10_train_set(shared_data):
    train = load_dataset("cifar10", "train", root=shared_data)  # about 5 s: one load only
    assert train.images.shape == (50000, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    assert torch.bincount(train.labels, minlength=10).tolist() == [5000] * 10
    # Per-channel mean of the real training set (shared/data/README.md); numpy sums uint8 far faster.
    mean = train.images.numpy().sum(axis=(0, 2, 3), dtype=np.int64) / (50000 * 32 * 32 * 255)
    np.testing.assert_allclose(mean, [0.4914, 0.4822, 0.4465], atol=1e-3)
    sub = train.subset(500)
    assert len(sub) == 500 and sub.classes == CIFAR10_CLASSES


def test_load_cifar_batches_directly(tmp_path):
    _write_cifar10_batches(tmp_path / "b", per_batch=2, test_n=1)
    assert len(load_cifar_batches(tmp_path / "b", "cifar10", train=True)) == 10
    assert len(load_cifar_batches(tmp_path / "b", "cifar10", train=False)) == 1
