"""Multi-process training on PyTorch's own engine (``torchrun`` + DistributedDataParallel).

``torchrun --nproc_per_node N -m jeat train ...`` sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/
``MASTER_ADDR``/``MASTER_PORT``; :func:`setup` reads them, picks the device (``cuda`` or ``auto``
-> ``cuda:LOCAL_RANK``) and initialises the process group (nccl on CUDA, gloo on CPU). Without
those variables everything here is a no-op and a run is an ordinary single process.

What each rank does (docs/SCALE.md):
- data: ``BatchStream`` takes a strided, equal share of every epoch's permutation, so the
  global batch is ``world * data.batch_size`` and every rank runs the same number of steps;
- randomness: the model is initialised from ``seed`` on every rank (and DDP broadcasts rank
  0's weights anyway); everything after that (replay-buffer initialisation, reinit draws, SGLD
  noise, attack random starts) draws from ``rank_seed(seed, rank)``, so chains differ per rank
  and a run is reproducible for a fixed world size;
- replay buffers: one per rank, ``sgld.buffer_size / world`` chains each (the configured size is
  the total). Checkpoints gather every rank's method state; resume re-splits them when the
  world size changed (:func:`resplit_state`);
- logging, checkpoints, progress bars and the final files are rank 0's; the metrics it logs and
  the divergence guard see values averaged over ranks, so every rank stops together.
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

# Per-rank seeds are spread by a large prime so (seed, rank) pairs do not collide for small seeds.
RANK_SEED_STRIDE = 1_000_003


@dataclass
class DistContext:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    owns_group: bool = False  # True when setup() created the process group (and cleanup() ends it)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment, or (0, 1, 0)."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def dist_info() -> tuple[int, int]:
    """(rank, world size) of the current process group, or (0, 1)."""
    if is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``auto`` -> CUDA if available else CPU; ``cuda`` -> ``cuda:LOCAL_RANK``; ``cuda:N`` as given."""
    if local_rank is None:
        local_rank = env_world()[2]
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if dev.index is None:
            dev = torch.device("cuda", local_rank % torch.cuda.device_count())
    return dev


def setup(device: str = "auto") -> DistContext:
    """Resolve the device and, under torchrun (``WORLD_SIZE`` > 1), join the process group."""
    rank, world, local_rank = env_world()
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    owns = False
    if is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    elif world > 1:
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        owns = True
    return DistContext(rank, world, local_rank, dev, owns)


def cleanup(ctx: DistContext | None) -> None:
    """Destroy the process group if :func:`setup` created it."""
    if ctx is not None and ctx.owns_group and is_initialized():
        dist.destroy_process_group()
        ctx.owns_group = False


def rank_seed(seed: int, rank: int) -> int:
    return seed + RANK_SEED_STRIDE * rank


def per_rank_config(cfg, world: int, num_classes: int):
    """A copy of ``cfg`` whose replay buffer is this rank's share of ``sgld.buffer_size``."""
    if world <= 1:
        return cfg
    cfg = copy.deepcopy(cfg)
    s = cfg.method.sgld
    size = max(s.buffer_size // world, 1)
    if s.class_conditional_buffer:  # keep whole class blocks so re-splitting preserves labels
        size = max(size - size % num_classes, num_classes)
    s.buffer_size = size
    return cfg


def wrap_ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """DDP without per-forward buffer broadcasts: attacks and SGLD run many forwards per step;
    BatchNorm running statistics are instead synced from rank 0 before evaluation and saving."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                               gradient_as_bucket_view=True)  # fmt: skip


def sync_buffers(model: nn.Module) -> None:
    """Copy rank 0's module buffers (BN running statistics) to every rank."""
    if not is_initialized() or dist.get_world_size() == 1:
        return
    for b in model.buffers():
        dist.broadcast(b.data, src=0)


def mean_over_ranks(values: dict[str, Tensor]) -> dict[str, float]:
    """Average 0-dim metric tensors over ranks and bring them to the host: one sync in all."""
    if not values:
        return {}
    keys = sorted(values)
    t = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    if is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
        t = t / dist.get_world_size()
    return dict(zip(keys, t.tolist(), strict=True))


def sum_over_ranks(x: Tensor) -> Tensor:
    if is_initialized() and dist.get_world_size() > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


def gather_to_main(obj) -> list | None:
    """Every rank's ``obj`` on rank 0 (a list in rank order), None elsewhere. Tensors travel via CPU."""
    if not is_initialized() or dist.get_world_size() == 1:
        return [obj]
    obj = _to_cpu(obj)
    out = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def barrier() -> None:
    if is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def _to_cpu(obj):
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def resplit_state(states: list, template, rank: int, world: int):
    """This rank's share of method states saved by ``len(states)`` ranks, for ``world`` ranks now.

    Tensor leaves with a leading dimension (replay-buffer images and labels) are concatenated
    over the saved ranks into one pool and rank ``r`` takes rows ``r*n ... r*n+n-1`` (modulo the
    pool size) where ``n`` is the leading size this rank's fresh state has: a buffer saved with
    2 x 5000 chains resumes on 1 rank as the 10000 chains, and vice versa. Class-conditional
    buffers keep their label layout when the per-rank sizes are multiples of the class count
    (``per_rank_config`` ensures it). Everything else (scalars, counters) is taken from rank 0.
    """
    if isinstance(template, dict):
        return {k: resplit_state([s[k] for s in states], v, rank, world) for k, v in template.items()
                if all(isinstance(s, dict) and k in s for s in states)}  # fmt: skip
    if isinstance(template, Tensor) and template.dim() >= 1 and all(isinstance(s, Tensor) for s in states):
        pool = torch.cat([s.to(template.device) for s in states])
        if pool.shape[1:] != template.shape[1:]:
            raise ValueError(f"cannot re-split a saved state of shape {tuple(pool.shape)} into {tuple(template.shape)}")
        n = template.shape[0]
        if len(pool) != n * world:
            warnings.warn(f"resuming {len(pool)} saved rows as {world} x {n}: rows are repeated or dropped",
                          stacklevel=2)  # fmt: skip
        idx = (rank * n + torch.arange(n, device=pool.device)) % len(pool)
        return pool[idx].to(template.dtype)
    return states[0]
