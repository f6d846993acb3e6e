"""cpu_malloc: jeat's glibc malloc setting for CPU runs (training/allocator.py)."""

from __future__ import annotations

import ctypes
import sys

import pytest

from jeat.config import TrainConfig
from jeat.training import allocator
from jeat.validation import validate


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except OSError:
        return False


def test_unknown_choice_is_a_clear_error():
    with pytest.raises(ValueError, match="cpu_malloc must be one of cached, system"):
        allocator.apply_cpu_malloc("jemalloc", "cpu")
    cfg = TrainConfig(cpu_malloc="tcmalloc")
    with pytest.raises(ValueError, match="cpu_malloc must be 'cached' or 'system'"):
        validate(cfg)


@pytest.mark.parametrize(("choice", "device"), [("system", "cpu"), ("cached", "cuda"), ("system", "cuda")])
def test_nothing_changes_unless_cached_on_a_cpu(monkeypatch, choice, device):
    monkeypatch.setitem(allocator._state, "cached", False)
    called = []
    monkeypatch.setattr(allocator, "cache_cpu_memory", lambda: called.append(1) or True)
    assert allocator.apply_cpu_malloc(choice, device) is False
    assert not called


@pytest.mark.skipif(not _glibc(), reason="glibc's mallopt only")
def test_cached_takes_effect_once_per_process_on_glibc():
    assert allocator.apply_cpu_malloc("cached", "cpu") is True
    assert allocator.cpu_memory_cached()
    assert allocator.cache_cpu_memory() is True  # idempotent
