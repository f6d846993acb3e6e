"""Class-conditional generation from a trained classifier: the Python API behind ``jeat generate``.

Samplers (``sampler=``):
    ``ce``        Langevin on CE(x,y) = E(x,y) - E(x)   (JEAT Eq. 16; robust classifiers, Santurkar et al.)
    ``joint``     Langevin on E(x,y)                     (JEAT Eq. 17, Algorithm 1 "Generating")
    ``marginal``  SGLD on E(x), unconditional            (JEM)
    ``combined``  targeted PGD prior + SGLD on E(x,y)    (Robust JEM's combined inference)
Kernels (``kernel=``, for ``joint``, ``marginal`` and the last stage of ``combined``): ``sgld``, plain
Langevin steps; ``pyld``, JEM++'s proximal sampler (``sampling/pyld.py``): ``steps`` outer steps of
``inner_steps`` clipped inner steps each, as its inference code ``eval_jempp.py`` runs it.
Seeds (``seed_dist=``): ``uniform`` U(0,1); ``gaussian`` class-conditional N(mu_y, Sigma_y);
``jempp`` the same Gaussians fitted as JEM++ fits them (``category_mean``: biased covariance, ridge
1e-4 in [-1, 1] units); ``gmm`` per-class Gaussian mixture; ``buffer`` states of the replay buffer
saved in the checkpoint. The Gaussians and the mixture are fitted on the training set once and
cached in the run directory (``seeds-gaussian.safetensors``, ``seeds-gmm-m{M}-r{r}.safetensors``).

Robust JEM's inference (``ROBUST_JEM_INFERENCE``, :func:`paper_inference`): what ``jeat generate``
uses on a robust-jem run unless told otherwise (``inference="auto"``).

>>> res = generate_from_checkpoint("runs/cpu-pgd", sampler="joint", per_class=10, out="runs/cpu-pgd/gen")

Outputs (:func:`save_generation`): ``grid.png`` (one row per class, Fig. 6 style),
``samples.npz`` (``x`` uint8 (N, H, W, C), ``y`` int64 (N,)) and ``traces.json`` (settings,
per-step mean/std of the target energy and of ||grad_x E(x,y)||, ||grad_x E(x)||).
For ``marginal`` the labels in ``samples.npz`` are the model's predictions on the samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from ..training.checkpoint import atomic_write_json
from .combined import ROBUST_JEM_INFERENCE_EPS, combined_inference
from .grid import class_grid, image_grid, save_png, save_samples
from .langevin import LangevinTrace, langevin
from .pyld import pyld
from .seeding import SEED_DISTS, SeedFn, seed_fn

# dat: DAT's sampler (xuwangyin/DAT generate_images): `steps` l_2 PGD steps of `step_size` along the unit
# gradient of f(x)[y] = -E(x, y), clamped to [0, 1], no noise (their FID setting: 33 steps of 0.2 from seeds).
SAMPLERS = ("ce", "joint", "marginal", "combined", "dat")
KERNELS = ("sgld", "pyld")
INFERENCES = ("auto", "paper", "jeat")

# Robust JEM's inference (robust-jem.md, "Settings"): "We used JEM++ ... m outer loops and n inner loops ...
# n = 300, n = 5 for unconditional inference ... For conditional inference we use m = 50, n = 5 ... For
# inference we use eps_adv = 0.5" (in its [-1, 1] units: 0.25 here), seeds from the "Gaussian mixture
# distribution estimated from the training dataset like in (Yang & Ji, 2021)": the class Gaussians of
# JEM++'s init_from_centers. The sampler's own settings are eval_jempp.py's defaults (sndnyang/JEMPP
# fba6ba5): sgld_lr 1 (outer step 0.25, clip 0.5 on [0, 1]), inner steps clamp(grad_u, -1, 1) (step 0.25,
# clip 0.5: eval_jempp ignores pyld_lr), sgld_std 0.01 (noise 0.005). The paper does not give the prior's
# PGD steps or its contrast factor: those stay jeat's (20 steps of 2.5 eps / steps, contrast 0.9).
_JEMPP_EVAL = {"kernel": "pyld", "inner_steps": 5, "step_size": 0.25, "inner_step_size": 0.25, "inner_clip": 0.5,
               "noise": 0.005, "seed_dist": "jempp"}  # fmt: skip
ROBUST_JEM_INFERENCE = {
    "joint": {**_JEMPP_EVAL, "steps": 50},
    "marginal": {**_JEMPP_EVAL, "steps": 300},
    "combined": {**_JEMPP_EVAL, "steps": 50, "pgd_eps": ROBUST_JEM_INFERENCE_EPS},
}


@dataclass
class GenerateConfig:
    sampler: str = "joint"
    seed_dist: str = "uniform"
    per_class: int = 10
    classes: list[int] | None = None  # None: all classes
    steps: int = 100  # Langevin steps; with kernel=pyld the outer steps m
    step_size: float = 0.25  # JEM's sgld_lr = 1 in its [-1, 1] units (as config.SGLDConfig)
    noise: float = 0.005  # JEM's sgld_std = 0.01 in [-1, 1] units
    kernel: str = "sgld"  # sgld | pyld (JEM++'s proximal sampler)
    inner_steps: int = 5  # pyld: inner steps n per outer step
    inner_step_size: float = 0.25  # pyld: eval_jempp.py's inner step (1 in [-1, 1] units)
    inner_clip: float = 0.5  # pyld: each inner step clipped to +-this per pixel
    clip_grad: float | None = None  # sgld: clip each pixel's step; pyld: the outer step's clip (default 2 x step)
    clamp: bool | None = None  # keep samples in [0, 1]; None: on, except for 'combined' (contrast reduction instead)
    batch_size: int = 100
    seed: int = 0
    components: bool = True  # trace ||grad E(x,y)|| and ||grad E(x)|| separately (Fig. 11-12)
    # combined inference (Robust JEM)
    pgd_eps: float = ROBUST_JEM_INFERENCE_EPS
    pgd_steps: int = 20
    pgd_step_size: float | None = None
    contrast: float | None = 0.9
    # seed distributions
    gmm_components: int = 5
    gmm_rank: int = 16

    def validate(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose {', '.join(SAMPLERS)}")
        if self.seed_dist not in SEED_DISTS:
            raise ValueError(f"unknown seed distribution {self.seed_dist!r}; choose {', '.join(SEED_DISTS)}")
        if self.kernel not in KERNELS:
            raise ValueError(f"unknown kernel {self.kernel!r}; choose {', '.join(KERNELS)}")
        if self.kernel == "pyld" and self.sampler in ("ce", "dat"):
            raise ValueError(f"the pyld kernel samples joint, marginal or combined, not {self.sampler}")
        if self.inner_steps < 0 or self.inner_clip <= 0:
            raise ValueError("inner_steps must be >= 0 and inner_clip > 0")
        if self.clamp is None:
            self.clamp = self.sampler != "combined"
        if self.per_class < 1 or self.batch_size < 1 or self.steps < 0:
            raise ValueError("per_class and batch_size must be >= 1 and steps >= 0")


@dataclass
class GenerationResult:
    x: Tensor  # float (N, C, H, W), on the CPU; may leave [0, 1] when clamping is off
    y: Tensor  # int64 (N,): the requested class (predicted class for 'marginal')
    seed_y: Tensor  # int64 (N,): the class each chain was started for
    trace: LangevinTrace | None
    config: GenerateConfig
    extra: dict = field(default_factory=dict)  # e.g. combined inference's target probabilities, timing

    def traces_dict(self) -> dict:
        return {"config": asdict(self.config), **self.extra, **(self.trace.to_dict() if self.trace else {})}


# ------------------------------------------------------------------ sampling
def generate(model: nn.Module, num_classes: int, image_shape: tuple[int, ...], cfg: GenerateConfig,
             seeds: SeedFn | None = None, device: str | torch.device = "cpu",
             progress: bool = False) -> GenerationResult:  # fmt: skip
    """Draw ``cfg.per_class`` samples of each class with ``cfg.sampler`` in batches of ``cfg.batch_size``.

    The global RNG is seeded with ``cfg.seed`` inside a fork (the caller's RNG state is kept), so
    reruns with the same settings are identical on the same device.
    """
    cfg.validate()
    device = torch.device(device)
    classes = list(range(num_classes)) if cfg.classes is None else list(cfg.classes)
    if any(not 0 <= c < num_classes for c in classes):
        raise ValueError(f"classes must lie in [0, {num_classes}), got {classes}")
    seed_y = torch.tensor(classes, dtype=torch.long).repeat_interleave(cfg.per_class)
    if seeds is None:
        gen = torch.Generator().manual_seed(cfg.seed)
        seeds = lambda y: torch.rand((len(y), *image_shape), generator=gen)  # noqa: E731
    was_training = model.training
    model.eval()
    # Chains in the model's precision (float64 for the parity checks): a float32 seed would round every step.
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    batches = [seed_y[i : i + cfg.batch_size] for i in range(0, len(seed_y), cfg.batch_size)]
    xs, traces, probs = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(batches) * cfg.steps, desc=f"generate ({cfg.sampler})", unit="step")
    on_step = (lambda t, x: bar.update(1)) if bar is not None else None
    t0 = time.perf_counter()
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(cfg.seed)
        for yb in batches:
            x0 = seeds(yb).to(device, dtype)
            yd = yb.to(device)
            if cfg.sampler == "combined":
                last = (lambda x, y: _pyld(model, x, y, cfg, on_step)) if cfg.kernel == "pyld" else None
                x, tr, st = combined_inference(
                    model, x0, yd, cfg.pgd_eps, cfg.pgd_steps, cfg.pgd_step_size, cfg.contrast, cfg.steps,
                    cfg.step_size, cfg.noise, cfg.clip_grad, cfg.clamp, True, cfg.components, on_step, last,
                )  # fmt: skip
                probs.append(torch.tensor([st.p_seed, st.p_prior, st.p_final]) * len(yb))
            elif cfg.sampler == "dat":
                from ..attacks.dat import dat_attack

                x, tr = dat_attack(model, x0, yd, cfg.steps, cfg.step_size, None, "conditional"), None
            else:
                y_arg = None if cfg.sampler == "marginal" else yd
                # For 'marginal' the requested class still gives E(x,y)'s gradient norm in the trace.
                x, tr = _sample(model, x0, y_arg, yd, cfg, on_step)
            xs.append(x.cpu())
            traces.append(tr)
    if bar is not None:
        bar.close()
    x = torch.cat(xs)
    extra: dict = {"num_samples": len(x), "seconds": round(time.perf_counter() - t0, 3), "device": str(device)}
    if probs:
        p = torch.stack(probs).sum(0) / len(x)
        extra["prior"] = {"p_target_seed": p[0].item(), "p_target_prior": p[1].item(), "p_target_final": p[2].item()}
    traces = [t for t in traces if t is not None]
    trace = LangevinTrace.merge(traces, [len(b) for b in batches]) if traces and cfg.steps > 0 else None
    with torch.no_grad():
        preds = torch.cat([model(xb.to(device).clamp(0, 1)).argmax(1).cpu() for xb in x.split(cfg.batch_size)])
    if cfg.sampler == "marginal":
        y = preds
        extra["labels"] = "predicted"
    else:
        y = seed_y
        extra["accuracy_on_samples"] = (preds == seed_y).float().mean().item()  # does the model see class y?
    model.train(was_training)
    return GenerationResult(x, y, seed_y, trace, cfg, extra)


def _pyld(model, x0, y, cfg: GenerateConfig, on_step):
    """JEM++'s proximal sampler (no per-step trace: one forward per outer step is all it computes)."""
    x = pyld(model, x0, y, cfg.steps, cfg.inner_steps, cfg.step_size, cfg.inner_step_size, cfg.inner_clip,
             cfg.noise, cfg.clip_grad)  # fmt: skip
    if on_step is not None:
        for k in range(cfg.steps):
            on_step(k, x)
    return x, None


def _sample(model, x0, y_arg, y_req, cfg: GenerateConfig, on_step):
    if cfg.kernel == "pyld":
        return _pyld(model, x0, y_arg, cfg, on_step)
    if cfg.sampler != "marginal" or not cfg.components:
        return langevin(model, x0, y_arg, cfg.sampler, cfg.steps, cfg.step_size, cfg.noise, cfg.clip_grad, cfg.clamp,
                        True, components=cfg.components, on_step=on_step)  # fmt: skip
    # Unconditional sampling with a component trace: pass the seed class only so that
    # ||grad E(x, y)|| can be recorded; the update uses E(x) alone.
    return langevin(model, x0, y_req, "marginal", cfg.steps, cfg.step_size, cfg.noise, cfg.clip_grad, cfg.clamp,
                    True, components=True, on_step=on_step)  # fmt: skip


def save_generation(result: GenerationResult, out_dir: str | Path, class_names: list[str] | None = None,
                    grid_cols: int = 10, scale: int = 1) -> dict[str, Path]:  # fmt: skip
    """Write ``grid.png``, ``samples.npz`` and ``traces.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    k = int(result.seed_y.max()) + 1 if len(result.seed_y) else 0
    cols = min(grid_cols, result.config.per_class)
    if result.config.sampler == "marginal":
        img = image_grid(result.x[: cols * max(k, 1)], cols)
    else:
        img = class_grid(result.x, result.seed_y, k, cols)
    paths = {"grid": save_png(img, out / "grid.png", scale), "samples": save_samples(out / "samples.npz", result.x,
             result.y)}  # fmt: skip
    info = result.traces_dict()
    if class_names is not None:
        info["class_names"] = list(class_names)
    paths["traces"] = atomic_write_json(out / "traces.json", info)
    return paths


def generate_from_checkpoint(
    checkpoint: str | Path,
    out: str | Path | Callable[[GenerateConfig], Path] | None = None,
    data: str | Path | None = None,
    device: str = "cpu",
    progress: bool = False,
    grid_cols: int = 10,
    scale: int = 1,
    weights: str = "auto",
    inference: str = "auto",
    **kw,
) -> GenerationResult:
    """Load a run directory / checkpoint, generate with :class:`GenerateConfig` fields ``**kw``,
    and (with ``out``) save the outputs. Mirrors ``jeat generate``. ``inference``: ``paper`` fills the
    fields not in ``kw`` from Robust JEM's published inference (:data:`ROBUST_JEM_INFERENCE`), ``jeat``
    from :class:`GenerateConfig`'s defaults, ``auto`` the first on a robust-jem run, else the second."""
    from ..loading import apply_run_malloc, load_trained

    if inference not in INFERENCES:
        raise ValueError(f"unknown inference {inference!r}; choose {', '.join(INFERENCES)}")
    GenerateConfig(**kw).validate()  # bad settings fail before the model loads
    dev = _resolve_device(device)
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        trained = load_trained(checkpoint, device=dev, weights=weights)  # building the model draws initial weights
    apply_run_malloc(trained, dev)
    method = trained.config.method.name if trained.config is not None else None
    cfg, from_paper = paper_inference(kw, inference == "paper" or inference == "auto" and method == "robust-jem")
    cfg.validate()
    model = trained.model
    k = len(trained.class_names)
    shape = _image_shape(trained)
    method_state = (trained.checkpoint or {}).get("method") if cfg.seed_dist == "buffer" else None
    imported = trained.run_dir / "replay_buffer.safetensors"  # written by `jeat import`
    if cfg.seed_dist == "buffer" and trained.checkpoint is None:
        if not imported.is_file():
            raise ValueError(f"{trained.path} is a weights-only file; --seed-dist buffer needs a checkpoint.pt "
                             "or an imported replay_buffer.safetensors")  # fmt: skip
        method_state = {"buffer": load_file(str(imported))}
    seeds = seed_fn(
        cfg.seed_dist, shape, k, run_dir=trained.run_dir, data=lambda: _train_set(trained, data),
        method_state=method_state, gmm_components=cfg.gmm_components, gmm_rank=cfg.gmm_rank,
        generator=torch.Generator().manual_seed(cfg.seed),
    )  # fmt: skip
    res = generate(model, k, shape, cfg, seeds, dev, progress)
    res.extra["checkpoint"] = str(trained.path)
    res.extra["weights"] = trained.weights
    res.extra["inference"] = "paper (Robust JEM)" if from_paper is not None else "jeat"
    if from_paper is not None:  # which settings the paper gave, and which the user set
        res.extra["settings_from_paper"] = from_paper
        res.extra["settings_given"] = sorted(kw)
    if out is not None:  # a folder, or a function of the settings that were used
        save_generation(res, out(cfg) if callable(out) else out, trained.class_names, grid_cols, scale)
    return res


def paper_inference(kw: dict, paper: bool) -> tuple[GenerateConfig, list[str] | None]:
    """The generation settings: ``kw`` over Robust JEM's published inference for ``kw["sampler"]`` (with
    ``paper``; samplers the paper does not use keep jeat's defaults) and the names the paper set, or ``kw``
    over :class:`GenerateConfig`'s defaults and None."""
    if not paper:
        return GenerateConfig(**kw), None
    published = ROBUST_JEM_INFERENCE.get(kw.get("sampler", GenerateConfig.sampler), {})
    from_paper = sorted(k for k in published if k not in kw)
    return GenerateConfig(**{**published, **kw}), from_paper


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _image_shape(trained) -> tuple[int, int, int]:
    ck = trained.checkpoint
    if ck is not None and "image_shape" in ck:
        return tuple(int(v) for v in ck["image_shape"])
    c = trained.model.in_channels
    return (c, 32, 32)  # weights-only files do not record the image size; CIFAR's


def _train_set(trained, data_root: str | Path | None):
    """The images the run trained on (its validation split left out): seeds are fitted on them."""
    from ..data import load_dataset
    from ..data.split import training_part

    dc = trained.config.data
    full = load_dataset(dc.name, "train", root=data_root or dc.root, image_size=dc.image_size)
    return training_part(full, trained.run_dir)


def read_traces(path: str | Path) -> dict:
    """Read a ``traces.json`` (a file or the directory holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "traces.json"
    return json.loads(p.read_text())
