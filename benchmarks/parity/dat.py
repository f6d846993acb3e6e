"""DAT (xuwangyin/DAT) beside jeat's ``paper-dat``.

The reference's own ``train(cfg)`` (``rebm/training/train.py``, compiled from its source: the module
imports timm, torchmetrics and the InNOutRobustness data sets at import) runs with its own
``compute_ebm_metrics`` / ``compute_clf_adv_loss`` / ``pgd_attack`` / ``AveragedModel`` /
``get_optimizer`` (imported or compiled as published), on the config its CIFAR-10 experiment file
gives (``load_train_config``, the seed1 YAML of its T40 model), with these overrides: the batch, a
1-epoch stop (``total_epochs``), no wandb, no evaluation or image logging, and a short curriculum
(``min_imgs_per_threshold``, ``AUC_th``, ``attack.start_step``) so that T grows inside the run.
What the harness supplies: the data (``create_dataloaders`` returns the harness's batches: the
discriminator's, the classifier's and the out-of-distribution ones), the model (its WideResNet at a
small depth, ``get_model`` wraps it in ``DataParallel`` as the reference does) and no-op checkpoint
saving and image logging. DAT draws no random numbers inside a step (no random starts, no noise),
so identical batches make identical steps. Compared: the attacked OOD images of the first step with
T > 0, the first loss and gradients, the 30-step loss trajectory, the curriculum (T and the
adversarial AUC per step) and the final EMA weights.
"""

from __future__ import annotations

import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch
from common import (
    REFERENCES,
    ULP_SEEDS,
    Diff,
    Result,
    batches,
    checkout_commit,
    cifar,
    control_draws,
    install_stubs,
    jeat_malloc,
    one_ulp,
    record_backward,
    record_grads_at_step,
    reference_function,
    score,
    tol_check,
    trajectory_check,
)

EXPERIMENT = (
    "experiments/cifar10/cifar10_conditional_r1reg0_augauto_innoutloader_steps40_bs128_indistxent_sgd_lr0.001_"
    "stesp50_wd_wrn3410_indistaugoriginal_innoutpretrained_mean0_bestavg_ema_logsumexp_seed1.yaml"
)
STUBS = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional", "torchvision.utils",
         "torchvision.datasets", "pytorch_fid", "pytorch_fid.fid_score", "torchmetrics", "torchmetrics.image",
         "torchmetrics.image.inception")  # fmt: skip


def _wandb() -> types.ModuleType:
    """wandb as the reference sees it with logging off: log/Image accept anything, no run."""
    mod = types.ModuleType("wandb")
    mod.log = lambda *a, **k: None
    mod.Image = lambda *a, **k: None
    mod.run = None
    sys.modules["wandb"] = mod
    return mod


