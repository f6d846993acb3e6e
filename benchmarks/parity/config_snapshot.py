"""Each reference's resolved training configuration, recorded, and the paper-* preset fields it pins.

For every reference below this reads, from its checkout at the compared commit, the argparse defaults
overridden by its published command's flags (``references.reference_parser`` / ``script_flags``: the
commit's own values, not our reading), checks the settings its code hard-codes (an exact snippet
that must occur in the named file), and derives the jeat field each one pins through the unit
conversion named beside it. The result is ``docs/spec/reference_configs.json``; the CI test
``tests/test_reference_configs.py`` compares every listed paper-* preset against it without the
checkouts, so changing a preset field that a reference pins fails CI.

    python benchmarks/parity/config_snapshot.py --refs /path/to/checkouts          # rewrite the snapshot
    python benchmarks/parity/config_snapshot.py --refs /path/to/checkouts --check  # exit 1 if it moved

Covered: JEM, JEM++, EB-JDAT, SADA-JEM, TRADES, WEAT and WEAT_adv (argparse scripts). Not covered, and why:
Free and Fast AT (the JEAT paper's Table 4 sets their hyper-parameters, not locuslab's defaults:
docs/spec/seed_papers.json checks those). DAT configures through OmegaConf YAML files: its experiment file
(the one the step harness trains) is read as written (``resolve_dat``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from references import REFERENCES, checkout_commit, ref_checkout, reference_parser, script_flags  # noqa: E402

OUT = ROOT / "docs" / "spec" / "reference_configs.json"


# Conversions from a reference's units to jeat's ([-1, 1] pixels -> [0, 1]: a gradient doubles, a step halves).
def same(v):
    return v


def step_u(v):  # an SGLD/PYLD step on u = 2x - 1 of lr * grad_u is lr / 4 * grad_x on x
    return v / 4


def half(v):  # a distance or a noise std in u units
    return v / 2


def as_list(v):
    return [int(e) for e in v]


def dat_arch(v):  # rebm's model_type -> jeat's arch name
    return {"WideResNet34x10": "wrn-34-10", "WideResNet28x10": "wrn-28-10"}[v]


def dat_schedule(v):  # fixed_lr: true -> the lr never moves
    return "constant" if v else "not constant"


def dat_eps(v):  # the OOD attack's eps: .inf = unbounded (jeat: None)
    return None if v == float("inf") else v


def dat_energy(v):  # logsumexp: true -> E(x) = -logsumexp f(x)
    return "logsumexp" if v else "max logit"


def dat_norm(v):  # normalize_input: true -> rebm's own CIFAR-10 mean/std (models/normalize.py "cifar-dat")
    return "cifar-dat" if v else "none"


def dat_bn(v):  # use_batchnorm: false -> its WideResNet's BN layers hold their statistics
    return "batch" if v else "frozen"


def dat_augment(v):  # augm_type_generation "original": RandomCrop(32, padding=4) (zeros) + flip
    return {"original": "flip-crop-zero"}[v]


def weat_variant(v):  # --adv-loss WEAT_nat | WEAT_adv -> method.weat_variant nat | adv
    return {"WEAT_nat": "nat", "WEAT_adv": "adv"}[v]


# name -> (checkout sub-folder, training script, file with the published command, presets, fields, code facts)
# field: (jeat dotted path, reference argument, conversion name); a reference argument "=VALUE" is a
# constant the code hard-codes (its snippet is in the facts).
_JEM_FAMILY = [
    ("optim.lr", "lr", "same"),
    ("data.batch_size", "batch_size", "same"),
    ("epochs", "n_epochs", "same"),
    ("optim.warmup_steps", "warmup_iters", "same"),
    ("optim.milestones", "decay_epochs", "as_list"),
    ("optim.weight_decay", "weight_decay", "same"),
    ("optim.name", "optimizer", "same"),
    ("method.sgld.steps", "n_steps", "same"),
    ("method.sgld.buffer_size", "buffer_size", "same"),
    ("method.sgld.reinit_prob", "reinit_freq", "same"),
    ("method.px_weight", "p_x_weight", "same"),
    ("data.valid_size", "n_valid", "same"),
]
_PYLD = [
    ("method.sgld.inner_steps", "in_steps", "same"),
    ("method.sgld.inner_step_size", "pyld_lr", "step_u"),
    ("method.sgld.step_size", "sgld_lr", "step_u"),
    ("method.sgld.noise", "sgld_std", "half"),
    ("optim.gamma", "decay_rate", "same"),
    ("optim.momentum", "=0.9", "same"),
    ("model.bn_momentum", "=0.9", "same"),
    # sample_q's `# f.eval()` is commented out: SGLD's forwards, like every other, move BN running statistics
    ("method.bn_stats", '="all"', "same"),
]
_SGD = "optim = t.optim.SGD(params, lr=args.lr, momentum=.9, weight_decay=args.weight_decay)"
_ADAM = "optim = t.optim.Adam(params, lr=args.lr, betas=[.9, .999], weight_decay=args.weight_decay)"
_BN = "return nn.BatchNorm2d(n_filters, momentum=0.9)"
_WEAT = [
    ("data.batch_size", "batch_size", "same"),
    ("epochs", "epochs", "same"),
    ("optim.weight_decay", "weight_decay", "same"),
    ("optim.lr", "lr", "same"),
    ("optim.momentum", "momentum", "same"),
    ("method.attack.eps", "epsilon", "same"),
    ("method.attack.steps", "num_steps", "same"),
    ("method.attack.step_size", "step_size", "same"),
    ("method.trades_beta", "beta", "same"),
    ("method.weat_variant", "adv_loss", "weat_variant"),
    ("optim.name", '="sgd"', "same"),
    ("optim.schedule", '="onecycle"', "same"),
    ("optim.pct_start", "=0.25", "same"),
    ("optim.cycle_momentum", "=true", "same"),  # OneCycleLR's default; main.py does not turn it off
    ("data.valid_size", "=0", "same"),  # trains on all of CIFAR-10's training set, validates on its test set
    ("data.augment", '="flip-crop-zero"', "same"),
    ("model.normalization", '="none"', "same"),
    ("model.arch", '="resnet18"', "same"),
]  # parser default Resnet18 -> models/resnet.py's ResNet18
_WEAT_FACTS = [
    (
        "main.py",
        "optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)",
    ),
    (
        "main.py",
        "OneCycleLR(optimizer, max_lr=args.lr, pct_start=0.25,\n"
        "                                                    steps_per_epoch=update_steps, "
        "epochs=int(args.epochs))",
    ),
    (
        "main.py",
        "transforms.Compose([transforms.RandomCrop(32, padding=4), "
        "transforms.RandomHorizontalFlip(0.5), transforms.ToTensor()])",
    ),
]
CASES = {
    "jem": ("", "train_wrn_ebm.py", "README.md", ["paper-jem"],
            _JEM_FAMILY + [("method.sgld.step_size", "sgld_lr", "step_u"), ("method.sgld.noise", "sgld_std", "half"),
                           ("optim.gamma", "decay_rate", "same"), ("optim.betas", "=[0.9, 0.999]", "same")],
            [("train_wrn_ebm.py", _ADAM),
             ("train_wrn_ebm.py", "np.random.seed(1234)")]),
    "jempp": ("", "train_jempp.py", "scripts/jempp_cifar10.sh", ["paper-jempp"], _JEM_FAMILY + _PYLD,
              [("train_jempp.py", _SGD),
               ("models/norms.py", _BN),
               ("utils.py", "np.random.seed(1234)")]),
    "eb-jdat": ("EB-JDAT-JEM++", "train_jempp.py", "train.sh", ["paper-eb-jdat"],
                _JEM_FAMILY + _PYLD + [("method.ebjdat_px_weight", "p_x_xadv_weight", "same"),
                                       ("method.ebjdat_ce_weight", "p_y_given_xadv_weight", "same")],
                [("train_jempp.py", _SGD),
                 ("models/norms.py", _BN), ("train_jempp.py", "    # f.eval()"),
                 ("utils.py", "np.random.seed(1234)")]),
    "sadajem": ("", "train_sadajem.py", "scripts/sadajem_cifar10.sh", ["paper-sadajem"],
                [f for f in _JEM_FAMILY if f[0] not in ("data.batch_size", "method.px_weight")] + [
                    ("method.px_weight", "px", "same"),
                    ("method.px_batch_size", "batch_size", "same"),  # p(x) loader: args.batch_size
                    ("data.batch_size", "=128", "same"),  # CE loader: label_bs = 128 (utils.py)
                    ("method.sgld.step_size", "sgld_lr", "step_u"), ("method.sgld.noise", "sgld_std", "half"),
                    ("method.sgld.clip_grad", "=1", "half"),  # t.clamp(eta, -1, 1) * sgld_lr, sgld_lr = 1
                    ("optim.gamma", "decay_rate", "same"), ("optim.sam_rho", "rho", "same"),
                    ("optim.sam_adaptive", "=true", "same"),  # adaptive=False if arg.rho < 0.5 else True
                    ("optim.momentum", "=0.9", "same"), ("model.bn_momentum", "=0.9", "same"),
                    ("method.bn_stats", '="all"', "same")],
                [("utils.py", "label_bs = 128"), ("models/norms.py", _BN), ("train_sadajem.py", "    # f.eval()"),
                 ("train_sadajem.py", "tmp_inp = x_k + t.clamp(eta, -1, 1) * args.sgld_lr"),
                 ("train_sadajem.py", "rho=arg.rho, adaptive=False if arg.rho < 0.5 else True)")]),
    "trades": ("", "train_trades_cifar10.py", "README.md", ["paper-trades"],
               [("data.batch_size", "batch_size", "same"), ("epochs", "epochs", "same"),
                ("optim.weight_decay", "weight_decay", "same"), ("optim.lr", "lr", "same"),
                ("optim.momentum", "momentum", "same"), ("method.attack.eps", "epsilon", "same"),
                ("method.attack.steps", "num_steps", "same"), ("method.attack.step_size", "step_size", "same"),
                ("method.trades_beta", "beta", "same"),
                ("optim.milestones", "=[74]", "as_list"),  # `if epoch >= 75` with epochs counted from 1
                ("optim.gamma", "=0.1", "same"), ("data.valid_size", "=0", "same"),
                ("data.augment", '="flip-crop-zero"', "same"),  # RandomCrop(32, padding=4): zeros
                ("model.normalization", '="none"', "same")],  # ToTensor() last: [0, 1] into the model
               [("train_trades_cifar10.py", "if epoch >= 75:"), ("train_trades_cifar10.py", "lr = args.lr * 0.1"),
                ("train_trades_cifar10.py", "transforms.RandomCrop(32, padding=4)"),
                ("train_trades_cifar10.py", "    transforms.ToTensor(),\n])\ntransform_test")]),
    # WEAT has no published command (its README shows the loss only): parser.py's defaults are the run.
    "weat": ("Adversarial ML", "parser.py", None, ["paper-weat"], _WEAT, _WEAT_FACTS),
    "weat-adv": ("Adversarial ML", "parser.py", ["--adv-loss", "WEAT_adv"], ["paper-weat-adv"], _WEAT, _WEAT_FACTS),
}  # fmt: skip
CONVERSIONS = {
    "same": same,
    "step_u": step_u,
    "half": half,
    "as_list": as_list,
    "weat_variant": weat_variant,
    "dat_arch": dat_arch,
    "dat_schedule": dat_schedule,
    "dat_eps": dat_eps,
    "dat_energy": dat_energy,
    "dat_norm": dat_norm,
    "dat_bn": dat_bn,
    "dat_augment": dat_augment,
}
# DAT configures through OmegaConf YAML files, not argparse: the experiment file the harness trains
# (its T40 model, seed 1), read as written; a field is a dotted path in that file.
DAT_EXPERIMENT = (
    "experiments/cifar10/cifar10_conditional_r1reg0_augauto_innoutloader_steps40_bs128_indistxent_sgd_"
    "lr0.001_stesp50_wd_wrn3410_indistaugoriginal_innoutpretrained_mean0_bestavg_ema_logsumexp_seed1.yaml"
)
DAT_FIELDS = [
    ("optim.name", "optimizer", "same"),
    ("optim.lr", "lr", "same"),
    ("optim.weight_decay", "wd", "same"),
    ("data.batch_size", "batch_size", "same"),
    ("optim.schedule", "fixed_lr", "dat_schedule"),
    ("optim.momentum", "=0.9", "same"),
    ("optim.nesterov", "=true", "same"),
    ("method.attack.eps", "indist_attack_clf.eps", "same"),
    ("method.attack.step_size", "indist_attack_clf.step_size", "same"),
    ("method.attack.steps", "indist_attack_clf.max_steps", "same"),
    ("method.dat.step_size", "attack.step_size", "same"),
    ("method.dat.max_steps", "attack.max_steps", "same"),
    ("method.dat.start_steps", "attack.start_step", "same"),
    ("method.dat.eps", "attack.eps", "dat_eps"),
    ("method.dat.auc_threshold", "AUC_th", "same"),
    ("method.dat.auc_window", "min_imgs_per_threshold", "same"),
    ("method.dat.r1", "r1reg", "same"),
    ("method.dat.energy", "logsumexp", "dat_energy"),
    ("method.dat.bn", "model.use_batchnorm", "dat_bn"),
    ("model.arch", "model.model_type", "dat_arch"),
    ("model.normalization", "model.normalize_input", "dat_norm"),
    ("ema.decay", "=0.999", "same"),
    ("data.augment", "augm_type_generation", "dat_augment"),
]
DAT_FACTS = [
    (
        "rebm/training/modeling.py",
        "                momentum=0.9,\n                weight_decay=wd,\n                nesterov=True,",
    ),
    ("rebm/training/train.py", '            avg_type="ema",\n            ema_decay=0.999,'),
    (
        "rebm/training/data.py",
        '    if augm_type == "original":\n        transform = transforms.Compose(\n'
        "            [\n                transforms.RandomCrop(32, padding=4),",
    ),
]


def _record(method: str, checkout: Path, root: Path, lookup, fields, facts, **where) -> dict:
    """The snapshot of one reference: its code facts checked in ``root``, then each field's value
    (``lookup(key)``, or a constant ``=VALUE``) converted to the jeat field it pins."""
    missing = [f"{f}: {s!r}" for f, s in facts if s not in (root / f).read_text()]
    if missing:
        raise SystemExit(f"{method}: the code no longer holds: {'; '.join(missing)}")
    rows = []
    for path, key, conv in fields:
        value = json.loads(key[1:]) if key.startswith("=") else lookup(key)
        rows.append({"jeat": path, "value": CONVERSIONS[conv](value), "reference": key.lstrip("="),
                     "reference_value": "inf" if value == float("inf") else value, "conversion": conv})  # fmt: skip
    repo, commit, _ = REFERENCES[method]
    return {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout), **where,
            "code_facts": [{"file": f, "snippet": s} for f, s in facts], "fields": rows}  # fmt: skip


def resolve(method: str, checkout: Path) -> dict:
    sub, script, command, presets, fields, facts = CASES[method]
    root = checkout / sub
    # command: a file holding the published command, a list of flags, or None (the parser's defaults)
    flags = list(command or []) if not isinstance(command, str) else script_flags(root / command, script)
    args = vars(reference_parser(root / script).parse_args(flags))
    return _record(method, checkout, root, args.__getitem__, fields, facts, script=script, command=command,
                   flags=flags, presets=presets)  # fmt: skip


def resolve_dat(checkout: Path) -> dict:
    from omegaconf import OmegaConf  # DAT's own config library (its requirement, not jeat's)

    cfg = OmegaConf.to_container(OmegaConf.load(checkout / DAT_EXPERIMENT), resolve=True)

    def lookup(key: str):  # a dotted path in the experiment file
        value = cfg
        for part in key.split("."):
            value = value[part]
        return value

    return _record("dat", checkout, checkout, lookup, DAT_FIELDS, DAT_FACTS, script="train.py",
                   command=DAT_EXPERIMENT, flags=[], presets=["paper-dat"])  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", required=True, help="folder of reference checkouts named <owner>+<repo>")
    p.add_argument("--check", action="store_true", help="compare with the recorded snapshot instead of writing it")
    o = p.parse_args(argv)
    snap = {m: resolve(m, ref_checkout(m, None, o.refs)) for m in CASES}
    snap["dat"] = resolve_dat(ref_checkout("dat", None, o.refs))
    text = json.dumps(snap, indent=1) + "\n"
    if o.check:
        same_ = OUT.is_file() and json.loads(OUT.read_text()) == json.loads(text)
        print("snapshot matches the checkouts" if same_ else f"{OUT} differs from the checkouts: rewrite it")
        return 0 if same_ else 1
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(OUT)
    print(f"wrote {OUT}: {sum(len(v['fields']) for v in snap.values())} fields of {len(snap)} references")
    return 0


if __name__ == "__main__":
    sys.exit(main())
