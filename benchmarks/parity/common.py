"""What every parity check shares: identical inputs and noise for both sides, observing the
reference's loop (losses, gradients, step times) without editing it, jeat's side of a run, and the
comparisons and their tolerances. Finding and importing the references: ``references.py``.

Nothing of the references is copied here: their modules are imported from a checkout the user
names (``--ref DIR``, ``--refs ROOT`` or ``JEAT_REF_<METHOD>``), and their command-line defaults
are read from their own ``argparse`` calls (:func:`reference_parser`), so a different commit is
compared at its own defaults. Each shim is recorded in the check's result (``shims``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from interleave import after_jeat_step
from observe import bn_state, record_grads_at_step  # noqa: F401  (re-exported: the check modules import them here)
from references import (  # noqa: F401  (re-exported: the check modules import them from here)
    REFERENCES,
    checkout_commit,
    cuda_as_cpu,
    import_reference,
    install_stubs,
    ref_checkout,
    reference_function,
    reference_parser,
    script_flags,
)
from timing import jeat_malloc, note_malloc, speed_record  # noqa: F401  (jeat_malloc: re-exported)

# One step's numbers agree to this relative difference (max |a - b| / max |b|) in fp32.
STEP_RTOL = 1e-4


def cifar(n: int, root: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n CIFAR-10 training images in [0, 1] (NCHW) and labels, from ``$JEAT_DATA``."""
    from jeat.data import load_dataset

    ds = load_dataset("cifar10", "train", root)
    x = ds.images[:n].float().div(255)
    return x, ds.labels[:n].clone()


def batches(x, y, batch: int, steps: int, seed: int, augmentation: str = "flip-crop"):
    """``steps`` batches drawn from (x, y) with a fixed generator, augmented once: both sides
    receive these exact tensors (the references' own loaders and transforms are not compared)."""
    from jeat.data.augment import augment

    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        idx = torch.randint(len(x), (batch,), generator=gen)
        out.append((augment(x[idx], augmentation, gen), y[idx]))
    return out


@dataclass
class Diff:
    max_abs: float
    rel: float  # max |a - b| / max |b|

    @classmethod
    def of(cls, a, b) -> Diff:
        a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
        if a.shape != b.shape:  # e.g. a preset whose batch size drifted: a failing row, not a traceback
            return cls(float("inf"), float("inf"))
        d = (a - b).abs().max().item() if a.numel() else 0.0
        scale = b.abs().max().item() if b.numel() else 0.0
        return cls(d, d / scale if scale > 0 else d)


GRAD_FLOOR = 1e-3


def grads_diff(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], name_map: dict[str, str]) -> dict:
    """Largest relative difference over every parameter gradient (``name_map``: reference name ->
    jeat name). Each tensor's difference is divided by the larger of its own largest |gradient| and
    ``GRAD_FLOOR`` x the network's largest: a gradient that is zero in exact arithmetic (a conv bias
    right before batch norm) is rounding noise on both sides, and its own scale would say nothing."""
    missing = [k for k in name_map if name_map[k] not in ours or k not in ref]
    if missing or not name_map:
        raise KeyError(f"no gradient on one side for {missing[:3]} (of {len(name_map)})")
    scale = max(ref[k].abs().max().item() for k in name_map)
    worst, worst_name = 0.0, None
    for ref_name, our_name in name_map.items():
        b = ref[ref_name].double()
        d = (ours[our_name].double() - b).abs().max().item()
        rel = d / max(b.abs().max().item(), GRAD_FLOOR * scale)
        if rel >= worst:
            worst, worst_name = rel, ref_name
    return {"params": len(name_map), "max_rel": worst, "worst": worst_name, "floor": f"{GRAD_FLOOR} x largest"}


@contextlib.contextmanager
def record_backward(losses: list, caller: str):
    """Record the value of every ``loss.backward()`` called from a function named ``caller`` (the
    reference's training loop): its loss, step by step, without touching its code."""
    saved = torch.Tensor.backward

    def backward(self, *a, **k):
        if sys._getframe(1).f_code.co_name == caller:
            losses.append(float(self.detach()))
        return saved(self, *a, **k)

    torch.Tensor.backward = backward
    try:
        yield
    finally:
        torch.Tensor.backward = saved


