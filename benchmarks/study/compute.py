"""Network passes per training image, counted, for every model of the study (issue 37's compute axis).

    python benchmarks/study/compute.py --data ../shared/data [--steps 12]

A method's cost is not its images seen: PGD-AT runs the network 11 times per image (10 attack steps and
the training pass), JEM runs its SGLD chains on top. The figure of docs/RESULTS.md puts every model on
one axis, images seen x passes per image, and this script measures the second factor instead of
deriving it from each method's settings: it trains each study model for ``--steps`` optimizer steps
from its preset (the study's overrides included) and counts, at PyTorch's dispatcher, the images that
enter the network's stem, i.e. every ``aten.convolution`` whose input has the data's channel count.
Every forward pass, the training one, the attack's and SGLD's, with or without folded BatchNorm, goes
through the stem exactly once, and no other convolution of these models sees 3 channels.
The count starts after the first step (buffer and seed set-up are once per run, not per image);
backward passes are not counted (each forward here has one). Result:
benchmarks/results/study_compute.json, read by study_report.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # study_plan.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402
from study_plan import MODELS, SCALES, models_of, planned_config, preset_of  # noqa: E402

from jeat.atomic import atomic_write_text  # noqa: E402
from jeat.overrides import apply_override  # noqa: E402
from jeat.presets import get_preset  # noqa: E402
from jeat.training.loop import Trainer  # noqa: E402

RECORD = ROOT / "benchmarks" / "results" / "study_compute.json"
PAPER_RECORD = RECORD.with_name("study_compute_paper.json")  # read by paper_cost.py


class StemCounter(TorchDispatchMode):
    """Images through the stem: the batch size of every convolution that reads ``channels`` channels.
    Counted as the ops run (a profiler's event list held 23 GB for a few JEAT steps)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels, self.images = channels, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten.convolution.default and args[0].dim() == 4 and args[0].shape[1] == self.channels:
            self.images += args[0].shape[0]
        return func(*args, **(kwargs or {}))


def paper_preset(model: str) -> str:
    """The paper-scale preset of a study model (cpu-X -> paper-X)."""
    return preset_of(model, "paper")[0]


CPU_SCALES = sorted(k for k, v in SCALES.items() if v["presets"] == "cpu")  # --paper counts the paper scale's


def config(model: str, data: str, scale: str, paper: bool = False):
    # paper-jem is JEM as published already: the plan's changes are to the cpu presets
    cfg = get_preset(paper_preset(model)) if paper else planned_config(model)
    sets = [f"data.root={data}", f"data.train_limit={SCALES[scale]['train_limit']}", "eval_robust_n=0",
            "amp=none", "guard.policy=warn"]  # fmt: skip
    if paper:  # a pass is a pass whatever the network: count the paper's method on a small one of its family
        arch = "jem-cnn-small" if cfg.model.arch.startswith("jem-") else "cnn-small"
        sets += [f"model.arch={arch}", "data.valid_size=0", "data.train_limit=2048", "channels_last=false"]
    for s in sets:
        apply_override(cfg, s)
    return cfg


def passes_per_image(model: str, data: str, scale: str, steps: int, paper: bool = False) -> dict:
    cfg = config(model, data, scale, paper)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / model, progress=False)
        counter = StemCounter(trainer.train_set.shape[0])
        try:
            trainer.fit(max_steps=1)  # set-up (buffer, seeds, first chains) is once per run
            with counter:
                trainer.fit(max_steps=1 + steps)
        finally:
            trainer.close()
    images = counter.images
    batch = cfg.data.batch_size
    rec = {"preset": paper_preset(model) if paper else MODELS[model][0], "method": cfg.method.name, "batch": batch,
           "steps": steps, "stem_images": images, "passes_per_image": images / (steps * batch)}  # fmt: skip
    if paper:
        paper_cfg = get_preset(rec["preset"])
        rec.update(arch=paper_cfg.model.arch, epochs=paper_cfg.epochs, valid_size=paper_cfg.data.valid_size)
    return rec


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--scale", choices=CPU_SCALES, default="small")
    p.add_argument("--steps", type=int, default=12)
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        choices=list(MODELS),
        help="default: every model the scale trains (the paper scale's with --paper)",
    )
    p.add_argument("--paper", action="store_true", help="the paper-* presets' passes (on a small network of the "
                   "same family) -> study_compute_paper.json, for the GPU-hours of docs/RESULTS.md")  # fmt: skip
    a = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    dest = PAPER_RECORD if a.paper else RECORD
    record = json.loads(dest.read_text()) if dest.exists() else {}
    for m in a.models or models_of("paper" if a.paper else a.scale):
        record[m] = passes_per_image(m, a.data, a.scale, a.steps, a.paper)
        print(m, json.dumps(record[m]), flush=True)
        atomic_write_text(dest, json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