def check(checkout: Path, o) -> Result:
    repo, commit, _ = REFERENCES["dat"]
    dtype = torch.float64 if o.dtype == "float64" else torch.float32
    stubbed = install_stubs(STUBS)
    wandb = _wandb()
    shims = [f"stub modules (import only): {', '.join(stubbed)}", "wandb: log/Image accept anything (logging off)",
             "train() compiled from rebm/training/train.py (it imports timm / torchmetrics / InNOutRobustness "
             "datasets at import)",
             "create_dataloaders, get_model, save_training_state, log_image_grid supplied"]  # fmt: skip
    sys.path.insert(0, str(checkout))
    import rebm.training.misc as misc
    from rebm.models import wide_resnet_innoutrobustness as wrn
    from rebm.training import metrics as ref_metrics
    from rebm.training.average_model import AveragedModel
    from rebm.training.config_classes import load_train_config
    from rebm.training.scheduling import should_trigger_event

    steps, batch = o.steps, o.batch
    window_imgs, auc_th, start = 2 * batch, 0.5, 1  # T grows when 2 steps' mean AUC >= 0.5, from T = 1
    overrides = [f"batch_size={batch}", "total_epochs=1", "wandb_disabled=true", "n_imgs_per_evaluation_log=null",
                 f"min_imgs_per_threshold={window_imgs}", f"AUC_th={auc_th}", f"attack.start_step={start}",
                 "attack.max_steps=50", "use_ddp=false", "r1reg=0"]  # fmt: skip
    cfg = load_train_config(str(checkout / EXPERIMENT), overrides)

    x, y = cifar(2000, o.data)
    x = x.to(dtype)
    clf = batches(x, y, batch, steps, 3, "flip-crop")
    ebm = batches(x, y, batch, steps + 1, 4, "flip-crop")  # +1: the reference's loop draws one more at its end
    g = torch.Generator().manual_seed(5)
    ood = [torch.rand(batch, 3, 32, 32, generator=g).to(dtype) for _ in range(steps + 1)]

    torch.manual_seed(0)
    model = wrn.WideResNet(depth=o.depth, num_classes=10, widen_factor=o.width, normalize_input=True,
                           use_batchnorm=False).to(dtype)  # fmt: skip
    init = {k: v.clone() for k, v in model.state_dict().items()}

    def cycle(items):
        while True:
            yield from items

    def create_dataloaders(cfg, rank=0, world_size=1):
        return types.SimpleNamespace(indist_loader_ebm=ebm[:steps], indist_loader_clf=clf,
                                     indist_iter_ebm=cycle(ebm), indist_iter_clf=cycle(clf),
                                     outdist_iter=cycle([(xo,) for xo in ood]), test_loader=[])  # fmt: skip

    ns: dict = {"torch": torch, "nn": torch.nn, "np": np, "wandb": wandb, "dist": torch.distributed,
                "collections": __import__("collections"), "math": __import__("math"), "signal": __import__("signal"),
                "LOGGER": __import__("logging").getLogger("dat-reference"), "AveragedModel": AveragedModel,
                "ClassificationMetrics": ref_metrics.ClassificationMetrics,
                "ImageGenerationMetrics": ref_metrics.ImageGenerationMetrics,
                "compute_ebm_metrics": ref_metrics.compute_ebm_metrics,
                "compute_clf_adv_loss": ref_metrics.compute_clf_adv_loss,
                "should_trigger_event": should_trigger_event, "create_dataloaders": create_dataloaders,
                "log_image_grid": lambda *a, **k: None}  # fmt: skip
    train_py = checkout / "rebm/training/train.py"
    modeling_py = checkout / "rebm/training/modeling.py"
    get_optimizer = reference_function(modeling_py, "get_optimizer", {"torch": torch, "nn": torch.nn})
    modeling = types.SimpleNamespace(get_model=lambda **k: torch.nn.DataParallel(model), get_optimizer=get_optimizer,
                                     save_training_state=lambda **k: None)  # fmt: skip
    ns["rebm"] = types.SimpleNamespace(training=types.SimpleNamespace(modeling=modeling, misc=misc))
    for helper in ("setup_distributed", "dict_append_label"):
        reference_function(train_py, helper, ns)
    train = reference_function(train_py, "train", ns)

    # observe the curriculum and the attacked images without touching the code
    ref_T, ref_auc, ref_adv = [], [], {}
    orig_ebm = ns["compute_ebm_metrics"]

    def ebm_metrics(**k):
        out = orig_ebm(**k)
        ref_T.append(k["outdist_step"])
        ref_auc.append(out.adv_auc)
        if k["outdist_step"] > 0 and "x" not in ref_adv:
            ref_adv["x"] = out.adv_imgs.clone()
        return out

    ns["compute_ebm_metrics"] = ebm_metrics
    ema_ref: dict = {}
    orig_update = AveragedModel.update_parameters

    def update(self, m):
        orig_update(self, m)
        ema_ref.update({k: v.detach().clone() for k, v in self.module.state_dict().items()})

    AveragedModel.update_parameters = update
    ref_losses, ref_grads, ref_times = [], {}, []
    t0 = time.perf_counter()
    try:
        with record_backward(ref_losses, "train"), record_grads_at_step(ref_grads, model, 0, ref_times):
            train(cfg)
    finally:
        AveragedModel.update_parameters = orig_update
    ref_wall = time.perf_counter() - t0

    # ---- jeat
    from jeat import get_preset
    from jeat.importing import from_trades_state_dict
    from jeat.training.loop import Trainer

    jc = get_preset("paper-dat")
    jc.model.arch = f"wrn-{o.depth}-{o.width}"
    jc.data.batch_size, jc.data.root, jc.data.test_limit, jc.data.train_limit = batch, o.data, 100, steps * batch
    jc.data.outdist = "uniform"  # replaced by the harness's images below
    jc.epochs, jc.channels_last, jc.guard.enabled, jc.tensorboard = 1, o.channels_last, False, False
    jc.cpu_malloc = jeat_malloc(o)
    jc.amp = getattr(o, "jeat_amp", "none")  # bf16: drift / speed against the fp32 reference (run.py --jeat-amp)
    d = jc.method.dat
    d.auc_window, d.auc_threshold, d.start_steps, d.max_steps = window_imgs, auc_th, start, 50
    state = from_trades_state_dict(init)
    order = from_trades_state_dict({k: torch.tensor(i) for i, k in enumerate(init)})
    keys = list(init)
    params = {n for n, _ in model.named_parameters()}
    name_map = {keys[int(i)]: k for k, i in order.items() if keys[int(i)] in params}
    buffer_map = {keys[int(i)]: k for k, i in order.items()}

    normalisation = {"pass": True, "max_rel": 0.0, "rtol": 0.0,
                     "note": "paper-dat's constants against the reference model's, equal at float32"}  # fmt: skip

    def run(clf_batches, tag):
        tr = Trainer(jc, run_dir=Path(tmp) / f"jeat{tag}", progress=False)
        tr.model.load_state_dict(state, strict=False)
        norm = tr.model.normalize
        # The preset's constants (normalization=cifar-dat) must be the reference's: compared at float32, the
        # precision the reference keeps them in (plain tensors, not buffers: .to(float64) leaves them float32).
        for ours, theirs in ((norm.mean, model.mean), (norm.std, model.std)):
            a, b = ours.float().flatten(), theirs.float().flatten()
            rel = float((a - b).abs().max() / b.abs().max())
            normalisation["max_rel"] = max(normalisation["max_rel"], rel)
            if rel > 0:  # a failing row, not a stop
                normalisation.update({"pass": False, "ours": a.tolist(), "reference": b.tolist()})
        # ... then jeat takes their float32 rounding too, in its dtype, as the reference computes with it
        norm.mean.copy_(model.mean.view_as(norm.mean))
        norm.std.copy_(model.std.view_as(norm.std))
        tr.model.to(dtype)
        # the EMA's shadow still holds jeat's own initial weights: ema.copy_first (paper-dat) never reads it
        e_it, o_it = iter(ebm), iter(ood)
        tr.method.ebm_batch = lambda: next(e_it)
        tr.method.outdist.sample = lambda n: next(o_it)
        losses, grads, times, T, aucs, adv = [], {}, [], [], [], {}
        t1 = time.perf_counter()
        with record_grads_at_step(grads, tr.model, 0, times):
            for xb, yb in clf_batches:
                T.append(tr.method.steps)
                m = tr.train_step(xb, yb)
                losses.append(float(m["loss"]))
                aucs.append(float(m["adv_auc"]))
                if T[-1] > 0 and "x" not in adv:
                    adv["x"] = tr.method.last_inputs["x_out_adv"].clone()
        ema = {k: v.clone() for k, v in tr.ema.shadow.items()} if tr.ema is not None else {}
        return {"losses": losses, "grads": grads, "times": times, "wall": time.perf_counter() - t1, "T": T,
                "aucs": aucs, "adv": adv.get("x"), "ema": ema}  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        ours = run(clf, "")
        control = [run(one_ulp(clf, ULP_SEEDS[0] + k), f"-control{k}") for k in control_draws(o)]

    res = Result("dat", {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout)},
                 {"model": f"WRN-{o.depth}-{o.width} (its WideResNet, BN frozen)", "batch": batch, "steps": steps,
                  "reference_flags": [f"config {EXPERIMENT.split('/')[-1][:40]}...", *overrides],
                  "threads": o.threads, "precision": o.dtype,
                  "data": "CIFAR-10 train (first 2,000), flip-crop; OOD: uniform noise"}, shims=shims)  # fmt: skip
    ref = {"losses": ref_losses, "grads": ref_grads, "times": ref_times, "wall": ref_wall}
    res = score(res, o, ours, ref, name_map, batch, {"attack": (ours["adv"], ref_adv["x"])}, control)
    res.checks["curriculum"] = {"ours": ours["T"], "reference": ref_T[: len(ours["T"])],
                                "pass": ours["T"] == ref_T[: len(ours["T"])] and max(ours["T"]) > start}  # fmt: skip
    auc = trajectory_check(ours["aucs"], ref_auc[: len(ours["aucs"])], 1e-9 if o.dtype == "float64" else 1e-3)
    res.checks["auc"] = {k: v for k, v in auc.items() if k not in ("ours", "reference")}

    # EMA: jeat keeps its average in fp32 (training/ema.py), so 1e-6 even in float64; in float32 the
    # per-step tolerance. Each tensor is scaled by the larger of its own largest entry and 1/1000 of the
    # largest weight, as the gradients are: BN biases near zero would otherwise weigh rounding.
    def ema_diff(a: dict, b: dict) -> float:
        pairs = [(a[jk].double(), b[rk].double()) for rk, jk in buffer_map.items()
                 if jk in a and b[rk].is_floating_point()]  # fmt: skip
        top = max(float(y.abs().max()) for _, y in pairs)
        return max(float((x - y).abs().max()) / max(float(y.abs().max()), 1e-3 * top) for x, y in pairs)

    worst = ema_diff(ours["ema"], ema_ref)
    # float32: 10x the EMA's own one-ulp control difference, as (a)-(d) (common.score)
    mine = {rk: ours["ema"][jk] for rk, jk in buffer_map.items() if jk in ours["ema"]}
    floor = max((ema_diff(c["ema"], mine) for c in control), default=None)
    rtol = 1e-6 if o.dtype == "float64" else max(1e-4, 10 * floor if floor is not None else 0.0)
    res.checks["ema"] = {**tol_check(Diff(0.0, worst), rtol), "fp32_floor": floor}
    res.checks["normalisation"] = normalisation
    return res
