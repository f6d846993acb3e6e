"""SADA-JEM (sndnyang/SADAJEM, ``train_sadajem.py`` + ``sam.py``) beside jeat's ``paper-sadajem``.

The reference's ``main(arg)`` trains with its parser's defaults and ``scripts/sadajem_cifar10.sh``'s
flags on a small WRN. The harness replaces ``get_data`` (un-augmented p(x) batches of
``batch_size`` and augmented CE batches of twice that, the ratio of its hard-coded ``label_bs =
128`` to ``batch_size = 64``), writes the class-Gaussian files its ``init_from_centers`` reads
(``v<torch minor>/cifar10_{mean,cov}.pt``: its ``multi_center.category_mean`` cannot be imported, the
checkout lacks ``one_center.py``), gives ``arg.writer`` a sink that drops scalars, makes its end-of-run
IS/FID (``cond_is_fid``, inside the reference's own try/except) raise at once, seeds each ``sample_q``
call as jeat's sampler call is seeded, and feeds both sides the same re-initialisation seeds (drawn
by its own ``init_random``; ``reinit.ReinitFeed``) so that chains restart at its ``reinit_freq``.
Its ``init_from_centers`` (ridge included) is compared with jeat's seed fit (``seed_mean``,
``seed_covariance``).
"""

from __future__ import annotations

import contextlib
import os
import re
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
from reinit import ReinitFeed, gaussian_files, jeat_fit, reference_fit


def batch_sizes(checkout: Path, published: int, batch: int) -> dict[str, int]:
    """CE and p(x) batch sizes of both sides at the harness's scale ``batch`` / ``published`` (the
    reference's p(x) batch under its published command)."""
    from jeat import get_preset

    found = re.search(r"^\s*label_bs\s*=\s*(\d+)", (checkout / "utils.py").read_text(), re.M)
    if found is None:
        raise SystemExit(f"sadajem: no `label_bs = N` in {checkout / 'utils.py'}: the CE batch size moved")
    ref_px = published
    cfg = get_preset("paper-sadajem")
    jeat_px = cfg.method.px_batch_size or cfg.data.batch_size

    def scaled(n: int) -> int:
        if n * batch % ref_px:
            raise SystemExit(f"sadajem: --batch {batch} does not scale {n} by {batch}/{ref_px} to a whole batch")
        return n * batch // ref_px

    return {"ref_ce": scaled(int(found.group(1))), "ref_px": scaled(ref_px), "jeat_ce": scaled(cfg.data.batch_size),
            "jeat_px": scaled(jeat_px)}  # fmt: skip


class _Sink:
    def add_scalar(self, *a, **k):
        pass


