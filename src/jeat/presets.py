"""Named configurations: the papers' settings (``paper-*``) and small CPU ones (``cpu-*``).

Paper presets follow Table 4 of the JEAT paper where it speaks; where it is silent they take
the cited method's own defaults (JEM's SGLD settings, Madry's PGD-10, Wong et al.'s Fast AT),
each marked below. CPU presets keep the algorithm and shrink model, epochs and data so that a
run finishes on 2 cores; their wall times are measured in README.md / benchmarks/.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import (
    AttackConfig,
    DataConfig,
    DATConfig,
    EMAConfig,
    MethodConfig,
    ModelConfig,
    OptimConfig,
    SGLDConfig,
    TrainConfig,
)
from .sampling.pyld import JEMPP_INNER_CLIP, JEMPP_INNER_STEP, JEMPP_INNER_STEPS, JEMPP_STEP

PresetFn = Callable[[], TrainConfig]
_PRESETS: dict[str, tuple[PresetFn, str]] = {}


def register(name: str, description: str):
    def deco(fn: PresetFn) -> PresetFn:
        _PRESETS[name] = (fn, description)
        return fn

    return deco


def get_preset(name: str) -> TrainConfig:
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(sorted(_PRESETS))}")
    cfg = _PRESETS[name][0]()
    cfg.preset = name
    return cfg


def available_presets() -> dict[str, str]:
    return {k: v[1] for k, v in sorted(_PRESETS.items())}


# ------------------------------------------------------------------ shared pieces
def _adam_table4(epochs: int = 200, milestones: tuple[int, ...] = (160, 180)) -> OptimConfig:
    # Table 4 (JEAT, JEM): Adam 1e-4, betas (0.9, 0.999), no weight decay, decay at [160, 180].
    # The decay factor is not in the paper; 0.3 is JEM's `decay_rate` default.
    return OptimConfig(name="adam", lr=1e-4, weight_decay=0.0, schedule="multistep", milestones=milestones, gamma=0.3)


def _sgd_madry(epochs: int = 200) -> OptimConfig:
    # Madry-style PGD-AT on WRN-28-10: SGD 0.1, momentum 0.9, wd 2e-4 (Table 4 'FREE' row), /10 at 50% and 75%.
    return OptimConfig(name="sgd", lr=0.1, weight_decay=2e-4, schedule="multistep",
                       milestones=(epochs // 2, epochs * 3 // 4), gamma=0.1)  # fmt: skip


# JEM works on images in [-1, 1]; we work in [0, 1]. The same Langevin dynamics in our units:
# step / 4 (the gradient w.r.t. [0, 1] pixels is twice as large, and a step is half as long)
# and noise / 2. Clipping bounds and eps are halved likewise.
TO_UNIT_STEP, TO_UNIT_NOISE = 1 / 4, 1 / 2


def _jem_sgld(steps: int = 20, buffer_size: int = 10_000) -> SGLDConfig:
    # JEM's defaults (Grathwohl et al. code): 20 steps, step 1, noise 0.01 ([-1, 1] units), buffer
    # 10k, reinit 5%. The JEAT paper does not state these; we take JEM's, as JEAT builds on JEM's
    # sampler, converted to [0, 1] units: step 0.25, noise 0.005.
    return SGLDConfig(steps=steps, step_size=1.0 * TO_UNIT_STEP, noise=0.01 * TO_UNIT_NOISE,
                      buffer_size=buffer_size, reinit_prob=0.05)  # fmt: skip


def _jempp_sgld(steps: int = 10, buffer_size: int = 10_000) -> SGLDConfig:
    # JEM++ (train_jempp.py + scripts/jempp_cifar10.sh at fba6ba5) as Robust JEM uses it: the proximal
    # sampler (sampling/pyld.py) with m outer steps (JEM++'s script and Robust JEM's training: m = 10)
    # and n = 5 inner steps, sgld_lr 0 (its default since c64ab5b: no outer step of its own),
    # pyld_lr 0.2, clip eps 1, no noise, samples kept in the box,
    # unconditional (logsumexp) chains seeded by the class-conditional Gaussians; buffer 10k, rho 0.05.
    return SGLDConfig(sampler="pyld", steps=steps, inner_steps=JEMPP_INNER_STEPS, step_size=JEMPP_STEP,
                      inner_step_size=JEMPP_INNER_STEP, inner_clip=JEMPP_INNER_CLIP, noise=0.0,
                      buffer_size=buffer_size, reinit_prob=0.05, init="gaussian", class_conditional_buffer=False,
                      clamp=True)  # fmt: skip


def _sgd_jempp(epochs: int = 150) -> OptimConfig:
    # JEM++'s CIFAR-10 script: SGD 0.1 (momentum 0.9), weight decay 4e-4, warm-up 1000 iterations,
    # lr x 0.2 at epochs [50, 100, 125] of 150.
    return OptimConfig(name="sgd", lr=0.1, weight_decay=4e-4, schedule="multistep", milestones=(50, 100, 125),
                       gamma=0.2, warmup_steps=1000)  # fmt: skip


def _paper(method: MethodConfig, optim: OptimConfig, batch: int, epochs: int, arch: str = "wrn-28-10",
           augment: str = "flip-crop", bn_momentum: float | None = None, normalization: str | None = None,
           **kw) -> TrainConfig:  # fmt: skip
    # fp32 (amp=none): every reference trains in fp32; `--set amp=auto` trains in bf16 where the
    # device computes it natively, 2-4x faster (docs/SCALE.md), at the cost of exact parity.
    return TrainConfig(epochs=epochs, amp="none", data=DataConfig(batch_size=batch, augment=augment),
                       model=ModelConfig(arch=arch, normalization=normalization, bn_momentum=bn_momentum), optim=optim,
                       method=method,
                       checkpoint_every=500, **kw)  # fmt: skip


# JEM++'s family (JEM++, SADA-JEM, EB-JDAT, and Robust JEM on JEM++): BN momentum 0.9 (their
# models/norms.py) and every train-mode forward moves the running statistics (method.bn_stats=all).
JEMPP_BN_MOMENTUM = 0.9


def _jempp_paper(method: MethodConfig) -> TrainConfig:
    """JEM++'s CIFAR-10 run: its BN WRN-28-10, SGD 0.1 over 150 epochs, batch 64, JEM's augmentation."""
    return _paper(method, _sgd_jempp(), 64, 150, arch="jempp-wrn-28-10", augment="jem",
                  bn_momentum=JEMPP_BN_MOMENTUM)  # fmt: skip


# Robust JEM: eps = 0.1 in [-1, 1] units (its inputs are scaled to [-1, 1]) = 0.05 in [0, 1].
ROBUST_JEM_EPS = 0.1 / 2

# ------------------------------------------------------------------ paper presets (WRN-28-10)
register("paper-standard", "WRN-28-10, plain cross-entropy, SGD 0.1, 200 epochs")(
    lambda: _paper(MethodConfig("standard"), _sgd_madry(), 128, 200)
)
for _s in (8, 16, 24):
    register(f"paper-noise-{_s}", f"WRN-28-10, Gaussian noise sigma={_s}/255 injected (Fig. 5)")(
        lambda s=_s: _paper(MethodConfig("noise", noise_sigma=s / 255), _sgd_madry(), 128, 200)
    )
register("paper-pgd", "WRN-28-10, Madry PGD-10 AT, eps 8/255, step 2/255")(
    lambda: _paper(MethodConfig("pgd", attack=AttackConfig("ce", 8 / 255, 2 / 255, 10)), _sgd_madry(), 128, 200)
)
register("paper-fast", "WRN-28-10, Fast AT (FGSM, random start, step 10/255), cyclic LR 0-0.2, 15 epochs (Table 4)")(
    lambda: _paper(
        MethodConfig("fgsm", attack=AttackConfig("ce", 8 / 255, 10 / 255, 1)),
        OptimConfig("sgd", lr=0.2, weight_decay=5e-4, schedule="cyclic"),
        128,
        15,
    )
)
register("paper-prejeat", "WRN-28-10, PreJEAT (Alg. 2): one energy-attack step, CE loss; Adam 1e-4, batch 64")(
    lambda: _paper(MethodConfig("prejeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1)), _adam_table4(), 64, 200)
)


# JEAT and JEM as a matched pair (Table 4 gives JEAT JEM's hyper-parameters; neither paper says
# JEAT's WRN-28-10 has batch norm): the same JEM WRN-28-10 (JEM's block, no normalisation,
# LeakyReLU 0.2, [-1, 1] inputs), JEM's augmentation, Adam 1e-4 with JEM's 1000-step warm-up, the
# same sampler. They differ only in the method. paper-jeat-bn keeps the BN/ReLU WRN as an option.
def _jem_pair(method: MethodConfig) -> TrainConfig:
    return _paper(method, OptimConfig(**{**_adam_table4().__dict__, "warmup_steps": 1000}), 64, 200,
                  arch="jem-wrn-28-10", augment="jem")  # fmt: skip


JEAT_ATTACK = AttackConfig("joint", 8 / 255, 8 / 255, 1)
register("paper-jeat", "JEAT (Alg. 1) on JEM's WRN-28-10; Table 4, the same settings as paper-jem")(
    lambda: _jem_pair(MethodConfig("jeat", attack=JEAT_ATTACK, sgld=_jem_sgld()))
)
# JEM draws its p(x) batch and its CE batch from two loaders (train_wrn_ebm.py): px_data=separate.
register("paper-jem", "JEM's WRN-28-10 (no BN, LeakyReLU), JEM objective, Table 4, warm-up 1000 steps")(
    lambda: _jem_pair(MethodConfig("jem", sgld=_jem_sgld(), px_data="separate"))
)
register("paper-jeat-bn", "JEAT (Alg. 1) on a BN/ReLU WRN-28-10 with flip-crop; Table 4 otherwise")(
    lambda: _paper(MethodConfig("jeat", attack=JEAT_ATTACK, sgld=_jem_sgld()), _adam_table4(), 64, 200)
)
register("paper-robust-jem", "Robust JEM: JEM++ (BN WRN, SGD, proximal sampler m=10, n=5) + PGD-15 AT, eps 0.05")(
    lambda: _jempp_paper(
        MethodConfig(
            "robust-jem",
            attack=AttackConfig("ce", ROBUST_JEM_EPS, ROBUST_JEM_EPS / 4, 15),
            sgld=_jempp_sgld(10),
            px_data="separate",
            bn_stats="all",
        )
    )
)


# ------------------------------------------------------------------ CPU presets (2 cores)
def _cpu(method: MethodConfig, epochs: int = 10, arch: str = "cnn-small", lr: float = 0.05, batch: int = 128,
         train_limit: int | None = None, optim: OptimConfig | None = None,
         augment: str = "flip-crop") -> TrainConfig:  # fmt: skip
    # One-cycle (cyclic) SGD reaches a good accuracy in few epochs (Wong et al.'s schedule).
    return TrainConfig(epochs=epochs, data=DataConfig(batch_size=batch, augment=augment, train_limit=train_limit),
                       model=ModelConfig(arch=arch),
                       optim=optim or OptimConfig("sgd", lr=lr, nesterov=True, weight_decay=5e-4, schedule="cyclic"),
                       method=method, eval_robust_n=500, log_every=50,
                       checkpoint_every=50)  # rollback targets between epochs (guard.keep_checkpoints)  # fmt: skip


register("cpu-standard", "small CNN, plain cross-entropy, 10 epochs (the README's main job)")(
    lambda: _cpu(MethodConfig("standard"))
)
for _s in (8, 16, 24):
    register(f"cpu-noise-{_s}", f"small CNN, Gaussian noise sigma={_s}/255 (Fig. 5), 10 epochs")(
        lambda s=_s: _cpu(MethodConfig("noise", noise_sigma=s / 255))
    )
# Budgets: 2 shared cores run the small CNN at ~60-90 img/s per forward+backward (bf16); an
# attack step or an SGLD step costs about one more. Each preset below is sized to ~15-20 min.
register("cpu-pgd", "small CNN, PGD-3 AT (eps 8/255, step 3/255), 10k images, 3 epochs")(
    lambda: _cpu(MethodConfig("pgd", attack=AttackConfig("ce", 8 / 255, 3 / 255, 3)), epochs=3, train_limit=10_000)
)
register("cpu-fgsm", "small CNN, Fast AT (FGSM + random start, step 10/255), 10k images, 4 epochs")(
    lambda: _cpu(MethodConfig("fgsm", attack=AttackConfig("ce", 8 / 255, 10 / 255, 1)), epochs=4, train_limit=10_000)
)
register("cpu-prejeat", "small CNN, PreJEAT (energy FGSM + random start), 10k images, 4 epochs")(
    lambda: _cpu(
        MethodConfig("prejeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1)), epochs=4, train_limit=10_000
    )
)


# JEM and JEAT at CPU scale: a few hundred steps instead of JEM's ~150k, so a 10k-chain buffer
# never matures (each chain gets ~10 SGLD steps in all), the model separates data from near-noise
# negatives and E(x~) runs away. A 256-chain buffer is revisited every ~2-4 steps, so its chains
# track the model (energy gap stays near 0). Probes on 5k images x 3 epochs
# (benchmarks/results/sgld_probes_cpu.md):
# 10k buffer + 5 steps: gap -1 to -3, JEAT 19 % test acc; 256 + 10 steps: gap within +-0.4, 25 %.
# Adam (1e-3 and 1e-4) and JEM's BN-free CNN ran away or diverged at this budget. JEM is JEAT's
# twin here (same CNN, optimizer, sampler), so the two differ only in the energy attack. JEM
# still collapses late in a 4-epoch run (both seeds); JEAT does not (docs/RESULTS.md, point 6).
def _cpu_sgld() -> SGLDConfig:
    return _jem_sgld(steps=10, buffer_size=256)


# IGEBM's energy penalty is the SGLD twins' stabiliser: without it JEM collapsed on both seeds of
# the study (docs/RESULTS.md), with alpha = 0.1 it did not. Both twins carry it so that they still
# differ only in the attack; benchmarks/results/stability_cpu.md measures it over seeds and data
# sets (docs/TRAINING.md, "Stability").
CPU_ENERGY_L2 = 0.1


register("cpu-jeat", "small CNN, JEAT: energy FGSM + 10-step SGLD, 256-chain buffer, 4k images, 3 epochs")(
    lambda: _cpu(
        MethodConfig(
            "jeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1), sgld=_cpu_sgld(), energy_l2=CPU_ENERGY_L2
        ),
        epochs=3,
        train_limit=4_000,
    )
)
register("cpu-jem", "small CNN, JEM objective + energy L2 0.1, 10-step SGLD, 256-chain buffer, 4k images, 3 epochs")(
    lambda: _cpu(MethodConfig("jem", sgld=_cpu_sgld(), energy_l2=CPU_ENERGY_L2), epochs=3, train_limit=4_000)
)
# Robust JEM at CPU scale: JEM++'s sampler (5 outer x 5 inner proximal steps, unconditional chains
# from the class Gaussians) and its optimizer family (SGD, one-cycle here) on the twins' BN CNN,
# a 256-chain buffer for the short run, PGD-3, JEM's augmentation.
register("cpu-robust-jem", "small CNN, PGD-3 AT (eps 0.05) + JEM++ proximal sampler 5x5, energy L2 0.1, 4k images")(
    lambda: _cpu(
        MethodConfig(
            "robust-jem",
            attack=AttackConfig("ce", ROBUST_JEM_EPS, ROBUST_JEM_EPS / 2, 3),
            sgld=_jempp_sgld(5, buffer_size=256),
            energy_l2=CPU_ENERGY_L2,
        ),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )
)

# ------------------------------------------------------------------ newer hybrids (issue 12)
# TRADES (Zhang et al. 2019, train_trades_cifar10.py): WRN-34-10, SGD 0.1 (momentum 0.9), wd 2e-4,
# batch 128, 76 epochs; KL attack eps 0.031, 10 steps of 0.007; beta 6; inputs in [0, 1] without
# normalisation, RandomCrop(32, padding=4) with zero padding + flip. Its epochs count from 1 and
# the lr drops x0.1 when epoch >= 75, i.e. for its epochs 75 and 76: jeat's 0-based milestone 74.
TRADES_ATTACK = AttackConfig("ce", 0.031, 0.007, 10)  # energy unused: the KL attack has its own objective
register("paper-trades", "TRADES: WRN-34-10, KL attack 10 x 0.007 at eps 0.031, beta 6, SGD 0.1, 76 epochs")(
    lambda: _paper(
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
    return _paper(MethodConfig("weat", attack=AttackConfig("ce", 8 / 255, 2 / 255, 10), trades_beta=6.0,
                               weat_variant=variant),
                  OptimConfig("sgd", lr=0.1, weight_decay=5e-4, schedule="onecycle", pct_start=0.25,
                              cycle_momentum=True), 128, 100, arch="resnet18", augment="flip-crop-zero")  # fmt: skip


register("paper-weat", "WEAT_nat: energy-weighted TRADES, ResNet-18, one-cycle SGD 0.1, 100 epochs")(
    lambda: _weat("nat")
)
register("paper-weat-adv", "WEAT_adv: as paper-weat with CE on the adversarial images")(lambda: _weat("adv"))


# JEM++ (scripts/jempp_cifar10.sh): BN WRN-28-10 with JEM's block, sigma 0.03 noise + flip-crop,
# SGD 0.1 wd 4e-4, batch 64, warm-up 1000, x0.2 at 50/100/125 of 150 epochs, proximal sampler
# m = 10, n = 5, pyld_lr 0.2; p(x) and CE batches from two loaders; BN momentum 0.9, every forward
# moving the running statistics.
register("paper-jempp", "JEM++: BN WRN-28-10, proximal sampler m=10 n=5, SGD 0.1, 150 epochs")(
    lambda: _jempp_paper(MethodConfig("jempp", sgld=_jempp_sgld(10), px_data="separate", bn_stats="all"))
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
    lambda: _paper(
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
    lambda: _cpu(MethodConfig("trades", attack=_CPU_KL), epochs=3, train_limit=10_000)
)
register("cpu-weat", "small CNN, WEAT_nat (energy-weighted TRADES, 3 KL steps), 10k images, 3 epochs")(
    lambda: _cpu(MethodConfig("weat", attack=_CPU_KL), epochs=3, train_limit=10_000)
)
register("cpu-jempp", "small CNN, JEM++ (proximal sampler 5x5, Gaussian seeds), energy L2 0.1, 4k images, 3 epochs")(
    lambda: _cpu(
        MethodConfig("jempp", sgld=_jempp_sgld(5, buffer_size=256), energy_l2=CPU_ENERGY_L2),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )  # fmt: skip
)
register("cpu-sadajem", "small CNN, SADA-JEM (adaptive SAM rho 2, clipped SGLD 5 steps), energy L2 0.1, 4k images")(
    lambda: _cpu(
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
    lambda: _paper(
        MethodConfig("eb-jdat", attack=EBJDAT_ATTACK, sgld=_jempp_sgld(10), px_data="separate", bn_stats="all"),
        OptimConfig(**{**_sgd_jempp().__dict__, "lr": 0.01, "milestones": (40, 80, 120)}),
        64,
        150,
        arch="jempp-wrn-28-10",
        augment="jem",
        bn_momentum=JEMPP_BN_MOMENTUM,
    )  # fmt: skip
)
register("cpu-eb-jdat", "small CNN, EB-JDAT on JEM++ (PYLD 5x5, 3-step adversarial sampler), energy L2 0.1, 4k images")(
    lambda: _cpu(
        MethodConfig(
            "eb-jdat",
            attack=AttackConfig("joint", 4 / 255, 2 / 255, 3),
            sgld=_jempp_sgld(5, buffer_size=256),
            energy_l2=CPU_ENERGY_L2,
        ),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )  # fmt: skip
)
register("tiny", "for tests: small CNN, 512 images, 1 epoch, fp32")(
    lambda: TrainConfig(
        epochs=1,
        amp="none",
        channels_last=False,
        log_every=2,
        data=DataConfig(batch_size=32, train_limit=512, test_limit=256, augment="flip-crop"),
        model=ModelConfig("cnn-small"),
        optim=OptimConfig("sgd", lr=0.05, schedule="constant"),
    )
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
    lambda: _paper(
        MethodConfig("dat", attack=DAT_ATTACK, dat=DATConfig()),
        OptimConfig("sgd", lr=0.001, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="constant"),
        128,
        100,
        arch="wrn-34-10",
        normalization="cifar",
        ema=EMAConfig(decay=0.999, warmup=10, copy_first=True),
    )  # fmt: skip
)
# CPU scale: stage two from cpu-pgd (`--init runs/cpu-pgd`), 3 epochs of 10k images. The attacks are
# shorter (classifier 3 x 0.2, the discriminator's T up to 20) and lr 0.01 so that ~230 steps move a
# small CNN; EMA 0.99 for the same reason.
CPU_DAT_ATTACK = AttackConfig("ce", 0.5, 0.2, 3, random_start=False, norm="l2")
CPU_DAT_OPTIM = OptimConfig("sgd", lr=0.01, nesterov=True, weight_decay=5e-4, schedule="constant")
register("cpu-dat", "small CNN, DAT stage two (--init a cpu-pgd run): l_2 PGD-3 AT + BCE energy, T to 20, 10k images")(
    lambda: _with(
        _cpu(
            MethodConfig("dat", attack=CPU_DAT_ATTACK, dat=DATConfig(max_steps=20)),
            epochs=3,
            train_limit=10_000,
            optim=CPU_DAT_OPTIM,
        ),
        ema=EMAConfig(decay=0.99, warmup=10, copy_first=True),
    )  # fmt: skip
)


def _with(cfg: TrainConfig, **kw) -> TrainConfig:
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg
