"""The newer hybrids beside the JEAT paper (issues 12 and 24): TRADES, WEAT, JEM++, SADA-JEM, EB-JDAT,
DAT, each from its authors' code (docs/PARITY.md), at paper scale and on 2 CPU cores."""

from __future__ import annotations

from ..config import (
    AttackConfig,
    DATConfig,
    EMAConfig,
    MethodConfig,
    OptimConfig,
    SGLDConfig,
    TrainConfig,
)
from .parts import (
    CPU_ENERGY_L2,
    JEMPP_BN_MOMENTUM,
    REFERENCE_N_VALID,
    TO_UNIT_NOISE,
    TO_UNIT_STEP,
    cpu,
    jempp_paper,
    jempp_sgld,
    paper,
    sgd_jempp,
    with_fields,
)
from .registry import register

# ------------------------------------------------------------------ newer hybrids (issue 12)
# TRADES (Zhang et al. 2019, train_trades_cifar10.py): WRN-34-10, SGD 0.1 (momentum 0.9), wd 2e-4,
# batch 128, 76 epochs; KL attack eps 0.031, 10 steps of 0.007; beta 6; inputs in [0, 1] without
# normalisation, RandomCrop(32, padding=4) with zero padding + flip. Its epochs count from 1 and
# the lr drops x0.1 when epoch >= 75, i.e. for its epochs 75 and 76: jeat's 0-based milestone 74.
TRADES_ATTACK = AttackConfig("ce", 0.031, 0.007, 10)  # energy unused: the KL attack has its own objective
register("paper-trades", "TRADES: WRN-34-10, KL attack 10 x 0.007 at eps 0.031, beta 6, SGD 0.1, 76 epochs")(
    lambda: paper(
        MethodConfig("trades", attack=TRADES_ATTACK, trades_beta=6.0, bn_stats="all"),
        OptimConfig("sgd", lr=0.1, weight_decay=2e-4, milestones=(74,), gamma=0.1),
        128,
        76,
        arch="wrn-34-10",
        augment="flip-crop-zero",
        normalization="none",
    )  # fmt: skip
)


# WEAT (Mirza et al. 2024; OmnAI-Lab code at b58e362, Adversarial ML/): the standard ResNet-18 (its
# parser's default --architecture Resnet18; its PreActResNet18 branch names a class the repo does not
# define) on [0, 1] inputs, flip-crop, SGD 0.1 (momentum 0.9), wd 5e-4, batch 128, OneCycleLR (pct_start
# 0.25, momentum cycled 0.95 -> 0.85 -> 0.95) over 100 epochs, TRADES' KL attack eps 8/255, 10 steps of
# 2/255, beta 6. Its generated-image set is only a validation loader; training is on CIFAR-10.
def _weat(variant: str) -> TrainConfig:
    return paper(MethodConfig("weat", attack=AttackConfig("ce", 8 / 255, 2 / 255, 10), trades_beta=6.0,
                               weat_variant=variant),
                  OptimConfig("sgd", lr=0.1, weight_decay=5e-4, schedule="onecycle", pct_start=0.25,
                              cycle_momentum=True), 128, 100, arch="resnet18", augment="flip-crop-zero",
                  normalization="none")  # fmt: skip


register("paper-weat", "WEAT_nat: energy-weighted TRADES, ResNet-18, one-cycle SGD 0.1, 100 epochs")(
    lambda: _weat("nat")
)
register("paper-weat-adv", "WEAT_adv: as paper-weat with CE on the adversarial images")(lambda: _weat("adv"))


# JEM++ (scripts/jempp_cifar10.sh): BN WRN-28-10 with JEM's block, sigma 0.03 noise + flip-crop,
# SGD 0.1 wd 4e-4, batch 64, warm-up 1000, x0.2 at 50/100/125 of 150 epochs, proximal sampler
# m = 10, n = 5, pyld_lr 0.2; p(x) and CE batches from two loaders; BN momentum 0.9, every forward
# moving the running statistics.
register("paper-jempp", "JEM++: BN WRN-28-10, proximal sampler m=10 n=5, SGD 0.1, 150 epochs")(
    lambda: jempp_paper(MethodConfig("jempp", sgld=jempp_sgld(10), px_data="separate", bn_stats="all"))
)