def check(checkout: Path, o) -> Result:
    repo, commit, _ = REFERENCES["sadajem"]
    shims = [f"stub modules (import only): {', '.join(install_stubs())}",
             "get_data replaced by the harness's batches (at label_bs and batch_size, scaled); "
             "arg.writer drops scalars; "
             "cond_is_fid (IS/FID at the last epoch, inside its try/except) raises at once"]  # fmt: skip
    mod = import_reference(checkout, "train_sadajem")
    parser = reference_parser(checkout / "train_sadajem.py")
    flags = script_flags(checkout / "scripts/sadajem_cifar10.sh")
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    over = ["--depth", str(o.depth), "--width", str(o.width), "--batch_size", str(o.batch), "--buffer_size",
            str(o.buffer), "--n_epochs", "1", "--warmup_iters", str(o.warmup), "--print_every",
            "1000000", "--ckpt_every", "1000"]  # fmt: skip
    args = parser.parse_args(flags + over)
    args.n_classes, args.device, args.pid, args.vis, args.writer = 10, torch.device("cpu"), "parity", False, _Sink()
    mod.args = args  # sample_p_0 and main read the module-global args, as under __main__
    x, y = cifar(2000, o.data)
    u8 = (x * 255).round().to(torch.uint8)  # the seed fits read the stored pixels
    x = x.to(dtype)
    # Sizes from each side's own settings, scaled by one factor (--batch over the reference's default p(x)
    # batch): the reference's CE batch is utils.py's hard-coded ``label_bs``, jeat's the preset's batch_size
    # and px_batch_size. A preset that drifts from the reference feeds jeat other batches, and (a)-(e) fail.
    sizes = batch_sizes(checkout, parser.parse_args(flags).batch_size, o.batch)
    px = batches(x, y, sizes["ref_px"], o.steps, 1, "none")
    lab = batches(x, y, sizes["ref_ce"], o.steps, 2, "flip-crop")
    px_ours = batches(x, y, sizes["jeat_px"], o.steps, 1, "none")
    lab_ours = batches(x, y, sizes["jeat_ce"], o.steps, 2, "flip-crop")
    seeds = [50_000 + i for i in range(o.steps)]

    cap: dict = {}
    orig_build, orig_centers = mod.get_model_and_buffer, mod.init_from_centers

    def build(a, device):
        f, buf = orig_build(a, device)
        f = f.to(dtype)
        cap["model"], cap["state"] = f, {k: v.clone() for k, v in f.state_dict().items()}
        return f, buf

    def centers(a):
        buf = orig_centers(a).to(dtype)
        cap["buffer"], cap["live_buffer"] = buf.clone(), buf  # main() writes samples back into the live one
        return buf

    def no_fid(*a, **k):
        raise RuntimeError("IS/FID not computed by the parity harness")

    mod.get_model_and_buffer, mod.init_from_centers, mod.cond_is_fid = build, centers, no_fid
    init_name = "init_random" if args.init == "gm" else "init_random_uniform"  # the one sample_p_0 calls
    orig_init, orig_sq = getattr(mod, init_name), mod.sample_q
    reinit = ReinitFeed(lambda bs: orig_init(args, bs), o.steps, sizes["ref_px"], dtype)
    setattr(mod, init_name, reinit.reference(orig_init))
    mod.sample_q = reinit.arm(orig_sq, "ref")
    test = [(2 * x[:50] - 1, y[:50])]
    mod.get_data = lambda a: (iter([(2 * b - 1, c, None) for b, c in px]),
                              iter([(2 * b - 1, c, None) for b, c in lab]), test, test)  # fmt: skip
    ref_samples, ref_losses, ref_grads, ref_times, ref_lrs = [], [], {}, [], []
    torch.set_num_threads(o.threads)
    with tempfile.TemporaryDirectory() as d:
        args.save_dir = args.dir_path = d
        (Path(d) / "samples").mkdir()
        vdir = Path(d) / f"v{torch.__version__.split('.')[1]}"
        vdir.mkdir()
        gaussian_files(u8.to(dtype) / 255, y, vdir)
        cwd = os.getcwd()
        os.chdir(d)
        from jeat.models.wrn import from_jem_state_dict

        samples: list = []

        def jeat_loop():  # from the reference's initial weights and buffer, captured as it built them
            tr = jeat_trainer("paper-sadajem", o, f"jempp-wrn-{o.depth}-{o.width}", Path(d) / "jeat", dtype,
                              from_jem_state_dict(cap["state"], o.depth), buffer=cap["buffer"],
                              batch=sizes["jeat_ce"], px_batch_size=sizes["jeat_px"])  # fmt: skip
            reinit.install(tr.method.negatives)
            with seeded_calls(tr.method.negatives, "sample", seeds, samples):
                return train_jeat(tr, lab_ours, px_ours)

        il = Interleave(lambda: cap.get("model")) if o.speed and o.interleave else None
        t0 = time.perf_counter()
        try:
            with (seeded_calls(mod, "sample_q", seeds, ref_samples), record_backward(ref_losses, "main"),
                  record_grads_at_step(ref_grads, lambda: cap.get("model"), 0, None if il else ref_times, ref_lrs),
                  il.running(jeat_loop) if il else contextlib.nullcontext()):  # fmt: skip
                mod.main(args)
        finally:
            os.chdir(cwd)
            setattr(mod, init_name, orig_init)
            mod.sample_q = orig_sq
        ref_wall = time.perf_counter() - t0
        if il:  # jeat ran step by step beside the reference
            ours, ref_times[:], ref_wall = il.finish(), il.ref["times"], il.ref["wall"]
        else:
            ours = jeat_loop()
        control, ctrl_samples = [], []
        for k in control_draws(o):  # jeat against itself, inputs moved by one ulp: the fp32 noise floor
            tr = jeat_trainer("paper-sadajem", o, f"jempp-wrn-{o.depth}-{o.width}", Path(d) / f"jeat-control{k}",
                              dtype, from_jem_state_dict(cap["state"], o.depth),
                              buffer=ulp_moved(cap["buffer"], ULP_SEEDS[1] + k), batch=sizes["jeat_ce"],
                              px_batch_size=sizes["jeat_px"])  # fmt: skip
            drawn: list = []
            reinit.install(tr.method.negatives)
            with seeded_calls(tr.method.negatives, "sample", seeds, drawn):
                control.append(train_jeat(tr, one_ulp(lab_ours, ULP_SEEDS[0] + k), one_ulp(px_ours, ULP_SEEDS[0] + k)))
            ctrl_samples.append(drawn[0])

    res = Result("sadajem", {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout),
                             "script": "scripts/sadajem_cifar10.sh"},
                 {"model": f"WRN-{o.depth}-{o.width} (JEM's block, BN momentum 0.9, LeakyReLU 0.2)",
                  "batch": f"CE {sizes['ref_ce']}, p(x) and negatives {sizes['ref_px']} (each side's own, scaled)",
                  "batch_sizes": sizes, "steps": o.steps,
                  "warmup_iters": o.warmup, "buffer": o.buffer, "reinit_freq": args.reinit_freq,
                  "reinit_feed": reinit.record(), "reference_flags": flags,
                  "threads": o.threads, "precision": o.dtype,
                  "data": "CIFAR-10 train (first 2,000); CE batch flip-crop, p(x) batch un-augmented"},
                 shims=shims)  # fmt: skip
    # SAM: the first pass's loss is the step's; the second pass's (at w + e(w)) is recorded too
    ref = {"losses": ref_losses[0::2], "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    res = score(
        res,
        o,
        ours,
        ref,
        jem_name_map(cap["model"], o.depth),
        sizes["ref_ce"],
        {"sampler": (samples[0], (ref_samples[0] + 1) / 2, ctrl_samples),
         # (e) state after the run: BN running statistics and the replay buffer
         "bn_statistics": (*bn_pair(ours["bn"], cap["model"], jem_rename(o.depth)),
                           [bn_pair(c["bn"], cap["model"], jem_rename(o.depth))[0] for c in control]),
         "replay_buffer": (ours["buffer"], (cap["live_buffer"] + 1) / 2, [c["buffer"] for c in control]),
         # (e) the seed distribution of restarted chains: jeat's fit beside init_from_centers', [-1, 1] units
         **dict(zip(("seed_mean", "seed_covariance"), zip(jeat_fit(u8, y, dtype), reference_fit(mod.conditionals[-10:]),
                                                           strict=True), strict=True))},
        control,
    )  # fmt: skip
    res.checks["lr"] = lr_check(ours["lr"], ref_lrs)  # (e) every step's lr, warm-up included
    res.checks["gradients"]["note"] = "SAM's second-pass gradient"
    return res
