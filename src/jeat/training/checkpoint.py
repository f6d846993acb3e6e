"""Atomic, code-free checkpoints.

Files are written to a temporary name in the same directory and renamed into place, so a
crash mid-write leaves the previous checkpoint intact. Loading uses ``weights_only=True``:
tensors, numbers, strings, lists and dicts only, never pickled code.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported: callers import them here)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt, or would execute code on loading."""


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


def atomic_link(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Make ``dst`` the same file as ``src`` (a hard link, else a copy), replacing it atomically."""
    src, dst = Path(src), Path(dst)
    tmp = dst.parent / f".{dst.name}.{os.getpid()}.link.tmp"
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # file systems without hard links
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
    return dst


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    return atomic_write_bytes(path, lambda f: torch.save(state, f))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = _unpickling_reason(e)
        if "GLOBAL" not in reason:  # garbage bytes, not a forbidden object
            raise CheckpointError(f"{path} is not a readable checkpoint: {reason}") from None
        raise CheckpointError(
            f"refusing to load {path}: it contains objects other than tensors and plain data, "
            f"which could execute code when unpickled ({reason})"
        ) from None
    except Exception as e:  # truncated zip, empty file, corrupt pickle stream (EOFError, KeyError, ...)
        raise CheckpointError(f"{path} is not a readable checkpoint: {type(e).__name__}: {e}") from None


def read_safetensors(path: str | os.PathLike, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A ``.safetensors`` file's tensors; a truncated or corrupt file is a :class:`CheckpointError` naming it
    (safetensors' own error is a bare header message without the path)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no safetensors file at {path}")
    try:
        return load_file(str(path), device=device)
    except Exception as e:  # SafetensorError (truncated, bad header), OSError, ...
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: "
                              f"{type(e).__name__}: {e}); re-export it, or pass the run's checkpoint.pt"
                              ) from None  # fmt: skip


def _unpickling_reason(e: Exception) -> str:
    """The informative line of torch's weights-only error (its first line is generic boilerplate)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    useful = [ln for ln in lines if not ln.startswith(boilerplate)]
    return next((ln for ln in useful if "GLOBAL" in ln), useful[0] if useful else (lines[0] if lines else repr(e)))


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
