"""Where bf16 autocast moves an EBM training step: the sampler, the loss, or both (issue 38).

    python benchmarks/precision/bf16_error.py --run ../runs/leaderboard/jem-fp32-s0 --data ../shared/data

One training step of a trained run (its weights and its replay buffer, from RUN/checkpoint.pt) is
computed under five precision policies from identical RNG state (the same buffer draw, restarts and
SGLD noise) and compared with the same step in float64:

- ``fp32``: no autocast (the floor: fp32 rounding alone);
- ``bf16``: the whole step under bf16 autocast (``amp=bf16``: SGLD chains and loss);
- ``bf16-sampler``: only the SGLD chains under bf16, the loss's forwards and backward in fp32;
- ``bf16-loss``: only the loss (data and negatives' energies, CE, backward) under bf16, the chains in fp32;
- ``fp64-other-noise``: float64 with another draw of the SGLD noise (same batch, buffer draw and restarts):
  how much the step moves from the sampler's own randomness, the scale the others are read against.

For each policy, over ``--repeats`` steps (different batches and noise): the relative error of the
parameter gradient, ||g - g64|| / ||g64||, its cosine with g64, the relative error of the loss's
two halves (CE, and the contrastive E(x_data) - E(x~)), and how far the chains end from the float64
chains (relative to their norm). A policy whose error sits near fp32's floor leaves
the step as fp32 computes it; the largest error names the part of the step that bf16 disturbs most.
This is one step, not training: whether the difference changes what a run learns is the precision
study's question (benchmarks/results/precision_cpu.md). Result: benchmarks/results/bf16_error.json.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from shared import ROOT  # noqa: E402

from jeat.atomic import atomic_write_text  # noqa: E402
from jeat.config import TrainConfig  # noqa: E402
from jeat.data import load_dataset  # noqa: E402
from jeat.loading import load_trained  # noqa: E402
from jeat.methods import build_method  # noqa: E402
from jeat.training.checkpoint import load_checkpoint  # noqa: E402

POLICIES = {  # name -> (sampler in bf16, loss in bf16)
    "fp32": (False, False),
    "bf16": (True, True),
    "bf16-sampler": (True, False),
    "bf16-loss": (False, True),
    "fp64-other-noise": (False, False),
}
OTHER_NOISE = "fp64-other-noise"
PGD = importlib.import_module("jeat.attacks.pgd")  # the module (the package's ``pgd`` is the function)
RECORD = ROOT / "benchmarks" / "results" / "bf16_error.json"


def _autocast(on: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=on)


@contextlib.contextmanager
def float32_noise(seed: int):
    """SGLD noise from its own generator, drawn in float32 whatever the chains' dtype, and the attacks'
    random starts drawn in float32: torch's float64 draws are other streams (and a float64 ``uniform_``
    advances the global generator differently, so the buffer draw after an attack would differ too);
    without this the float64 reference would walk other chains."""
    saved, saved_start = torch.randn_like, PGD.random_start_in_ball
    gen = torch.Generator().manual_seed(seed)

    def draw(x, **kw):
        return torch.randn(x.shape, generator=gen, dtype=torch.float32).to(x.dtype)

    def start(x, eps, norm):  # the attacks' random start, too: a float64 uniform_ uses the stream differently
        return saved_start(x.float(), eps, norm).to(x.dtype)

    torch.randn_like, PGD.random_start_in_ball = draw, start
    try:
        yield
    finally:
        torch.randn_like, PGD.random_start_in_ball = saved, saved_start


def one_step(run: Path, cfg: TrainConfig, train, x, y, dtype, sampler_bf16: bool, loss_bf16: bool, seed: int,
             noise_seed: int):  # fmt: skip
    """Loss parts, flat parameter gradient and final chains of one step (model in train mode, as in training)."""
    model = load_trained(run, weights="raw").model.to(dtype).train()
    method = build_method(cfg, model, train, "cpu")
    method.load_state_dict(load_checkpoint(run / "checkpoint.pt")["method"])
    method.negatives.buffer.x = method.negatives.buffer.x.to(dtype)
    chains = {}
    sample = method.negatives.sample

    def sample_at_policy(net, n):
        # nested autocast: the inner context decides for the chains, whatever the loss runs under
        with _autocast(sampler_bf16):
            out = sample(net, n)
        chains["x"] = out[0].detach().double()
        return out

    method.negatives.sample = sample_at_policy
    torch.manual_seed(seed)  # the buffer draw and its restarts
    with float32_noise(noise_seed), _autocast(loss_bf16):
        loss, metrics = method.loss(model, x.to(dtype), y)
    loss.backward()
    grad = torch.cat([p.grad.double().flatten() for p in model.parameters() if p.grad is not None])
    parts = {k: float(v) for k, v in metrics.items() if k in ("ce", "energy_gap", "energy_x_data", "energy_x_neg")}
    return grad, chains["x"], parts


def compare(run: Path, data: str, batch: int, repeats: int) -> dict:
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
    cfg.data.root = data
    train = load_dataset(cfg.data.name, "train", data, False, cfg.data.test_file, cfg.data.image_size)
    out: dict[str, dict[str, list[float]]] = {p: {} for p in POLICIES}
    g = torch.Generator().manual_seed(0)
    for r in range(repeats):
        idx = torch.randperm(len(train.labels), generator=g)[:batch]
        x, y = train.images[idx].float() / 255.0, train.labels[idx].long()
        g64, x64, p64 = one_step(run, cfg, train, x, y, torch.float64, False, False, r, r)
        for name, (s_bf16, l_bf16) in POLICIES.items():
            if name == OTHER_NOISE:  # the estimator's own spread: float64, another SGLD noise draw
                grad, xk, parts = one_step(run, cfg, train, x, y, torch.float64, False, False, r, r + 1000)
            else:
                grad, xk, parts = one_step(run, cfg, train, x, y, torch.float32, s_bf16, l_bf16, r, r)
            rec = out[name]
            rec.setdefault("grad_rel_err", []).append(float((grad - g64).norm() / g64.norm()))
            rec.setdefault("grad_cosine", []).append(float(torch.nn.functional.cosine_similarity(grad, g64, dim=0)))
            rec.setdefault("chain_end_rel_err", []).append(float((xk - x64).norm() / x64.norm()))
            for k, v in parts.items():
                rec.setdefault(f"{k}_abs_err", []).append(abs(v - p64[k]))
    return {name: {k: {"mean": statistics.fmean(v), "sd": statistics.stdev(v) if len(v) > 1 else 0.0}
                   for k, v in rec.items()} for name, rec in out.items()}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a trained EBM run directory (weights and buffer)")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    res = compare(a.run, a.data, a.batch, a.repeats)
    record = json.loads(RECORD.read_text()) if RECORD.exists() else {}
    record[a.run.name] = {"run": str(a.run), "batch": a.batch, "repeats": a.repeats, "policies": res}
    atomic_write_text(RECORD, json.dumps(record, indent=1) + "\n")
    for name, rec in res.items():
        print(name, {k: f"{v['mean']:.3g} ± {v['sd']:.2g}" for k, v in rec.items()})


if __name__ == "__main__":
    main()
