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
docs/spec/seed_papers.json checks those); DAT (not yet: it configures through Hydra YAML files).
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
CONVERSIONS = {"same": same, "step_u": step_u, "half": half, "as_list": as_list, "weat_variant": weat_variant}


def resolve(method: str, checkout: Path) -> dict:
    sub, script, command, presets, fields, facts = CASES[method]
    root = checkout / sub
    # command: a file holding the published command, a list of flags, or None (the parser's defaults)
    flags = list(command or []) if not isinstance(command, str) else script_flags(root / command, script)
    args = vars(reference_parser(root / script).parse_args(flags))
    missing = [f"{f}: {s!r}" for f, s in facts if s not in (root / f).read_text()]
    if missing:
        raise SystemExit(f"{method}: the code no longer holds: {'; '.join(missing)}")
    rows = []
    for path, arg, conv in fields:
        value = json.loads(arg[1:]) if arg.startswith("=") else args[arg]
        rows.append({"jeat": path, "value": CONVERSIONS[conv](value), "reference": arg.lstrip("="),
                     "reference_value": value, "conversion": conv})  # fmt: skip
    repo, commit, _ = REFERENCES[method]
    return {"repo": repo, "commit": commit, "checkout_commit": checkout_commit(checkout), "script": script,
            "command": command, "flags": flags, "presets": presets, "code_facts": [{"file": f, "snippet": s}
            for f, s in facts], "fields": rows}  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--refs", required=True, help="folder of reference checkouts named <owner>+<repo>")
    p.add_argument("--check", action="store_true", help="compare with the recorded snapshot instead of writing it")
    o = p.parse_args(argv)
    snap = {m: resolve(m, ref_checkout(m, None, o.refs)) for m in CASES}
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
