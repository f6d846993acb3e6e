"""``jeat import``: published checkpoints of other code bases -> a jeat run directory.

Formats (``--format``):

- ``jem``: JEM / JEM++ ``CIFAR10_MODEL.pt``, ``{model_state_dict, replay_buffer}``, inputs in
  [-1, 1] -> ``jem-wrn-D-K`` (JEM, no BN) or ``jempp-wrn-D-K`` (JEM++, BN) with ``half``
  normalisation; the replay buffer converted to [0, 1].
- ``robustness``: MadryLab robustness, ``{model: {module.model.*, module.attacker.model.*,
  module.normalizer.new_mean / new_std}}`` -> the attacker-free model with the normaliser's stats.
- ``robustbench``: a plain state dict (RobustBench, TRADES), optional ``module.`` prefix and
  ``mu`` / ``sigma`` buffers -> the model; inputs in [0, 1] unless ``mu`` / ``sigma`` say otherwise.

Files are read with ``weights_only=True`` (never pickled code) or as safetensors. WRN keys in the
TRADES / RobustBench layout (``block1.layer.0.convShortcut``) are renamed onto jeat's pre-activation
WRN; JEM's onto its ``jem`` block (``models.wrn.from_jem_state_dict``); anything else must already
match ``--arch``. Loading is strict: a mismatch names the missing and unexpected keys. The run
directory holds ``config.json``, ``model.safetensors``, ``replay_buffer.safetensors`` where the
source had one (``jeat generate --seed-dist buffer``) and ``import.json`` (source, SHA-256, format).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save as st_save
from torch import Tensor

from .config import TrainConfig
from .models import build_model
from .models.normalize import CIFAR10_MEAN, CIFAR10_STD, custom_normalization
from .models.wrn import from_jem_state_dict
from .training.checkpoint import atomic_write_bytes, atomic_write_json, load_checkpoint, read_safetensors

FORMATS = ("jem", "robustness", "robustbench")


@dataclass
class Imported:
    state: dict[str, Tensor]  # keys of a jeat Classifier (``backbone.*``)
    arch: str
    normalization: str
    method: str = "standard"
    buffer: Tensor | None = None  # replay buffer in [0, 1] units


def read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    # weights_only=True: a file holding objects that could execute code is refused, and said so in our
    # words (torch's own message suggests weights_only=False, advice that would run that code)
    return load_checkpoint(path)


def _strip(state: dict, prefix: str) -> dict:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def _tensors(obj: dict, *keys: str) -> dict[str, Tensor]:
    """The first of ``keys`` holding a state dict, else ``obj`` itself."""
    for k in keys:
        if isinstance(obj.get(k), dict):
            return obj[k]
    return obj


# ------------------------------------------------------------------ WRN layouts
_TRADES_BLOCK = re.compile(r"^block(\d)\.layer\.(\d+)\.(.+)$")


def wrn_depth(state: dict, pattern: str) -> int:
    """Depth of a WRN from its blocks per group (depth = 6n + 4)."""
    n = 1 + max(int(m.group(1)) for k in state if (m := re.match(pattern, k)))
    return 6 * n + 4


def from_trades_state_dict(state: dict[str, Tensor], prefix: str = "backbone.") -> dict[str, Tensor]:
    """TRADES / RobustBench WideResNet keys onto jeat's pre-activation WRN (the same block: the
    projection shortcut takes the pre-activated input, the stride is on conv1). ``sub_block1`` is
    built but never used by that code; it is dropped."""
    n = (wrn_depth(state, r"^block1\.layer\.(\d+)\.") - 4) // 6
    out = {}
    for key, value in state.items():
        if key.startswith("sub_block1."):
            continue
        if m := _TRADES_BLOCK.match(key):
            index = 1 + (int(m.group(1)) - 1) * n + int(m.group(2))
            new = f"features.{index}." + m.group(3).replace("convShortcut", "shortcut")
        elif key.startswith("conv1."):
            new = "features.0." + key[len("conv1.") :]
        elif key.startswith("bn1."):
            new = f"features.{1 + 3 * n}." + key[len("bn1.") :]
        else:
            new = key
        out[prefix + new] = value
    return out


def _wrn_arch(state: dict, family: str, block_pattern: str, first_block_conv: str) -> str:
    depth = wrn_depth(state, block_pattern)
    widen = state[first_block_conv].shape[0] // 16  # the first group is 16k wide
    return f"{family}wrn-{depth}-{widen}"


def _normalization(mean: Tensor | None, std: Tensor | None, default: str) -> str:
    if mean is None or std is None:
        return default
    mean, std = mean.flatten().tolist(), std.flatten().tolist()
    for name, (m, s) in {"cifar": (CIFAR10_MEAN, CIFAR10_STD), "half": ((0.5,) * 3, (0.5,) * 3),
                         "none": ((0.0,) * 3, (1.0,) * 3)}.items():  # fmt: skip
        if len(mean) == 3 and all(abs(a - b) < 1e-4 for a, b in zip([*mean, *std], [*m, *s], strict=True)):
            return name
    return custom_normalization(mean, std)


# ------------------------------------------------------------------ formats
def convert(obj: dict, fmt: str, arch: str | None = None) -> Imported:
    if fmt == "jem":
        state = _tensors(obj, "model_state_dict", "state_dict")
        state = {k.removeprefix("module."): v for k, v in state.items()}
        if "f.conv1.weight" not in state:
            raise ValueError("not a JEM / JEM++ checkpoint: no 'f.conv1.weight' (its F model's WRN)")
        bn = any(re.match(r"^f\.layer\d\.\d+\.bn1\.weight$", k) for k in state)  # JEM: Identity, no keys
        arch = arch or _wrn_arch(state, "jempp-" if bn else "jem-", r"^f\.layer1\.(\d+)\.", "f.layer1.0.conv1.weight")
        depth = int(arch.split("-")[-2])
        buffer = obj.get("replay_buffer")
        buffer = (buffer.float() + 1) / 2 if isinstance(buffer, Tensor) and buffer.dim() == 4 else None
        return Imported(from_jem_state_dict(state, depth), arch, "half", "jem", buffer)
    if fmt == "robustness":
        raw = _tensors(obj, "model", "state_dict")
        model = _strip(raw, "module.model.") or _strip(raw, "model.")
        if not model:
            raise ValueError("not a robustness-library checkpoint: no 'module.model.*' keys")
        norm = _normalization(raw.get("module.normalizer.new_mean"), raw.get("module.normalizer.new_std"), "none")
        return _plain(model, arch, norm)
    if fmt == "robustbench":
        state = {k.removeprefix("module."): v for k, v in _tensors(obj, "state_dict", "model_state_dict").items()}
        norm = _normalization(state.pop("mu", None), state.pop("sigma", None), "none")
        return _plain(state, arch, norm)
    raise ValueError(f"unknown format {fmt!r}; choose {', '.join(FORMATS)}")


def _plain(state: dict[str, Tensor], arch: str | None, norm: str) -> Imported:
    if any(_TRADES_BLOCK.match(k) for k in state):
        arch = arch or _wrn_arch(state, "", r"^block1\.layer\.(\d+)\.", "block1.layer.0.conv1.weight")
        return Imported(from_trades_state_dict(state), arch, norm)
    if arch is None:
        raise ValueError("cannot tell the architecture of these keys; pass --arch (see `jeat info models`)")
    return Imported({"backbone." + k: v for k, v in state.items()}, arch, norm)


def build(imp: Imported, num_classes: int | None = None, in_channels: int | None = None):
    """The jeat model holding ``imp.state``; strict, with a message naming what does not fit."""
    fc = [v for k, v in imp.state.items() if k.endswith("fc.weight")]
    num_classes = num_classes or (fc[-1].shape[0] if fc else 10)
    convs = [v for v in imp.state.values() if v.dim() == 4]
    in_channels = in_channels or (convs[0].shape[1] if convs else 3)
    model = build_model(imp.arch, num_classes, in_channels, imp.normalization)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(imp.state))
    unexpected = sorted(set(imp.state) - set(expected))
    shapes = sorted(k for k in set(expected) & set(imp.state) if expected[k].shape != imp.state[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{len(missing)} missing keys {missing[:6]}" if missing else "",
                 f"{len(unexpected)} unexpected keys {unexpected[:6]}" if unexpected else "",
                 f"{len(shapes)} keys of another shape {shapes[:6]}" if shapes else ""]  # fmt: skip
        raise ValueError(f"the checkpoint does not fit {imp.arch}: " + "; ".join(p for p in parts if p)
                         + " (another --arch or --format?)")  # fmt: skip
    model.load_state_dict(imp.state)
    return model.eval()


def import_checkpoint(source: str | Path, fmt: str, out: str | Path, arch: str | None = None,
                      normalization: str | None = None) -> Path:  # fmt: skip
    """Convert ``source`` and write a run directory at ``out``; returns it."""
    imp = convert(read(source), fmt, arch)
    if normalization:
        imp.normalization = normalization
    model = build(imp)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(preset=f"imported-{fmt}", name=out.name)
    cfg.model.arch, cfg.model.normalization, cfg.method.name = imp.arch, imp.normalization, imp.method
    atomic_write_json(out / "config.json", cfg.to_dict())
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(out / "model.safetensors", lambda f: f.write(st_save(state)))
    if imp.buffer is not None:
        buf = {"x": imp.buffer.contiguous()}
        atomic_write_bytes(out / "replay_buffer.safetensors", lambda f: f.write(st_save(buf)))
    digest = hashlib.sha256(Path(source).read_bytes()).hexdigest()
    info = {"source": str(source), "sha256": digest, "format": fmt, "arch": imp.arch,
            "normalization": imp.normalization, "tensors": len(state),
            "replay_buffer": None if imp.buffer is None else list(imp.buffer.shape)}  # fmt: skip
    atomic_write_json(out / "import.json", info)
    return out
