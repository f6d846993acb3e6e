"""JEM (wgrathwohl/JEM, ``train_wrn_ebm.py``) beside jeat's ``paper-jem``.

The reference's ``main(args)`` trains with its parser's defaults and its README's CIFAR-10 command
(``--lr .0001 --optimizer adam ... --warmup_iters 1000``) on a small WRN for ``--steps`` iterations.
The harness replaces ``get_data`` (its batches, p(x) and CE apart, in [-1, 1]) and *wraps*
``get_sample_q``'s sampler so that each call starts from the same torch seed and draws its SGLD
noise from tensors the harness prepared (``noise_feed``). Chains restart at JEM's own
``reinit_freq`` (0.05), from seeds fed to both sides (``reinit.ReinitFeed``): JEM draws uniform seeds
for every chain before choosing which to re-initialise, jeat only for the chosen ones, so their
random streams differ although the distributions are the same.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import torch
from common import (
    REFERENCES,
    ULP_SEEDS,
    Result,
    batches,
    checkout_commit,
    cifar,
    control_draws,
    import_reference,
    install_stubs,
    jeat_trainer,
    jem_name_map,
    lr_check,
    noise_feed,
    one_ulp,
    record_backward,
    record_grads_at_step,
    reference_parser,
    score,
    script_flags,
    train_jeat,
    ulp_moved,
)
from interleave import Interleave
from reinit import ReinitFeed


class Feed:
    """Per sampler call: a torch seed and the K noise tensors (standard normal, N x 3 x 32 x 32)."""

    def __init__(self, steps: int, k: int, batch: int, dtype: torch.dtype, seed: int = 30_000):
        gen = torch.Generator().manual_seed(seed)
        self.seeds = [seed + i for i in range(steps)]
        self.noise = [[torch.randn(batch, 3, 32, 32, generator=gen, dtype=dtype) for _ in range(k)]
                      for _ in range(steps)]  # fmt: skip

    def wrap(self, fn, log: list, scale: float = 1.0):
        count = {"i": 0}

        def wrapped(*a, **k):
            i = count["i"]
            count["i"] += 1
            torch.manual_seed(self.seeds[i])
            with noise_feed(self.noise[i], scale):
                out = fn(*a, **k)
            log.append((out[0] if isinstance(out, tuple) else out).detach().clone())
            return out

        return wrapped


def check(checkout: Path, o) -> Result:
    repo, commit, _ = REFERENCES["jem"]
    shims = [f"stub modules (import only): {', '.join(install_stubs())}",
             "get_data replaced by the harness's batches; sampler calls seeded and fed the same noise",
             "init_random inside a sampler call returns the harness's seeds (drawn by init_random itself)"]  # fmt: skip
    mod = import_reference(checkout, "train_wrn_ebm")
    parser = reference_parser(checkout / "train_wrn_ebm.py")
    flags = script_flags(checkout / "README.md", "train_wrn_ebm.py")
    flags = [f for i, f in enumerate(flags) if f != "--save_dir" and (i == 0 or flags[i - 1] != "--save_dir")]
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    over = ["--depth", str(o.depth), "--width", str(o.width), "--batch_size", str(o.batch), "--buffer_size",
            str(o.buffer), "--n_epochs", "1", "--warmup_iters", str(o.warmup), "--print_every",
            "1000000", "--ckpt_every", "1000", "--eval_every", "1000"]  # fmt: skip
    args = parser.parse_args(flags + over)
    args.n_classes = 10
    x, y = cifar(2000, o.data)
    x = x.to(dtype)
    px, lab = batches(x, y, o.batch, o.steps, 1, "jem"), batches(x, y, o.batch, o.steps, 2, "jem")
    feed = Feed(o.steps, args.n_steps, o.batch, dtype)
    orig_init = mod.init_random
    reinit = ReinitFeed(lambda bs: orig_init(args, bs), o.steps, o.batch, dtype)  # its reinit_freq, not 0
    mod.init_random = reinit.reference(orig_init)

    # ---- reference
    cap: dict = {}
    orig_build, orig_sq = mod.get_model_and_buffer, mod.get_sample_q
    ref_samples, ref_losses, ref_grads, ref_times, ref_lrs = [], [], {}, [], []

    def build(a, device, sample_q):
        f, buf = orig_build(a, device, sample_q)
        f, buf = f.to(dtype), buf.to(dtype)
        cap["model"], cap["state"], cap["buffer"] = f, {k: v.clone() for k, v in f.state_dict().items()}, buf.clone()
        cap["live_buffer"] = buf  # main() writes its samples back into this tensor: the state after the run
        return f, buf

    mod.get_model_and_buffer = build
    mod.get_sample_q = lambda a, device: feed.wrap(reinit.arm(orig_sq(a, device), "ref"), ref_samples)
    valid = [(2 * x[:50] - 1, y[:50])]
    mod.get_data = lambda a: (iter([(2 * b - 1, c) for b, c in px]), iter([(2 * b - 1, c) for b, c in lab]), valid,
                              valid)  # fmt: skip
    torch.set_num_threads(o.threads)
    with tempfile.TemporaryDirectory() as d:
        args.save_dir = d
        cwd = os.getcwd()
        os.chdir(d)
        from jeat.models.wrn import from_jem_state_dict

        samples: list = []

        def jeat_loop():  # from the reference's initial weights and buffer, captured as it built them
            tr = jeat_trainer("paper-jem", o, f"jem-wrn-{o.depth}-{o.width}", Path(d) / "jeat", dtype,
                              from_jem_state_dict(cap["state"], o.depth), buffer=cap["buffer"])  # fmt: skip
            reinit.install(tr.method.negatives)
            tr.method.negatives.sample = feed.wrap(tr.method.negatives.sample, samples)
            return train_jeat(tr, lab, px)

        il = Interleave(lambda: cap.get("model")) if o.speed and o.interleave else None
        t0 = time.perf_counter()
        try:
            with (record_backward(ref_losses, "main"),
                  record_grads_at_step(ref_grads, lambda: cap.get("model"), 0, None if il else ref_times, ref_lrs),
                  il.running(jeat_loop) if il else contextlib.nullcontext()):  # fmt: skip
                mod.main(args)
        finally:
            os.chdir(cwd)
        ref_wall = time.perf_counter() - t0

        # ---- jeat (interleaved: it ran step by step beside the reference)
        if il:
            ours, ref_times[:], ref_wall = il.finish(), il.ref["times"], il.ref["wall"]
        else:
            ours = jeat_loop()
        control, ctrl_samples = [], []
        for k in control_draws(o):  # jeat against itself, inputs moved by one ulp: the fp32 noise floor
            tr = jeat_trainer("paper-jem", o, f"jem-wrn-{o.depth}-{o.width}", Path(d) / f"jeat-control{k}", dtype,
                              from_jem_state_dict(cap["state"], o.depth),
                              buffer=ulp_moved(cap["buffer"], ULP_SEEDS[1] + k))  # fmt: skip
            drawn: list = []
            reinit.install(tr.method.negatives)
            tr.method.negatives.sample = feed.wrap(tr.method.negatives.sample, drawn)
            control.append(train_jeat(tr, one_ulp(lab, ULP_SEEDS[0] + k), one_ulp(px, ULP_SEEDS[0] + k)))
            ctrl_samples.append(drawn[0])

    res = Result("jem", {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                         "script": "README.md (CIFAR-10 command)"},
                 {"model": f"WRN-{o.depth}-{o.width} (JEM's block, no norm, LeakyReLU 0.2)", "batch": o.batch,
                  "steps": o.steps, "warmup_iters": o.warmup, "buffer": o.buffer,
                  "reinit_freq": args.reinit_freq, "reinit_feed": reinit.record(),
                  "sgld_steps": args.n_steps, "reference_flags": flags, "threads": o.threads, "precision": o.dtype,
                  "data": "CIFAR-10 train (first 2,000), flip-crop + N(0, 0.03^2) in [-1, 1] units"},
                 shims=shims)  # fmt: skip
    ref = {"losses": ref_losses, "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    res = score(
        res,
        o,
        ours,
        ref,
        jem_name_map(cap["model"], o.depth),
        o.batch,
        {"sampler": (samples[0], (ref_samples[0] + 1) / 2, ctrl_samples),
         # (e) state after the run: the replay buffer (JEM's WRN has no BN)
         "replay_buffer": (ours["buffer"], (cap["live_buffer"] + 1) / 2, [c["buffer"] for c in control])},
        control,
    )  # fmt: skip
    res.checks["lr"] = lr_check(ours["lr"], ref_lrs)  # (e) every step's lr, warm-up included
    return res