@contextlib.contextmanager
def seeded_calls(obj, name: str, seeds: list[int], log: list | None = None):
    """Wrap ``obj.name`` so that call i first runs ``torch.manual_seed(seeds[i])``: the reference's
    and jeat's samplers and attacks then draw the same indices and starts. ``log`` gets the outputs."""
    get = obj.__getitem__ if isinstance(obj, dict) else lambda n: getattr(obj, n)
    put = obj.__setitem__ if isinstance(obj, dict) else lambda n, v: setattr(obj, n, v)
    orig = get(name)
    count = {"i": 0}

    def wrapped(*a, **k):
        torch.manual_seed(seeds[count["i"] % len(seeds)])
        np.random.seed(seeds[count["i"] % len(seeds)])
        count["i"] += 1
        out = orig(*a, **k)
        if log is not None:
            log.append(out[0].detach().clone() if isinstance(out, tuple) else out.detach().clone())
        return out

    put(name, wrapped)
    try:
        yield
    finally:
        put(name, orig)


@contextlib.contextmanager
def noise_feed(noises: list[torch.Tensor], scale: float = 1.0):
    """``torch.randn_like`` returns the next of ``noises`` (times ``scale``) while active: the SGLD
    noise tensors of both sides, drawn once by the harness."""
    saved = torch.randn_like
    it = iter(noises)

    def feed(x, *a, **k):
        z = next(it)
        if z.shape != x.shape:
            raise RuntimeError(f"noise feed: shape {tuple(x.shape)} asked, {tuple(z.shape)} prepared")
        return (z * scale).to(x.dtype)

    torch.randn_like = feed
    try:
        yield
    finally:
        torch.randn_like = saved


@dataclass
class Result:
    method: str
    reference: dict
    settings: dict
    checks: dict = field(default_factory=dict)
    shims: list[str] = field(default_factory=list)
    speed: dict = field(default_factory=dict)

    def passed(self) -> bool:
        return all(c.get("pass", False) for c in self.checks.values())


def tol_check(diff: Diff, rtol: float) -> dict:
    return {"max_rel": diff.rel, "max_abs": diff.max_abs, "rtol": rtol, "pass": bool(diff.rel <= rtol)}


def trajectory_check(ours: list[float], ref: list[float], rtol: float) -> dict:
    n = min(len(ours), len(ref))
    rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours[:n], ref[:n], strict=True)]
    worst = int(np.argmax(rel)) if rel else -1
    return {"steps": n, "max_rel": max(rel) if rel else 0.0, "worst_step": worst + 1, "rtol": rtol,
            "pass": bool(n == len(ours) == len(ref) and n > 0 and max(rel) <= rtol),
            "ours": ours, "reference": ref}  # fmt: skip


def jeat_trainer(preset: str, o, arch: str, run_dir: Path, dtype: torch.dtype, state: dict, *,
                 buffer: torch.Tensor | None = None, batch: int | None = None, **method):  # fmt: skip
    """jeat's ``preset`` at the harness's sizes, from the reference's initial ``state`` (already in
    jeat's keys) and replay ``buffer`` (in [-1, 1]), ready for ``train_step``. ``method``: more
    ``cfg.method`` fields (e.g. px_batch_size)."""
    from jeat import get_preset
    from jeat.training.loop import Trainer

    cfg = get_preset(preset)
    cfg.model.arch = arch
    cfg.data.batch_size, cfg.data.root, cfg.data.train_limit, cfg.data.test_limit = batch or o.batch, o.data, 2000, 100
    cfg.method.sgld.buffer_size = o.buffer  # a scale field; reinit_prob stays the preset's (reinit.ReinitFeed)
    cfg.optim.warmup_steps, cfg.optim.milestones, cfg.epochs = o.warmup, (1000,), 1
    cfg.channels_last, cfg.guard.enabled, cfg.tensorboard = o.channels_last, False, False
    cfg.compile = bool(getattr(o, "compile", False))
    cfg.amp = getattr(o, "jeat_amp", "none")  # bf16: drift against the fp32 reference (run.py --jeat-amp)
    cfg.cpu_malloc = jeat_malloc(o)
    for k, v in method.items():
        setattr(cfg.method, k, v)
    tr = Trainer(cfg, run_dir=run_dir, progress=False)
    tr.model.load_state_dict(state)
    tr.model.to(dtype)
    if buffer is not None:
        tr.method.negatives.buffer.x = ((buffer + 1) / 2).to(dtype)
    return tr


