"""DDP on CPU: 2 gloo processes match one process with the same global batch.

The model is ``jem-cnn-small`` (no BatchNorm): under DDP each rank normalises its own half of
the batch, so a BN model is *not* expected to match a single process (docs/SCALE.md). Data
augmentation is off because its random draws are per rank. Everything is fp32.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import counting_method

from jeat import get_preset
from jeat.energy import marginal_energy
from jeat.methods import METHODS, register_method
from jeat.methods.standard import Standard
from jeat.sampling import ReplayBuffer, langevin
from jeat.training import load_checkpoint
from jeat.training.distributed import resplit_state

REPO = Path(__file__).resolve().parents[1]


def _npz(root: Path, n_train: int = 64, n_test: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        x = rng.integers(0, 256, (n, 12, 12, 3), dtype=np.uint8)
        y = (np.arange(n) % 4).astype(np.int64)
        root.mkdir(parents=True, exist_ok=True)
        np.savez(root / f"{name}.npz", x=x, y=y)
    return root


def _cfg(data: Path, out: Path, batch: int, method: str = "standard"):
    cfg = get_preset("tiny")
    cfg.device, cfg.amp, cfg.channels_last, cfg.compile = "cpu", "none", False, False
    cfg.out_dir = str(out)
    cfg.data.name, cfg.data.root, cfg.data.augment = "npz", str(data), "none"
    cfg.data.batch_size, cfg.data.eval_batch_size = batch, 32
    cfg.data.train_limit = cfg.data.test_limit = None
    cfg.data.valid_size = 0  # every image trains: the equivalence checks count steps
    cfg.model.arch = "jem-cnn-small"
    cfg.log_every, cfg.eval_robust_n, cfg.epochs = 1, 0, 2
    cfg.optim.lr = 0.05
    cfg.method.name = method
    cfg.method.sgld.buffer_size, cfg.method.sgld.steps = 16, 2
    return cfg


class ToyJEM(Standard):
    """A JEM-shaped method for the test (independent of methods/): SGLD from a replay buffer
    through the (DDP) model, then CE + E(x) - E(x_sgld) in one backward."""

    name = "test-toy-jem"

    def __init__(self, cfg, model, train_set, device):
        super().__init__(cfg, model, train_set, device)
        s = self.mcfg.sgld
        shape = tuple(train_set.shape)
        self.buffer = ReplayBuffer(s.buffer_size, shape, self.num_classes,
                                   lambda n, y: torch.rand((n, *shape)), device)  # fmt: skip

    def loss(self, model, x, y):
        loss, metrics = super().loss(model, x, y)
        x0, idx, _ = self.buffer.sample(len(x), self.mcfg.sgld.reinit_prob)
        xs, _ = langevin(model, x0, steps=self.mcfg.sgld.steps, step_size=1.0, noise=0.01)
        self.buffer.push(xs, idx)
        px = marginal_energy(model(x)).mean() - marginal_energy(model(xs)).mean()
        return loss + 0.1 * px, metrics

    def state_dict(self):
        return {"buffer": self.buffer.state_dict(), "calls": torch.tensor(3)}

    def load_state_dict(self, state):
        self.buffer.load_state_dict(state["buffer"])


class RankFault(counting_method()):
    """A non-finite loss on rank 1 only, at its third step: the guard sees the mean over ranks, so
    both ranks must trigger, roll back to the same checkpoint and go on together."""

    name = "test-rank-fault"

    def corrupt(self, loss, metrics):
        import torch.distributed as dist

        if self.calls == 3 and dist.is_initialized() and dist.get_rank() == 1:
            loss = loss * float("nan")
            metrics["loss"] = loss.detach()
        return loss, metrics


for _m in (ToyJEM, RankFault):
    if _m.name not in METHODS:
        register_method(_m)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, jobs: list[tuple[dict, str, int, bool]]):
    """One process of the gloo group: run every job (config, run dir, max_steps, resume) in turn.
    The group is created here, so ``train()`` joins it instead of owning it."""
    import torch.distributed as dist

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))  # fmt: skip
    torch.set_num_threads(1)
    from jeat.config import TrainConfig
    from jeat.training import train

    for m in (ToyJEM, RankFault):
        if m.name not in METHODS:
            register_method(m)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for cfg, run_dir, max_steps, resume in jobs:
            train(TrainConfig.from_dict(cfg), run_dir=run_dir, resume=resume, progress=False, max_steps=max_steps)
    finally:
        dist.destroy_process_group()


def _spawn(jobs: list[tuple], world: int = 2) -> None:
    jobs = [(cfg.to_dict(), str(run), steps, resume) for cfg, run, steps, resume in jobs]
    mp.start_processes(_worker, args=(world, _free_port(), jobs), nprocs=world, join=True, start_method="spawn")


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory):
    """All 2-rank gloo runs of this module in one process group (process start-up dominates)."""
    tmp = tmp_path_factory.mktemp("ddp")
    data = _npz(tmp / "data")
    toy = _cfg(data, tmp, 8, method=ToyJEM.name)
    fault = _cfg(data, tmp, 8, method=RankFault.name)
    fault.checkpoint_every, fault.guard.check_every = 2, 1
    _spawn([
        (fault, tmp / "rollback", None, False),
        (_cfg(data, tmp, 8), tmp / "ddp", 3, False),  # 2 ranks x 8 = a global batch of 16
        (toy, tmp / "toy", 2, False),
        (toy, tmp / "toy", 4, True),  # resume at the same world size
    ])  # fmt: skip
    return tmp, data


def _losses(run_dir: Path) -> list[float]:
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln]
    return [r["loss"] for r in rows if r["kind"] == "step"]


def test_two_gloo_ranks_match_one_process(ddp_runs):
    from jeat.training import train

    tmp, data = ddp_runs
    steps = 3
    single, ddp = tmp / "single", tmp / "ddp"
    train(_cfg(data, tmp, 16), run_dir=single, progress=False, max_steps=steps)

    a, b = load_checkpoint(single / "checkpoint.pt"), load_checkpoint(ddp / "checkpoint.pt")
    assert a["global_step"] == b["global_step"] == steps
    assert b["dist"]["world_size"] == 2
    la, lb = _losses(single), _losses(ddp)
    assert len(la) == len(lb) == steps
    np.testing.assert_allclose(lb, la, rtol=1e-5, atol=1e-6)
    for k, v in a["model"].items():
        torch.testing.assert_close(b["model"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    assert not any(p.name.startswith(".") for p in ddp.iterdir()), "stray temp files"


def test_per_rank_buffers_checkpoint_and_resume_across_world_sizes(ddp_runs):
    from jeat.training import Trainer

    tmp, data = ddp_runs
    run = tmp / "toy"
    ck = load_checkpoint(run / "checkpoint.pt")
    assert ck["global_step"] == 4  # resumed at step 2 on the same 2 ranks, stopped at 4
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]  # the resumed run continued the log without duplicates
    buf0, buf1 = ck["method"]["buffer"]["x"], ck["dist"]["method"][0]["buffer"]["x"]
    assert buf0.shape == buf1.shape == (8, 3, 12, 12)  # 16 chains in total, 8 per rank
    assert not torch.equal(buf0, buf1)  # per-rank seeds: different chains
    rngs = ck["dist"]["rng"]
    assert len(rngs) == 2 and not torch.equal(rngs[0]["torch"], rngs[1]["torch"])

    # World size 2 -> 1: the single process resumes with all 16 chains of both ranks.
    t = Trainer(_cfg(data, tmp, 8, method=ToyJEM.name), run_dir=run, resume=True, progress=False)
    assert torch.equal(t.method.buffer.x, torch.cat([buf0, buf1]))
    assert t.global_step == 4


def test_ranks_roll_back_together(ddp_runs):
    tmp, _ = ddp_runs
    run = tmp / "rollback"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "recovered" and summary["steps"] == 8 and summary["epochs"] == 2
    (ev,) = summary["guard"]["events"]
    assert (ev["reason"], ev["step"], ev["to_step"], ev["action"]) == ("nonfinite", 3, 2, "rollback-lr")
    ck = load_checkpoint(run / "checkpoint.pt")
    assert ck["global_step"] == 8 and all(torch.isfinite(v).all() for v in ck["model"].values())
    rows = map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
    steps = [r["step"] for r in rows if r["kind"] == "step"]
    assert steps == list(range(1, 9))


def test_resplit_state_pools_and_splits():
    lab = torch.arange(4) % 2
    s = [{"b": {"x": torch.arange(4.0).view(4, 1), "labels": lab}, "n": torch.tensor(1)},
         {"b": {"x": torch.arange(4.0, 8).view(4, 1), "labels": lab}, "n": torch.tensor(2)}]  # fmt: skip
    one = resplit_state(s, {"b": {"x": torch.zeros(8, 1), "labels": torch.zeros(8, dtype=torch.long)},
                            "n": torch.tensor(0)}, 0, 1)  # fmt: skip
    assert one["b"]["x"].flatten().tolist() == list(range(8)) and one["n"].item() == 1
    assert one["b"]["labels"].tolist() == [0, 1] * 4
    tmpl = {"b": {"x": torch.zeros(2, 1), "labels": torch.zeros(2, dtype=torch.long)}, "n": torch.tensor(0)}
    parts = [resplit_state(s, tmpl, r, 4)["b"]["x"].flatten().tolist() for r in range(4)]
    assert parts == [[0, 1], [2, 3], [4, 5], [6, 7]]
    with pytest.raises(ValueError, match="re-split"):
        resplit_state(s, {"b": {"x": torch.zeros(8, 2)}}, 0, 1)


def test_torchrun_cli(tmp_path):
    """`torchrun --nproc_per_node 2 -m jeat train` end to end with a BatchNorm model (the tiny
    preset's cnn-small): the trainer owns the group, rank 0 writes, the test accuracy is sharded, both
    ranks hold out the same validation split."""
    data = _npz(tmp_path / "data", n_train=80)  # 16 held out leave 64
    # --standalone: torchrun binds a free port itself (a port found free here can be taken before it binds)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "jeat", "train", "--preset", "tiny", "--dataset", "npz", "--data", str(data),
           "--device", "cpu", "--batch-size", "8", "--out", str(tmp_path / "runs"),
           "--name", "tr", "--no-progress", "--set", "data.test_limit=none", "--set", "data.train_limit=none",
           "--set", "log_every=2", "--set", "data.valid_size=16"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run = tmp_path / "runs" / "tr"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 64 // 16 and summary["test_acc"] is not None and summary["valid_images"] == 16
    assert len(json.loads((run / "split.json").read_text())["valid_indices"]) == 16
    assert r.stdout.count('"steps"') == 1  # the summary is printed by rank 0 only
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) + 1  # step lines + one epoch line
