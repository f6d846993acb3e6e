"""TRADES (yaodongyu/TRADES) and WEAT (OmnAI-Lab/Robust-Classifiers-under-the-lens-of-EBM) beside
jeat's ``paper-trades`` / ``paper-weat``.

TRADES: its training script parses arguments and loads CIFAR at import, so the harness compiles
its ``train`` and ``adjust_learning_rate`` functions from the published source
(:func:`common.reference_function`) and runs them with ``trades.trades_loss`` (imported as is) on
the harness's batches; the optimizer is built as its ``main`` builds it. WEAT: ``utils.adv_train``
(imported; it calls ``WEAT_loss.WEAT_nat``) with the optimizer and OneCycleLR from ``main.py``'s
``initialize_optimizer_and_scheduler``. Both call ``.cuda()`` on their attack noise: on this CPU
that is the identity (``cuda_as_cpu``). Each loss call is wrapped to start from the same torch
seed as jeat's attack, so the random starts are the same tensors.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import (
    REFERENCES,
    ULP_SEEDS,
    Result,
    batches,
    bn_output,
    checkout_commit,
    cifar,
    control_draws,
    cuda_as_cpu,
    import_reference,
    install_stubs,
    jeat_malloc,
    lr_check,
    one_ulp,
    record_backward,
    record_grads_at_step,
    reference_function,
    reference_parser,
    score,
    seeded_calls,
    train_jeat,
)
from interleave import train_interleaved


class _Loader(list):
    """A list of batches with the ``.dataset`` the references' progress prints read."""

    def __init__(self, items, n):
        super().__init__(items)
        self.dataset = range(n)


def _schedule_check(adjust, args, epochs: int) -> dict:
    """TRADES' per-epoch lr (its epochs count from 1) against jeat's paper-trades schedule."""
    from jeat import get_preset
    from jeat.training.optim import lr_factor

    cfg = get_preset("paper-trades").optim
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=args.lr)
    worst = 0.0
    for epoch in range(1, epochs + 1):
        adjust(opt, epoch)
        ours = cfg.lr * lr_factor(cfg, (epoch - 1) * 10, 10, epochs * 10)
        worst = max(worst, abs(ours - opt.param_groups[0]["lr"]) / opt.param_groups[0]["lr"])
    return {"epochs": epochs, "max_rel": worst, "rtol": 1e-12, "pass": worst <= 1e-12}