def train_jeat(tr, lab: list, px: list | None = None) -> dict:
    """jeat's loop on the harness's CE batches (and data-term batches ``px``): per-step losses, the
    first step's gradients, step timestamps, wall time."""
    losses, grads, times, step = [], {}, [], {"i": 0}
    if px is not None:
        tr.method.px_batch = lambda n: px[step["i"]][0]
    lrs: list[float] = []
    t0 = time.perf_counter()
    with record_grads_at_step(grads, tr.model, 0, times, lrs):
        for i, (xb, yb) in enumerate(lab):
            step["i"] = i
            losses.append(float(tr.train_step(xb, yb)["loss"]))
            after_jeat_step()  # --interleave: the reference's turn
    wall = time.perf_counter() - t0
    buf = getattr(getattr(getattr(tr.method, "negatives", None), "buffer", None), "x", None)
    return {"losses": losses, "grads": grads, "times": times, "wall": wall, "bn": bn_state(tr.model), "lr": lrs,
            "buffer": None if buf is None else buf.detach().clone()}  # fmt: skip


def lr_check(ours: list[float], ref: list[float]) -> dict:
    """(e) the learning rate of every step: the same schedule, warm-up included (exact up to rounding)."""
    return trajectory_check(ours, ref, 1e-12)


def bn_pair(ours: dict, ref_model: torch.nn.Module, rename) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Both sides' running statistics as one vector each, in the reference's order (``rename``: the
    reference's key -> jeat's); None where the model has no BN."""
    ref = bn_state(ref_model)
    if not ref:
        return None
    keys = [(k, rename(k)) for k in ref if rename(k) is not None]  # None: a part jeat does not build
    missing = [k for k, j in keys if j not in ours]
    if missing or not keys:
        raise KeyError(f"BN statistics without a jeat counterpart: {missing[:3] or list(ref)[:3]}")
    return (torch.cat([ours[j].flatten().double() for _, j in keys]),
            torch.cat([ref[k].flatten().double() for k, _ in keys]))  # fmt: skip


def bn_output(ours: dict, control: list[dict], ref_model: torch.nn.Module, rename) -> tuple:
    """``score``'s ``outputs`` entry for the BN statistics a run leaves: jeat's, the reference's, and each
    one-ulp control's (the float32 floor)."""
    return (*bn_pair(ours["bn"], ref_model, rename), [bn_pair(c["bn"], ref_model, rename)[0] for c in control])


def jem_rename(depth: int):
    """A reference key of JEM's family -> jeat's (parameters and buffers alike)."""
    from jeat.models.wrn import from_jem_state_dict

    def rename(key: str) -> str | None:
        mapped = from_jem_state_dict({key: torch.zeros(1)}, depth)
        return next(iter(mapped)) if mapped else None

    return rename


def jem_name_map(model: torch.nn.Module, depth: int) -> dict[str, str]:
    """Reference parameter name -> jeat's, for JEM's family (aliases and unused heads left out)."""
    rename = jem_rename(depth)
    return {n: r for n, _ in model.named_parameters(remove_duplicate=False) if (r := rename(n)) is not None}


def ulp_moved(x: torch.Tensor, seed: int = 11) -> torch.Tensor:
    """``x`` with every entry moved by one ulp of its dtype, up or down at random."""
    up = torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) < 0.5
    return torch.nextafter(x, torch.where(up, x + 1, x - 1))


