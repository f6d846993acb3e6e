"""Free adversarial training (methods/free.py): the replaying batch stream, the carried perturbation,
one update per replay as locuslab/fast_adversarial's train_free.py does, exact resume."""

from __future__ import annotations

import copy

import torch
from conftest import make_npz_dir, tiny_config

from jeat.data import BatchStream, load_dataset
from jeat.energy import cross_entropy
from jeat.training import Trainer


def _set(tmp_path, n=96):
    return load_dataset("npz", "train", root=make_npz_dir(tmp_path / "d", n_train=n, n_test=16))


def test_replays_repeat_each_batch_and_epochs_count_as_free_at_counts_them(tmp_path):
    data = _set(tmp_path)  # 96 images, batch 8: 12 batches a pass
    plain = BatchStream(data, 8, augmentation="flip-crop", seed=3)
    again = BatchStream(data, 8, augmentation="flip-crop", seed=3, replays=1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(plain.epoch(2), again.epoch(2), strict=True))  # m = 1: as before
    s = BatchStream(data, 8, augmentation="flip-crop", seed=3, replays=4)
    assert len(s) == 12 == len(plain)  # an epoch has a natural epoch's steps: 3 batches x 4 replays
    seen = []
    for e in range(4):  # epochs 0-3: the four slices of pass 0
        batches = list(s.epoch(e))
        for i in range(0, 12, 4):
            assert all(torch.equal(batches[i][0], batches[i + k][0]) for k in range(4))  # the same images 4 times
        seen += [batches[i][0] for i in range(0, 12, 4)]
    firsts = torch.stack([b.flatten() for b in seen])
    assert len({tuple(r[:20].tolist()) for r in firsts}) == 12  # 12 different batches: the whole pass
    assert not torch.equal(next(iter(s.epoch(4)))[0], next(iter(s.epoch(0)))[0])  # pass 1 reshuffles
    mid = list(s.epoch(1, start_step=5))  # resuming inside a replay run reproduces it
    assert all(torch.equal(a[0], b[0]) for a, b in zip(mid, list(s.epoch(1))[5:], strict=True))


def _free_cfg(tmp_path, **kw):
    data = make_npz_dir(tmp_path / "data", n_train=64, n_test=16)
    cfg = tiny_config(data, tmp_path / "runs", name="free", **kw)
    cfg.method.name, cfg.method.free_replays = "free", 2
    cfg.method.attack.eps = cfg.method.attack.step_size = 8 / 255
    cfg.method.attack.random_start = False
    cfg.data.augment = "none"
    cfg.guard.enabled = False
    return cfg


def test_free_matches_the_reference_loop_written_out(tmp_path):
    """train_free.py's inner loop (one forward/backward per replay; delta <- clip(delta + eps sign(grad));
    x + delta clipped to the box; delta carried to the next batch) on the same batches and weights."""
    cfg = _free_cfg(tmp_path, epochs=2)
    t = Trainer(cfg, progress=False)
    model = copy.deepcopy(t.model)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                          weight_decay=cfg.optim.weight_decay)  # fmt: skip
    eps = cfg.method.attack.eps
    delta = torch.zeros(cfg.data.batch_size, 3, 16, 16, requires_grad=True)
    for e in range(cfg.epochs):
        for x, y in t.stream.epoch(e):  # each batch comes free_replays times in a row
            out = model(x + delta[: len(x)])
            loss = cross_entropy(out, y).mean()
            opt.zero_grad()
            loss.backward()
            grad = delta.grad.detach()
            delta.data = (delta + eps * grad.sign()).clamp(-eps, eps)
            delta.data[: len(x)] = torch.max(torch.min(delta[: len(x)], 1 - x), -x)
            opt.step()
            delta.grad.zero_()
    t.fit()
    for k, v in model.state_dict().items():
        assert torch.allclose(v.float(), t.model.state_dict()[k].float(), rtol=1e-5, atol=1e-6), k
    assert torch.allclose(delta.detach(), t.method.delta, atol=1e-7)
    assert t.method.delta.abs().max() <= eps + 1e-7 and t.method.delta.abs().max() > 0


def test_free_resumes_exactly_with_its_perturbation(tmp_path):
    cfg = _free_cfg(tmp_path, epochs=2)
    whole = Trainer(cfg, progress=False)
    whole.fit()
    cfg2 = _free_cfg(tmp_path / "b", epochs=2)
    part = Trainer(cfg2, progress=False)
    part.fit(max_steps=5)  # inside a replay run
    resumed = Trainer(cfg2, part.run.path, resume=True, progress=False)
    resumed.fit()
    assert torch.equal(resumed.method.delta, whole.method.delta)
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in whole.model.state_dict().items())


def test_free_presets():
    from jeat import get_preset

    p = get_preset("paper-free")  # JEAT Table 4, FREE row
    assert (p.method.name, p.method.free_replays, p.optim.lr, p.data.batch_size, p.epochs) == ("free", 8, 0.1, 128, 200)
    assert (p.optim.milestones, p.optim.weight_decay, p.optim.momentum) == ((100, 150), 2e-4, 0.9)
    assert p.method.attack.step_size == p.method.attack.eps == 8 / 255 and not p.method.attack.random_start
    assert get_preset("cpu-free").method.free_replays == 4