def check(checkout: Path, o, variant: str = "trades") -> Result:
    repo, commit, sub = REFERENCES[variant]
    root = checkout / sub
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    shims = [f"stub modules (import only): {', '.join(install_stubs())}", "`.cuda()` is the identity on this CPU"]
    x, y = cifar(2000, o.data)
    x = x.to(dtype)
    batch = o.batch if variant == "trades" else max(4, o.batch // 2)
    data = batches(x, y, batch, o.steps, 3, "flip-crop")
    seeds = [40_000 + i for i in range(o.steps)]
    ref_losses, ref_grads, ref_times, ref_lrs = [], {}, [], []
    train_inputs: list = []  # inputs of the reference model's train-mode forwards: x, then x_adv

    def watch(model):
        def hook(m, inputs):
            if m.training and len(train_inputs) < 2:
                train_inputs.append(inputs[0].detach().clone())

        return model.register_forward_pre_hook(hook)

    if variant == "trades":
        mod = import_reference(root, "trades")
        wrn = import_reference(root, "models.wideresnet")
        args = reference_parser(root / "train_trades_cifar10.py").parse_args(["--log-interval", "1000000"])
        ns = {"trades_loss": mod.trades_loss, "args": args, "F": F, "torch": torch}
        train = reference_function(root / "train_trades_cifar10.py", "train", ns)
        adjust = reference_function(root / "train_trades_cifar10.py", "adjust_learning_rate", ns)
        torch.manual_seed(0)
        model = wrn.WideResNet(depth=o.depth, widen_factor=o.width).to(dtype)
        init = {k: v.clone() for k, v in model.state_dict().items()}
        watch(model)
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
        shims.append(
            "train() and adjust_learning_rate() compiled from train_trades_cifar10.py (it loads data at import)"
        )
        seeded, caller = (ns, "trades_loss"), "train"

        def ref_step(lab):
            train(args, model, torch.device("cpu"), _Loader(lab, len(lab) * batch), opt, 1)

        sched = _schedule_check(adjust, args, args.epochs)
        flags = ["(defaults)", "--log-interval 1000000"]
    else:
        utils = import_reference(root, "utils")
        resnet = import_reference(root, "models.resnet", ())
        loss_name = "WEAT_adv" if variant == "weat-adv" else "WEAT_nat"  # the reference's --adv-loss
        args = reference_parser(root / "parser.py").parse_args(["--num-steps", str(o.weat_steps), "--adv-loss",
                                                                loss_name])  # fmt: skip
        ns = {"optim": torch.optim, "torch": torch, "np": __import__("numpy")}
        init_opt = reference_function(root / "main.py", "initialize_optimizer_and_scheduler", ns)
        torch.manual_seed(0)
        model = resnet.ResNet18(classes=10).to(dtype)
        init = {k: v.clone() for k, v in model.state_dict().items()}
        watch(model)
        # its steps_per_epoch is floor(N / batch) + 1; N chosen so that it equals the batches given
        args.batch_size, args.epochs = batch, 1  # one epoch of these steps, as jeat's run below
        opt, scheduler = init_opt(args, model, (o.steps - 1) * batch + 1)
        shims.append("initialize_optimizer_and_scheduler() compiled from main.py (it imports wandb and data)")
        shims.append(
            f"--num-steps {o.weat_steps} (attack steps; 10 in the paper) and batch {batch}: ResNet-18 on 2 cores"
        )
        seeded, caller = (utils, loss_name), "adv_train"

        def ref_step(lab):
            utils.adv_train(args, model, torch.device("cpu"), _Loader(lab, len(lab) * batch), opt, scheduler, 1)

        sched = None
        flags = [f"--num-steps {o.weat_steps}", f"--adv-loss {loss_name}"]

    interleave = o.speed and o.interleave

    def ref_contexts(stack: contextlib.ExitStack) -> None:
        """The reference's observation: seeded attack starts, its losses, its first step's gradients."""
        stack.enter_context(cuda_as_cpu())
        stack.enter_context(seeded_calls(*seeded, seeds))
        stack.enter_context(record_backward(ref_losses, caller))
        stack.enter_context(record_grads_at_step(ref_grads, model, 0, None if interleave else ref_times, ref_lrs))

    ref_wall = 0.0
    if not interleave:
        t0 = time.perf_counter()
        with contextlib.ExitStack() as stack:
            ref_contexts(stack)
            ref_step(data)
        ref_wall = time.perf_counter() - t0

    # ---- jeat
    import tempfile

    from jeat import get_preset
    from jeat.importing import from_trades_state_dict
    from jeat.overrides import apply_override
    from jeat.training.loop import Trainer

    cfg = get_preset(f"paper-{variant}")
    cfg.data.batch_size, cfg.data.root, cfg.data.test_limit = batch, o.data, 100
    cfg.data.train_limit = o.steps * batch  # one epoch of exactly these steps (WEAT's OneCycle length)
    cfg.epochs, cfg.channels_last, cfg.guard.enabled, cfg.tensorboard = 1, o.channels_last, False, False
    cfg.cpu_malloc = jeat_malloc(o)
    cfg.amp = getattr(o, "jeat_amp", "none")  # bf16: drift / speed against the fp32 reference (run.py --jeat-amp)
    for assignment in o.jeat_set:  # attribution runs: e.g. fold_bn=false
        apply_override(cfg, assignment)
    if variant == "trades":
        cfg.model.arch = f"wrn-{o.depth}-{o.width}"
        state = from_trades_state_dict(init)
        order = from_trades_state_dict({k: torch.tensor(i) for i, k in enumerate(init)})  # jeat key -> index
        keys = list(init)
        params = {n for n, _ in model.named_parameters()}
        name_map = {keys[int(i)]: k for k, i in order.items() if keys[int(i)] in params}
        to_jeat = {keys[int(i)]: k for k, i in order.items()}  # parameters and buffers: BN statistics
        rename = to_jeat.get
    else:
        cfg.method.attack.steps = o.weat_steps
        state = {"backbone." + k: v for k, v in init.items()}
        name_map = {n: "backbone." + n for n, _ in model.named_parameters()}
        rename = lambda k: "backbone." + k  # noqa: E731

    def trainer(tag):
        tr = Trainer(cfg, run_dir=Path(d) / f"jeat{tag}", progress=False)
        tr.model.load_state_dict(state)
        tr.model.to(dtype)
        return tr

    def run(batches, tag):
        tr, advs = trainer(tag), []
        with seeded_calls(tr.method, "kl_attack", seeds, advs):
            return train_jeat(tr, batches), advs

    with tempfile.TemporaryDirectory() as d:
        if interleave:  # both sides built first; then step i of each in turn
            tr, advs = trainer(""), []
            with contextlib.ExitStack() as stack:
                ref_contexts(stack)
                stack.enter_context(seeded_calls(tr.method, "kl_attack", seeds, advs))
                ref_timing, ours = train_interleaved(ref_step, tr, data)
            ref_times[:], ref_wall = ref_timing["times"], ref_timing["wall"]
        else:
            ours, advs = run(data, "")
        # jeat against itself, inputs moved by one ulp: the fp32 noise floor
        drawn = [run(one_ulp(data, ULP_SEEDS[0] + k), f"-control{k}") for k in control_draws(o)]
        control, ctrl_advs = [c for c, _ in drawn], [a[0] for _, a in drawn]

    arch = f"WRN-{o.depth}-{o.width} (TRADES' WideResNet)" if variant == "trades" else "ResNet-18 (WEAT's default)"
    res = Result(variant, {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout)},
                 {"model": arch, "batch": batch, "steps": o.steps, "reference_flags": flags, "threads": o.threads,
                  "precision": o.dtype, "data": "CIFAR-10 train (first 2,000), flip-crop",
                  "attack_steps": args.num_steps}, shims=shims)  # fmt: skip
    ref = {"losses": ref_losses, "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    outputs = {"attack": (advs[0], train_inputs[1], ctrl_advs),
               # (e) the BN running statistics the run leaves
               "bn_statistics": bn_output(ours, control, model, rename)}  # fmt: skip
    res = score(res, o, ours, ref, name_map, batch, outputs, control)
    res.checks["lr"] = lr_check(ours["lr"], ref_lrs)  # (e) every step's lr (WEAT: OneCycle moves it each step)
    if o.jeat_set:
        res.settings["jeat_set"] = list(o.jeat_set)
    if sched is not None:
        res.checks["schedule"] = sched
    return res
