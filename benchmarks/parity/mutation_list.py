"""The departures ``mutations.py`` reintroduces, one at a time: what each is, the exact text edit that
makes it (it must occur once in its file), and the check expected to catch it."""

from __future__ import annotations

from dataclasses import dataclass

CONFIG_TEST = "tests/test_reference_configs.py"


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the departure, in words
    file: str
    old: str
    new: str
    catcher: str  # a harness method, or "pytest:<test file>"


P = "src/jeat/presets/"
MUTATIONS = [
    Mutation(
        "ebjdat-perception-0.5",
        "EB-JDAT perception weight 0.5",
        "src/jeat/config.py",
        "ebjdat_perception_weight: float = 1.0",
        "ebjdat_perception_weight: float = 0.5",
        "eb-jdat",
    ),
    Mutation(
        "jempp-outer-step-0.25",
        "JEM++ outer SGLD step 0.25 (its sgld_lr is 0)",
        "src/jeat/sampling/pyld.py",
        "JEMPP_STEP = 0.0  #",
        "JEMPP_STEP = 0.25  #",
        "jempp",
    ),
    Mutation(
        "trades-beta-6.01",
        "TRADES beta 6.01",
        P + "hybrids.py",
        'MethodConfig("trades", attack=TRADES_ATTACK, trades_beta=6.0,',
        'MethodConfig("trades", attack=TRADES_ATTACK, trades_beta=6.01,',
        "trades",
    ),
    Mutation(
        "jempp-px-data-batch",
        "JEM++ p(x) term on the CE batch (px_data=batch)",
        P + "hybrids.py",
        'MethodConfig("jempp", sgld=jempp_sgld(10), px_data="separate",',
        'MethodConfig("jempp", sgld=jempp_sgld(10), px_data="batch",',
        "jempp",
    ),
    Mutation(
        "weat-no-momentum-cycling",
        "WEAT's OneCycle without momentum cycling",
        P + "hybrids.py",
        'cycle_momentum=True), 128, 100, arch="resnet18"',
        'cycle_momentum=False), 128, 100, arch="resnet18"',
        "weat",
    ),
    Mutation(
        "sadajem-ce-batch-64",
        "SADA-JEM CE batch 64 (its label_bs is 128)",
        P + "hybrids.py",
        '        128,\n        200,\n        arch="jempp-wrn-28-10",',
        '        64,\n        200,\n        arch="jempp-wrn-28-10",',
        "sadajem",
    ),
    Mutation(
        "sadajem-px-batch-128",
        "SADA-JEM p(x) batch 128 (its batch_size is 64)",
        P + "hybrids.py",
        'px_data="clean", px_batch_size=64, bn_stats="all"',
        'px_data="clean", px_batch_size=128, bn_stats="all"',
        "sadajem",
    ),
    Mutation(
        "jempp-bn-momentum-0.1",
        "BN momentum 0.1 (torch's default; JEM++ sets 0.9)",
        P + "parts.py",
        "JEMPP_BN_MOMENTUM = 0.9",
        "JEMPP_BN_MOMENTUM = 0.1",
        "jempp",
    ),
    Mutation(
        "sadajem-bn-momentum-0.1",
        "BN momentum 0.1 (torch's default; SADA-JEM sets 0.9)",
        P + "parts.py",
        "JEMPP_BN_MOMENTUM = 0.9",
        "JEMPP_BN_MOMENTUM = 0.1",
        "sadajem",
    ),
    Mutation(
        "jempp-bn-stats-classifier",
        "JEM++ with only the classifier's forwards moving BN statistics",
        P + "hybrids.py",
        'px_data="separate", bn_stats="all"))',
        'px_data="separate", bn_stats="classifier"))',
        "jempp",
    ),
    Mutation(
        "gaussian-ridge-x400",
        "class-Gaussian seed ridge x400",
        "src/jeat/sampling/seeds.py",
        "JEMPP_RIDGE = 1e-4 / 4  #",
        "JEMPP_RIDGE = 1e-4 / 4 * 400  #",
        "jempp",
    ),
    Mutation(
        "sadajem-gaussian-ridge-x400",
        "class-Gaussian seed ridge x400",
        "src/jeat/sampling/seeds.py",
        "JEMPP_RIDGE = 1e-4 / 4  #",
        "JEMPP_RIDGE = 1e-4 / 4 * 400  #",
        "sadajem",
    ),
    Mutation(
        "buffer-clamped",
        "replay buffer stores its samples clamped to [0.001, 0.999]",
        "src/jeat/sampling/buffer.py",
        "self.x[idx] = x.detach().to(self.x.dtype)[last[idx]]",
        "self.x[idx] = x.detach().to(self.x.dtype)[last[idx]].clamp(0.001, 0.999)",
        "jem",
    ),
    Mutation(
        "warmup-shifted",
        "warm-up from (step + 1) / warmup instead of step / warmup",
        "src/jeat/training/optim.py",
        "f *= step / cfg.warmup_steps",
        "f *= (step + 1) / cfg.warmup_steps",
        "jem",
    ),
    Mutation(
        "jem-reinit-0.1",
        "JEM chains restarted at 10 % instead of 5 %",
        P + "parts.py",
        "buffer_size=buffer_size, reinit_prob=0.05)  # fmt: skip",
        "buffer_size=buffer_size, reinit_prob=0.1)  # fmt: skip",
        "jem",
    ),
    Mutation(
        "jempp-reinit-0.1",
        "JEM++ chains restarted at 10 % instead of 5 %",
        P + "parts.py",
        'buffer_size=buffer_size, reinit_prob=0.05, init="gaussian"',
        'buffer_size=buffer_size, reinit_prob=0.1, init="gaussian"',
        "jempp",
    ),
    Mutation(
        "weat-adv-as-nat",
        "paper-weat-adv trained as WEAT_nat",
        P + "hybrids.py",
        'lambda: _weat("adv"))',
        'lambda: _weat("nat"))',
        "weat-adv",
    ),
    Mutation(
        "free-step-7",
        "Free AT step 7/255 instead of 8/255",
        P + "jeat_paper.py",
        'FREE_ATTACK = AttackConfig("ce", 8 / 255, 8 / 255, 1',
        'FREE_ATTACK = AttackConfig("ce", 8 / 255, 7 / 255, 1',
        "free",
    ),
    Mutation(
        "dat-normalisation-rounded",
        "DAT's normalisation std rounded to 4 digits",
        "src/jeat/models/normalize.py",
        "(0.24703225141799082,",
        "(0.2470,",
        "dat",
    ),
    Mutation(
        "trades-milestone-75",
        "TRADES lr drop at 0-based epoch 75 (its code: epoch >= 75, 1-based)",
        P + "hybrids.py",
        "milestones=(74,), gamma=0.1),",
        "milestones=(75,), gamma=0.1),",
        "pytest:" + CONFIG_TEST,
    ),
    Mutation(
        "trades-reflect-padding",
        "TRADES crops reflect-padded (its code zero-pads)",
        P + "hybrids.py",
        '        76,\n        arch="wrn-34-10",\n        augment="flip-crop-zero",',
        '        76,\n        arch="wrn-34-10",\n        augment="flip-crop",',
        "pytest:" + CONFIG_TEST,
    ),
    Mutation(
        "trades-reflect-padding-pixels",
        "TRADES crops reflect-padded (its code zero-pads)",
        P + "hybrids.py",
        '        76,\n        arch="wrn-34-10",\n        augment="flip-crop-zero",',
        '        76,\n        arch="wrn-34-10",\n        augment="flip-crop",',
        "augment:trades",
    ),
    Mutation(
        "jem-noise-0.02",
        "JEM's data noise 0.02 instead of its sigma 0.03 ([-1, 1] units)",
        "src/jeat/data/augment.py",
        "JEM_NOISE_STD = 0.03 / 2",
        "JEM_NOISE_STD = 0.02 / 2",
        "augment:jem",
    ),
    Mutation(
        "trades-normalization-cifar",
        "TRADES inputs normalised (its code feeds [0, 1])",
        P + "hybrids.py",
        '        augment="flip-crop-zero",\n        normalization="none",\n    )  # fmt: skip\n)\n\n\n# WEAT',
        '        augment="flip-crop-zero",\n        normalization="cifar",\n    )  # fmt: skip\n)\n\n\n# WEAT',
        "pytest:" + CONFIG_TEST,
    ),
]