# SADA-JEM (scripts/sadajem_cifar10.sh, train_sadajem.py): JEM++'s model and data, trained with
# adaptive SAM (rho 2; the script switches to the adaptive form for rho >= 0.5), SGD 0.1 wd 5e-4,
# warm-up 1000, x0.2 at 60/120/180 of 200 epochs; its sampler is clipped SGLD, 5 steps of sgld_lr 1
# with the gradient clipped to +-1 and no noise ([-1, 1] units: step 1/4, clip 1/2 here), chains in
# the box, Gaussian-seeded, 10k buffer; the -log p(x) term reads an un-augmented batch drawn apart
# from the CE batch (method.px_data = clean). Batches (utils.get_data): the CE loader's label_bs =
# 128 defines the epoch (390 steps); the p(x) batch and the negatives are args.batch_size = 64.
def _sada_sgld(steps: int = 5, buffer_size: int = 10_000) -> SGLDConfig:
    return SGLDConfig(steps=steps, step_size=1.0 * TO_UNIT_STEP, clip_grad=1.0 * TO_UNIT_NOISE, noise=0.0,
                      clamp=True, init="gaussian", buffer_size=buffer_size, reinit_prob=0.05)  # fmt: skip


register("paper-sadajem", "SADA-JEM: JEM++'s WRN-28-10 + adaptive SAM (rho 2), clipped SGLD 5 steps, 200 epochs")(
    lambda: paper(
        MethodConfig("jem", sgld=_sada_sgld(), px_data="clean", px_batch_size=64, bn_stats="all"),
        OptimConfig(
            "sgd",
            lr=0.1,
            weight_decay=5e-4,
            milestones=(60, 120, 180),
            gamma=0.2,
            warmup_steps=1000,
            sam_rho=2.0,
            sam_adaptive=True,
        ),
        128,
        200,
        arch="jempp-wrn-28-10",
        augment="flip-crop",
        bn_momentum=JEMPP_BN_MOMENTUM,
    )  # fmt: skip
)
# CPU twins of the hybrids: the small CNN, 10k images (TRADES/WEAT: 3 KL steps) or 4k (the
# SGLD ones, with the energy L2 the other CPU EBM presets carry), 3 epochs.
_CPU_KL = AttackConfig("ce", 8 / 255, 3 / 255, 3)
register("cpu-trades", "small CNN, TRADES (KL attack 3 x 3/255, beta 6), 10k images, 3 epochs")(
    lambda: cpu(MethodConfig("trades", attack=_CPU_KL), epochs=3, train_limit=10_000)
)
register("cpu-weat", "small CNN, WEAT_nat (energy-weighted TRADES, 3 KL steps), 10k images, 3 epochs")(
    lambda: cpu(MethodConfig("weat", attack=_CPU_KL), epochs=3, train_limit=10_000)
)
register("cpu-jempp", "small CNN, JEM++ (proximal sampler 5x5, Gaussian seeds), energy L2 0.1, 4k images, 3 epochs")(
    lambda: cpu(
        MethodConfig("jempp", sgld=jempp_sgld(5, buffer_size=256), energy_l2=CPU_ENERGY_L2),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )  # fmt: skip
)
register("cpu-sadajem", "small CNN, SADA-JEM (adaptive SAM rho 2, clipped SGLD 5 steps), energy L2 0.1, 4k images")(
    lambda: cpu(
        MethodConfig(
            "jem", sgld=_sada_sgld(5, buffer_size=256), energy_l2=CPU_ENERGY_L2, px_data="clean", px_batch_size=64
        ),
        epochs=3,
        train_limit=4_000,
        optim=OptimConfig(
            "sgd", lr=0.05, nesterov=True, weight_decay=5e-4, schedule="cyclic", sam_rho=2.0, sam_adaptive=True
        ),
    )  # fmt: skip
)

