"""Python API behind `jeat evaluate`: load a checkpoint, run suites, write metrics.json and report.md.

>>> evaluate("runs/cpu-pgd", suites=["robustness"], n=1000)
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import Tensor

from ..data import load_dataset
from ..data.split import load_split
from .common import EvalContext
from .report import save_metrics, write_report
from .suites import get_suite, parse_suites


def resolve_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def run_buffer(trained) -> Tensor:
    """The replay-buffer states of a run (its checkpoint, or an imported replay_buffer.safetensors)."""
    from ..sampling.seeding import find_buffer
    from ..training.checkpoint import read_safetensors

    imported = trained.run_dir / "replay_buffer.safetensors"
    if trained.checkpoint is None and imported.is_file():
        return read_safetensors(imported)["x"]
    return find_buffer((trained.checkpoint or {}).get("method"))["x"]


def evaluate(
    checkpoint: str | Path,
    suites: list[str] | str = "robustness",
    n: int = 1000,
    batch_size: int = 200,
    device: str | None = "auto",
    data: str | None = None,
    test_file: str | None = None,
    out_dir: str | Path | None = None,
    samples: str | Path | None = None,
    seed: int = 0,
    options: dict | None = None,
    progress: bool = True,
    name: str | None = None,
    weights: str = "auto",
    on: str = "test",
) -> dict:
    """Run ``suites`` on the first ``n`` test images (fixed shuffle); returns the merged metrics dict.
    ``weights``: auto | ema | raw (loading.load_trained); the report says which were used. ``on="valid"``
    measures the run's validation split instead (RUN/split.json), the data decisions may read."""
    if on not in ("test", "valid"):
        raise ValueError(f"on must be test or valid, got {on!r}")
    from ..loading import apply_run_malloc, load_trained  # here, not at import: jeat.loading -> training -> evaluation

    dev = resolve_device(device)
    trained = load_trained(checkpoint, device=dev, weights=weights)
    apply_run_malloc(trained, dev)
    cfg = trained.config
    dataset = cfg.data.name if cfg.data.name in ("cifar10", "cifar100", "npz", "folder") else "cifar10"
    root = data or cfg.data.root or None
    test_file = test_file or cfg.data.test_file
    split = load_split(trained.run_dir)
    if on == "valid":
        if split is None:
            raise ValueError(f"{trained.run_dir} has no validation split (split.json): it was trained with "
                             "data.valid_size=0; measure on the test set")  # fmt: skip
        full = load_dataset(dataset, "train", root=root, image_size=cfg.data.image_size)
        test = split.apply(full)[1].subset(n)
    else:
        test = load_dataset(dataset, "test", root=root, test_file=test_file, limit=n)
    out = Path(out_dir) if out_dir else trained.run_dir / "eval"
    out.mkdir(parents=True, exist_ok=True)
    ctx = EvalContext(
        trained.model.eval(),
        test,
        out,
        dev,
        batch_size,
        seed,
        progress,
        root,
        dataset,
        Path(samples) if samples else None,
        dict(options or {}),
        run_dir=trained.run_dir,
    )
    names = parse_suites(suites) if isinstance(suites, str) else list(suites)
    if "fid" in names and str(ctx.opt("fid", "buffer", "")).lower() in ("1", "true", "yes", "on"):
        ctx.buffer = run_buffer(trained)
    results, timing = {}, {}
    for s in names:
        torch.manual_seed(seed)  # each suite reproducible on its own, whatever ran before it
        t0 = time.perf_counter()
        results[s] = get_suite(s)(ctx)
        timing[s] = round(time.perf_counter() - t0, 1)
        if progress:
            print(f"[jeat evaluate] {s} done in {timing[s]:.1f} s")
    header = {
        "checkpoint": str(trained.path),
        "weights": trained.weights,
        "name": name or trained.run_dir.name,
        "method": cfg.method.name,
        "arch": cfg.model.arch,
        "preset": getattr(cfg, "preset", None),
        "device": str(dev),
        "seed": seed,
        "data": {
            "dataset": dataset,
            "root": str(root) if root else None,
            "test_file": test_file,
            "n_test": len(test),
            "on": on,
            "selection": "first n of a fixed (seed 0) shuffle of the "
            + ("validation split (RUN/split.json)" if on == "valid" else "test set"),
            # FID's reference and memorisation's neighbours come from the images the run trained on
            "train_images": f"training set minus the run's validation split (split.json: {len(split.valid)} images)"
            if split
            else "whole training set",
        },
        "batch_size": batch_size,
        "out_dir": str(out),
        "options": dict(options or {}),
        "samples": str(samples) if samples else None,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    prev = (
        json.loads((out / "metrics.json").read_text()).get("timing_s", {}) if (out / "metrics.json").is_file() else {}
    )
    header["timing_s"] = {**prev, **timing}  # suites run earlier into this directory keep their times
    metrics = save_metrics(out, header, results)
    write_report(out, metrics)
    return metrics
