"""JEM++ (sndnyang/JEMPP) and EB-JDAT (jkcjkc/EB-JDAT, its JEM++ variant) beside jeat.

The reference's own ``main(args)`` of ``train_jempp.py`` trains, with its own parser's defaults and
its CIFAR-10 script's flags (``scripts/jempp_cifar10.sh``, ``train.sh``), on a small WRN (depth and
width overridden) for ``--steps`` iterations. What the harness replaces, and nothing else:

- ``get_data``: returns the harness's batches (already augmented, in [-1, 1]) instead of
  torchvision loaders; the p(x) batch and the CE batch are separate, as in the reference;
- the class-conditional Gaussian's input files (``cifar10_mean.pt`` / ``_cov.pt``) are written by the
  reference's own ``category_mean`` on the harness's images (JEM++'s ends in a ``t.load(covs, ...)``
  typo for ``t.save``: while it runs, ``torch.load`` handed a tensor saves it); its
  ``init_from_centers`` then fits the seed distribution, compared with jeat's (``seed_mean``,
  ``seed_covariance``);
- chains restart at the reference's ``reinit_freq`` (0.05) from seeds its ``init_random`` drew for the
  harness beforehand, fed to both sides (``reinit.ReinitFeed``);
- calls of ``sample_q`` / ``sampleXadv`` are *wrapped* (not changed) to seed torch before each, so
  both sides draw the same buffer indices and attack starts; EB-JDAT's ``main`` calls
  ``sampleXadv`` without its ``device`` argument (a TypeError as published): the wrapper passes it.
- EB-JDAT's own ``EB-JDAT-JEM++/utils.py`` (tracked at 327ea16; byte-identical to JEM++'s at fba6ba5) is
  the one imported; JEM++'s is used only for a checkout that lacks it.

jeat then trains ``paper-jempp`` / ``paper-eb-jdat`` (same overrides) from the reference's initial
weights and replay buffer on the same batches, through its one training loop (``Trainer.train_step``).
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
    bn_pair,
    checkout_commit,
    cifar,
    control_draws,
    import_reference,
    install_stubs,
    jeat_trainer,
    jem_name_map,
    jem_rename,
    lr_check,
    one_ulp,
    record_backward,
    record_grads_at_step,
    reference_parser,
    score,
    script_flags,
    seeded_calls,
    train_jeat,
    ulp_moved,
)
from interleave import Interleave
from reinit import ReinitFeed, jeat_fit, reference_category_mean, reference_fit


def _overrides(o) -> list[str]:
    return ["--depth", str(o.depth), "--width", str(o.width), "--batch_size", str(o.batch), "--buffer_size",
            str(o.buffer), "--n_epochs", "1", "--warmup_iters", str(o.warmup),
            "--decay_epochs", "1000", "--print_every", "1000000", "--eval_every", "1000",
            "--ckpt_every", "1000"]  # fmt: skip


def run_reference(mod, args, data, seeds, adv_seeds, variant: str, dtype: torch.dtype, reinit, beside=None) -> dict:
    """The reference's main() on the harness data; returns what it logged. ``beside(captured)``: jeat's
    loop, run step by step beside it (``--interleave``; its result under ``"jeat"``)."""
    px, lab, valid = data
    captured: dict = {"model": None}
    orig_build = mod.get_model_and_buffer

    def build(a, device):  # wrapped to see the model it builds (EB-JDAT builds twice: the last counts)
        f, buf = orig_build(a, device)
        f = f.to(dtype)
        captured["model"], captured["init_state"] = f, {k: v.clone() for k, v in f.state_dict().items()}
        return f, buf

    orig_centers = mod.init_from_centers

    def centers(a):
        buf = orig_centers(a).to(dtype)
        captured["init_buffer"] = buf.clone()
        captured["live_buffer"] = buf  # main() writes its samples back into this tensor: the state after the run
        return buf

    mod.get_model_and_buffer, mod.init_from_centers = build, centers
    orig_init, orig_sq = mod.init_random, mod.sample_q
    mod.init_random, mod.sample_q = reinit.reference(orig_init), reinit.arm(orig_sq, "ref")
    mod.get_data = lambda a: (iter([(2 * x - 1, yy) for x, yy in px]), iter([(2 * x - 1, yy) for x, yy in lab]),
                              [(2 * x - 1, yy) for x, yy in valid], [(2 * x - 1, yy) for x, yy in valid])  # fmt: skip
    mod.args = args  # sample_p_0 reads the module-global args, as under __main__
    samples, advs, losses, grads, times, lrs = [], [], [], {}, [], []
    if variant == "eb-jdat":
        published = mod.sampleXadv
        mod.sampleXadv = lambda f, x, y, **k: published(f, x, y, args.device, **k)
    il = Interleave(lambda: captured["model"]) if beside else None
    ctx = [seeded_calls(mod, "sample_q", seeds, samples), record_backward(losses, "main"),
           record_grads_at_step(grads, lambda: captured["model"], 0, None if il else times, lrs),
           il.running(lambda: beside(captured)) if il else _null()]  # fmt: skip
    if variant == "eb-jdat":
        ctx.append(seeded_calls(mod, "sampleXadv", adv_seeds, advs))
    try:
        with contextlib.ExitStack() as stack:
            for c in ctx:
                stack.enter_context(c)
            mod.main(args)
    finally:  # after the wrappers above have put back what they found
        mod.init_random, mod.sample_q = orig_init, orig_sq
    captured["conditionals"] = list(mod.conditionals[-10:])  # init_from_centers' class Gaussians
    out = {"samples": samples, "advs": advs, "losses": losses, "grads": grads, "times": times, "lr": lrs, **captured}
    if il:
        out["jeat"], out["times"], out["wall"] = il.finish(), il.ref["times"], il.ref["wall"]
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def run_jeat(o, preset: str, ref: dict, data, seeds, adv_seeds, tmp: Path, dtype: torch.dtype, reinit,
             tag: str = "") -> dict:  # fmt: skip
    from jeat.models.wrn import from_jem_state_dict

    tr = jeat_trainer(preset, o, f"jempp-wrn-{o.depth}-{o.width}", tmp / f"jeat-{preset}{tag}", dtype,
                      from_jem_state_dict(ref["init_state"], o.depth), buffer=ref["init_buffer"])  # fmt: skip
    px, lab, _ = data
    samples, advs = [], []
    reinit.install(tr.method.negatives)
    ctx_adv = seeded_calls(tr.method, "adv_attack", adv_seeds, advs) if preset == "paper-eb-jdat" else _null()
    with seeded_calls(tr.method.negatives, "sample", seeds, samples), ctx_adv:
        out = train_jeat(tr, lab, px)
    return {**out, "samples": samples, "advs": advs}


def check(checkout: Path, o, variant: str = "jempp", jempp_checkout: Path | None = None) -> Result:
    repo, commit, sub = REFERENCES[variant]
    root = checkout / sub
    shims = [f"stub modules (import only): {', '.join(install_stubs())}"]
    extra = ()
    if variant == "eb-jdat":
        if not (root / "utils.py").is_file():  # 327ea16 tracks it; a partial checkout may lack it
            if jempp_checkout is None:
                raise SystemExit("eb-jdat: this checkout has no utils.py; pass JEM++'s checkout (--refs, "
                                 "JEAT_REF_JEMPP), whose utils.py is byte-identical")  # fmt: skip
            extra = (jempp_checkout,)
            shims.append("utils.py from sndnyang/JEMPP (this EB-JDAT checkout lacks its own)")
        shims.append("main() calls sampleXadv without its `device` argument: the harness passes args.device")
    mod = import_reference(root, "train_jempp", extra)
    parser = reference_parser(root / "train_jempp.py")
    script = root / ("scripts/jempp_cifar10.sh" if variant == "jempp" else "train.sh")
    flags = script_flags(script)
    args = parser.parse_args(flags + _overrides(o))
    args.n_classes, args.device, args.pid = 10, torch.device("cpu"), "parity"  # what init_env sets
    args.vis = False  # init_env: vis = not novis, then a tensorboardX writer; no event files here
    shims.append(
        "get_data replaced by the harness's batches; category_mean run on them"
        + (" (its t.load(covs, path) typo saves while it runs)" if variant == "jempp" else "")
    )
    shims.append("init_random inside a sampler call returns the harness's seeds (drawn by init_random itself)")

    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    x, y = cifar(2000, o.data)
    u8 = (x * 255).round().to(torch.uint8)  # the seed fits read the stored pixels
    x = x.to(dtype)
    data = (batches(x, y, o.batch, o.steps, 1, "jem"), batches(x, y, o.batch, o.steps, 2, "jem"),
            [(x[:64], y[:64])])  # fmt: skip
    seeds = [10_000 + i for i in range(o.steps)]
    adv_seeds = [20_000 + i for i in range(o.steps)]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        args.save_dir = args.dir_path = str(tmp)
        (tmp / "samples").mkdir()
        reference_category_mean(mod.category_mean, u8, y, args, tmp, typo_shim=variant == "jempp")
        orig_init = mod.init_random
        reinit = ReinitFeed(lambda bs: orig_init(args, bs), o.steps, o.batch, dtype)
        cwd = os.getcwd()
        os.chdir(tmp)
        torch.set_num_threads(o.threads)
        beside = None
        if o.speed and o.interleave and variant == "jempp":  # jeat's loop step by step beside the reference's
            beside = lambda cap: run_jeat(o, f"paper-{variant}", cap, data, seeds, adv_seeds, tmp, dtype, reinit)  # noqa: E731
        t0 = time.perf_counter()
        try:
            ref = run_reference(mod, args, data, seeds, adv_seeds, variant, dtype, reinit, beside)
        finally:
            os.chdir(cwd)
        ref_wall = ref.pop("wall", time.perf_counter() - t0)
        torch.set_num_threads(o.threads)
        ours = ref.pop("jeat") if beside else run_jeat(o, f"paper-{variant}", ref, data, seeds, adv_seeds, tmp, dtype,
                                                       reinit)  # fmt: skip
        control = []
        for k in control_draws(o):  # jeat against itself, inputs moved by one ulp: the fp32 noise floor
            moved = (one_ulp(data[0], ULP_SEEDS[0] + k), one_ulp(data[1], ULP_SEEDS[0] + k), data[2])
            moved_ref = {**ref, "init_buffer": ulp_moved(ref["init_buffer"], ULP_SEEDS[1] + k)}
            control.append(run_jeat(o, f"paper-{variant}", moved_ref, moved, seeds, adv_seeds, tmp, dtype, reinit,
                                    f"-control{k}"))  # fmt: skip

    res = Result(variant, {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                           "script": str(script.relative_to(checkout))},
                 {"model": f"WRN-{o.depth}-{o.width} (JEM++ yopo block, BN momentum 0.9)", "batch": o.batch,
                  "steps": o.steps, "warmup_iters": o.warmup, "buffer": o.buffer,
                  "reinit_freq": args.reinit_freq, "reinit_feed": reinit.record(),
                  "reference_flags": flags, "threads": o.threads, "precision": o.dtype,
                  "data": "CIFAR-10 train (first 2,000), flip-crop + N(0, 0.03^2) in [-1, 1] units"},
                 shims=shims)  # fmt: skip
    # (a) the sampler after its full m x n steps (and EB-JDAT's attack), first iteration, in [0, 1] units
    outputs = {"sampler": (ours["samples"][0], (ref["samples"][0] + 1) / 2, [c["samples"][0] for c in control])}
    # (e) state after the run: BN running statistics and the replay buffer
    bn = bn_pair(ours["bn"], ref["model"], jem_rename(o.depth))
    if bn is not None:
        outputs["bn_statistics"] = (*bn, [bn_pair(c["bn"], ref["model"], jem_rename(o.depth))[0] for c in control])
    outputs["replay_buffer"] = (ours["buffer"], (ref["live_buffer"] + 1) / 2, [c["buffer"] for c in control])
    # (e) the seed distribution of restarted chains: jeat's fit beside init_from_centers', [-1, 1] units
    mine, theirs = jeat_fit(u8, y, dtype), reference_fit(ref["conditionals"])
    outputs["seed_mean"], outputs["seed_covariance"] = (mine[0], theirs[0]), (mine[1], theirs[1])
    if variant == "eb-jdat":
        outputs["attack"] = (ours["advs"][0], (ref["advs"][0] + 1) / 2, [c["advs"][0] for c in control])
    ref["wall"] = ref_wall
    res = score(res, o, ours, ref, jem_name_map(ref["model"], o.depth), o.batch, outputs, control)
    res.checks["lr"] = lr_check(ours["lr"], ref["lr"])  # (e) every step's lr, warm-up included
    return res