# EB-JDAT on JEM++ (EB-JDAT-JEM++/train.sh): JEM++'s model, data and sampler, SGD 0.01 (!), wd 4e-4,
# batch 64, warm-up 1000, x0.2 at 40/80/120 of 150 epochs (decay rate: JEM++'s default 0.2);
# adversarial sampler 5 steps of 1/255 from a 4/255 uniform start ([-1, 1] units: 8/255, 2/255).
EBJDAT_ATTACK = AttackConfig("joint", 4 / 255, 1 / 255, 5)
register("paper-eb-jdat", "EB-JDAT on JEM++: BN WRN-28-10, PYLD m=10 n=5, adversarial joint term, SGD 0.01")(
    lambda: paper(
        MethodConfig("eb-jdat", attack=EBJDAT_ATTACK, sgld=jempp_sgld(10), px_data="separate", bn_stats="all"),
        OptimConfig(**{**sgd_jempp().__dict__, "lr": 0.01, "milestones": (40, 80, 120)}),
        64,
        150,
        arch="jempp-wrn-28-10",
        augment="jem",
        bn_momentum=JEMPP_BN_MOMENTUM,
        valid_size=REFERENCE_N_VALID,  # EB-JDAT-JEM++'s train_jempp.py: --n_valid 5000, as JEM++'s
    )  # fmt: skip
)
register("cpu-eb-jdat", "small CNN, EB-JDAT on JEM++ (PYLD 5x5, 3-step adversarial sampler), energy L2 0.1, 4k images")(
    lambda: cpu(
        MethodConfig(
            "eb-jdat",
            attack=AttackConfig("joint", 4 / 255, 2 / 255, 3),
            sgld=jempp_sgld(5, buffer_size=256),
            energy_l2=CPU_ENERGY_L2,
        ),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )  # fmt: skip
)

# DAT (xuwangyin/DAT, experiments/cifar10/*_seed1.yaml, the config of its T40 model): WRN-34-10 with the
# CIFAR mean/std inside the model and BN frozen (use_batchnorm=false), stage two from an l_2-robust
# classifier (give it with --init; theirs is InNOutRobustness' WRN-34-10 AT), SGD 0.001 (Nesterov, momentum
# 0.9, wd 5e-4, constant), batch 128, EMA 0.999 (warm-up (1+n)/(10+n)); classifier: l_2 PGD 10 x 0.1 at eps
# 0.5, no random start; discriminator: unbounded l_2 PGD of 0.1 on f(x)[y], T from 0 up to 50 as the
# AUC passes 0.8 over 1000 images. Departures (docs/TRAINING.md): out-of-distribution images from the
# class Gaussians instead of 80M Tiny Images (not distributable; give them with data.outdist=npz:PATH),
# flip-crop instead of AutoAugment + Cutout for the classifier batch; the reference runs until stopped
# (total_epochs unset), here 100 epochs.
DAT_ATTACK = AttackConfig("ce", 0.5, 0.1, 10, random_start=False, norm="l2")

register("paper-dat", "DAT: WRN-34-10, l_2 AT (eps 0.5) + BCE energy vs attacked OOD images, T to 50 (--init)")(
    lambda: paper(
        MethodConfig("dat", attack=DAT_ATTACK, dat=DATConfig()),
        OptimConfig("sgd", lr=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="constant"),
        128,
        100,
        arch="wrn-34-10",
        augment="flip-crop-zero",  # rebm/training/data.py: RandomCrop(32, padding=4), zeros, for every loader
        normalization="cifar-dat",  # the reference's exact constants (models/normalize.py)
        ema=EMAConfig(decay=0.999, warmup=10, copy_first=True),
    )  # fmt: skip
)
# CPU scale: stage two from cpu-pgd (`--init runs/cpu-pgd`), 3 epochs of 10k images. The attacks are
# shorter (classifier 3 x 0.2, the discriminator's T up to 20) and lr 0.01 so that ~230 steps move a
# small CNN; EMA 0.99 for the same reason.
CPU_DAT_ATTACK = AttackConfig("ce", 0.5, 0.2, 3, random_start=False, norm="l2")
CPU_DAT_OPTIM = OptimConfig("sgd", lr=0.01, nesterov=True, weight_decay=5e-4, schedule="constant")
register("cpu-dat", "small CNN, DAT stage two (--init a cpu-pgd run): l_2 PGD-3 AT + BCE energy, T to 20, 10k images")(
    lambda: with_fields(
        cpu(
            MethodConfig("dat", attack=CPU_DAT_ATTACK, dat=DATConfig(max_steps=20)),
            epochs=3,
            train_limit=10_000,
            optim=CPU_DAT_OPTIM,
        ),
        ema=EMAConfig(decay=0.99, warmup=10, copy_first=True),
    )  # fmt: skip
)
