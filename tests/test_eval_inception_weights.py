"""IS weights: downloaded once into the cache (mocked: no network in tests), checksum-verified,
reused; a corrupted download rejected; offline never downloads."""

from __future__ import annotations

import hashlib
import io

import pytest

from jeat.evaluation import inception_weights as W

PAYLOAD = b"inception weights stand-in " * 1000
PREFIX = hashlib.sha256(PAYLOAD).hexdigest()[:8]
URL = f"https://example.invalid/weights-inception-test-{PREFIX}.pth"


class Opener:
    """Serves ``body`` for any URL and counts the calls."""

    def __init__(self, body: bytes):
        self.body, self.calls = body, 0

    def __call__(self, url):
        self.calls += 1
        return io.BytesIO(self.body)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("JEAT_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("JEAT_OFFLINE", raising=False)
    return tmp_path / "cache" / "weights"


def test_first_use_downloads_verifies_and_later_uses_reuse(cache):
    opener = Opener(PAYLOAD)
    path = W.is_weights(url=URL, prefix=PREFIX, opener=opener)
    assert path == cache / URL.rsplit("/", 1)[1] and path.read_bytes() == PAYLOAD
    assert W.is_weights(url=URL, prefix=PREFIX, opener=opener) == path
    assert opener.calls == 1  # the cached, verified copy is reused
    assert list(cache.iterdir()) == [path]  # no temp files left behind


def test_a_corrupted_download_is_rejected_and_not_kept(cache):
    opener = Opener(PAYLOAD[:-1] + b"X")
    with pytest.raises(W.WeightsError, match="checksum mismatch"):
        W.is_weights(url=URL, prefix=PREFIX, opener=opener)
    assert not cache.exists() or not any(cache.iterdir())


def test_a_corrupted_cached_file_is_fetched_again(cache):
    cache.mkdir(parents=True)
    (cache / URL.rsplit("/", 1)[1]).write_bytes(b"truncated")
    opener = Opener(PAYLOAD)
    assert W.is_weights(url=URL, prefix=PREFIX, opener=opener).read_bytes() == PAYLOAD
    assert opener.calls == 1


@pytest.mark.parametrize("how", ["env", "flag"])
def test_offline_never_downloads(cache, monkeypatch, how):
    if how == "env":
        monkeypatch.setenv("JEAT_OFFLINE", "1")
    opener = Opener(PAYLOAD)
    with pytest.raises(W.WeightsError, match="offline.*fid.is_weights"):
        W.is_weights(url=URL, prefix=PREFIX, opener=opener, no_download=how == "flag")
    assert opener.calls == 0
    # Offline still uses a verified copy that is already in the cache.
    W.is_weights(url=URL, prefix=PREFIX, opener=Opener(PAYLOAD), no_download=False) if how == "flag" else None
    if how == "flag":
        assert W.is_weights(url=URL, prefix=PREFIX, opener=opener, no_download=True).read_bytes() == PAYLOAD
        assert opener.calls == 0


def test_an_explicit_path_must_exist(tmp_path):
    with pytest.raises(W.WeightsError, match="no Inception weights file"):
        W.is_weights(str(tmp_path / "missing.pth"))
    f = tmp_path / "w.pth"
    f.write_bytes(b"x")
    assert W.is_weights(str(f)) == f


def test_the_real_url_carries_the_checksum_it_is_verified_against():
    assert W.URL.endswith(f"-{W.SHA256_PREFIX}.pth")


def test_fid_suite_reports_why_is_is_missing_offline(monkeypatch, tmp_path):
    from types import SimpleNamespace

    import torch

    from jeat.evaluation import fid

    monkeypatch.setattr(fid, "inception_class", lambda: object)  # the network exists; the weights do not
    ctx = SimpleNamespace(opt=lambda suite, key, default: "true" if key == "offline" else default,
                          batch_size=4, device=torch.device("cpu"))  # fmt: skip
    msg = fid.inception_logits(ctx, torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    assert msg.startswith("not computed: offline") and "substitute" in msg


def test_torch_fidelity_network_loads_without_torchvision():
    import importlib.util

    if importlib.util.find_spec("torch_fidelity") is None:  # README's evaluation extras install it
        pytest.skip("torch-fidelity is not installed")
    cls = W.inception_class()
    assert cls.__name__ == "FeatureExtractorInceptionV3"