def one_ulp(batches: list, seed: int = 7) -> list:
    """The same batches with every pixel moved by one float32 ulp, up or down at random: the
    rounding-level change that the fp32 noise floor (``score``'s control) is measured with."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for x, *rest in batches:
        up = torch.rand(x.shape, generator=gen) < 0.5
        out.append((torch.nextafter(x, torch.where(up, x + 1, x - 1)), *rest))
    return out


FLOOR_FACTOR = 10.0
ULP_SEEDS = (7, 11)  # one_ulp's and ulp_moved's seeds of control 0; control k adds k


def control_draws(o) -> range:
    """The one-ulp control runs to make: none outside float32 accuracy runs, else ``--controls``."""
    bf16 = getattr(o, "jeat_amp", "none") == "bf16"  # its floor is the float32 row's, not a bf16 control's
    return range(o.controls if o.dtype == "float32" and not o.speed and not bf16 else 0)


def _floors(controls: list, measure) -> dict:
    """The fp32 noise floor: the largest ``measure`` over the one-ulp control draws (a single draw
    is itself a noisy estimate of it; ``--controls N`` takes N), and each draw's value."""
    vals = [measure(c) for c in controls]
    return {"fp32_floor": max(vals, default=None), "fp32_floors": vals}


def score(res: Result, o, ours: dict, ref: dict, name_map: dict, images: int, outputs: dict | None = None,
          control: list[dict] | None = None) -> Result:  # fmt: skip
    """Checks (a)-(d) and the speed of one comparison into ``res``. ``outputs``: name -> (jeat's,
    the reference's[, jeat's controls' list]) sampler or attack output, in [0, 1].

    float64: tolerance 1e-9 throughout. float32: ``STEP_RTOL`` (one step) and ``--traj-rtol`` (each
    trajectory step), or ``FLOOR_FACTOR`` x the fp32 noise floor if that is larger. The floor is
    jeat against *itself* with its inputs moved by one ulp (``control``: one dict per draw, each the
    structure of ``ours``; the floor is the largest over the draws):
    samplers and attacks with clips, signs and ReLU kinks turn rounding into different branches,
    and no reordering of the same arithmetic can agree more closely than that."""
    fp32 = o.dtype == "float32"
    rtol, trtol = (STEP_RTOL, o.traj_rtol) if fp32 else (1e-9, 1e-9)

    def tol(base: float, floor: float | None) -> float:
        return base if floor is None else max(base, FLOOR_FACTOR * floor)

    for name, pair in (outputs or {}).items():
        a, b = pair[0], pair[1]
        fl = _floors(pair[2] if len(pair) > 2 else [], lambda c, a=a: Diff.of(c, a).rel)
        res.checks[name] = {**tol_check(Diff.of(a, b), tol(rtol, fl["fp32_floor"])), **fl}
    control = control or []
    fl = _floors(control, lambda c: Diff.of(c["losses"][0], ours["losses"][0]).rel)
    res.checks["loss"] = {**tol_check(Diff.of(ours["losses"][0], ref["losses"][0]), tol(rtol, fl["fp32_floor"])), **fl}
    g = grads_diff(ours["grads"], ref["grads"], name_map)
    same = {v: v for v in name_map.values()}
    fl = _floors(control, lambda c: grads_diff(c["grads"], ours["grads"], same)["max_rel"])
    t = tol(rtol, fl["fp32_floor"])
    res.checks["gradients"] = {**g, "rtol": t, "pass": g["max_rel"] <= t, **fl}
    fl = _floors(control, lambda c: trajectory_check(c["losses"], ours["losses"], trtol)["max_rel"])
    res.checks["trajectory"] = {**trajectory_check(ours["losses"], ref["losses"], tol(trtol, fl["fp32_floor"])), **fl}
    if control:
        res.settings["fp32_controls"] = len(control)  # one-ulp draws the float32 floor is the largest of
    res.speed = speed_record(ref, ours, images)
    return res
