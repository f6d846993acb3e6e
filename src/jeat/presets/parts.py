"""Building blocks shared by the presets: the papers' optimizers and samplers, the paper- and
CPU-scale TrainConfig builders, unit conversions ([-1, 1] -> [0, 1] pixels)."""

from __future__ import annotations

from ..config import (
    DataConfig,
    MethodConfig,
    ModelConfig,
    OptimConfig,
    SGLDConfig,
    TrainConfig,
)
from ..sampling.pyld import JEMPP_INNER_CLIP, JEMPP_INNER_STEP, JEMPP_INNER_STEPS, JEMPP_STEP

# The lr decay factor at each milestone. The JEAT paper's appendix (ICCV and arXiv v1, under Table 4):
# "Multi-Step scheduler decay by 10 every time" -> 0.1 for the JEAT family. JEM, which the paper ran "with
# their open-source code", decays by that code's `decay_rate` default, 0.3 (train_wrn_ebm.py): paper-jem
# keeps JEM's (the code is the oracle where it and a paper differ).
JEAT_DECAY = 0.1
JEM_DECAY = 0.3


def adam_table4(epochs: int = 200, milestones: tuple[int, ...] = (160, 180), gamma: float = JEAT_DECAY) -> OptimConfig:
    # Table 4 (JEAT, JEM): Adam 1e-4, betas (0.9, 0.999), no weight decay, decay at [160, 180].
    return OptimConfig(name="adam", lr=1e-4, weight_decay=0.0, schedule="multistep", milestones=milestones,
                       gamma=gamma)  # fmt: skip


def sgd_madry(epochs: int = 200) -> OptimConfig:
    # Madry-style PGD-AT on WRN-28-10: SGD 0.1, momentum 0.9, wd 2e-4 (Table 4 'FREE' row), /10 at 50% and 75%.
    return OptimConfig(name="sgd", lr=0.1, weight_decay=2e-4, schedule="multistep",
                       milestones=(epochs // 2, epochs * 3 // 4), gamma=0.1)  # fmt: skip


# JEM works on images in [-1, 1]; we work in [0, 1]. The same Langevin dynamics in our units:
# step / 4 (the gradient w.r.t. [0, 1] pixels is twice as large, and a step is half as long)
# and noise / 2. Clipping bounds and eps are halved likewise.
TO_UNIT_STEP, TO_UNIT_NOISE = 1 / 4, 1 / 2


def jem_sgld(steps: int = 20, buffer_size: int = 10_000) -> SGLDConfig:
    # JEM's defaults (Grathwohl et al. code): 20 steps, step 1, noise 0.01 ([-1, 1] units), buffer
    # 10k, reinit 5%. The JEAT paper does not state these; we take JEM's, as JEAT builds on JEM's
    # sampler, converted to [0, 1] units: step 0.25, noise 0.005.
    return SGLDConfig(steps=steps, step_size=1.0 * TO_UNIT_STEP, noise=0.01 * TO_UNIT_NOISE,
                      buffer_size=buffer_size, reinit_prob=0.05)  # fmt: skip


def jempp_sgld(steps: int = 10, buffer_size: int = 10_000) -> SGLDConfig:
    # JEM++ (train_jempp.py + scripts/jempp_cifar10.sh at fba6ba5) as Robust JEM uses it: the proximal
    # sampler (sampling/pyld.py) with m outer steps (JEM++'s script and Robust JEM's training: m = 10)
    # and n = 5 inner steps, sgld_lr 0 (its default since c64ab5b: no outer step of its own),
    # pyld_lr 0.2, clip eps 1, no noise, samples kept in the box,
    # unconditional (logsumexp) chains seeded by the class-conditional Gaussians; buffer 10k, rho 0.05.
    return SGLDConfig(sampler="pyld", steps=steps, inner_steps=JEMPP_INNER_STEPS, step_size=JEMPP_STEP,
                      inner_step_size=JEMPP_INNER_STEP, inner_clip=JEMPP_INNER_CLIP, noise=0.0,
                      buffer_size=buffer_size, reinit_prob=0.05, init="gaussian", class_conditional_buffer=False,
                      clamp=True)  # fmt: skip


def sgd_jempp(epochs: int = 150) -> OptimConfig:
    # JEM++'s CIFAR-10 script: SGD 0.1 (momentum 0.9), weight decay 4e-4, warm-up 1000 iterations,
    # lr x 0.2 at epochs [50, 100, 125] of 150.
    return OptimConfig(name="sgd", lr=0.1, weight_decay=4e-4, schedule="multistep", milestones=(50, 100, 125),
                       gamma=0.2, warmup_steps=1000)  # fmt: skip


# Validation splits (data.valid_size, docs/TRAINING.md "Validation"). The references that hold images out
# of CIFAR-10's training set hold out 5,000 (JEM's train_wrn_ebm.py, JEM++'s train_jempp.py, EB-JDAT's, all
# `--n_valid 5000`) and pick best_valid_ckpt on them; TRADES, WEAT, SADA-JEM (n_valid default 0, its
# script sets none), DAT, Fast AT, Free AT and Madry's PGD-AT train on all 50,000 (WEAT validates on
# generated images, SADA-JEM picks its best checkpoint on the test set): those presets keep 0.
REFERENCE_N_VALID = 5_000
# cpu-*: 2,000 held-out images. The guard's epoch triggers need a fall beyond 3 standard errors of the
# difference of two accuracies: on 2,000 images that is at most 3 * sqrt(0.5 / 2000) = 4.7 points (at 50 %),
# well under the 10-point valid_acc_drop, so the noise margin never hides a real drop; the guard's thresholds
# were set on 2,000 evaluation images (benchmarks/results/stability_cpu.md). The CPU presets train on 4k-10k
# of the remaining 48,000, so the split costs them no training images.
CPU_N_VALID = 2_000


def paper(method: MethodConfig, optim: OptimConfig, batch: int, epochs: int, arch: str = "wrn-28-10",
           augment: str = "flip-crop", bn_momentum: float | None = None, normalization: str | None = None,
           valid_size: int = 0, **kw) -> TrainConfig:  # fmt: skip
    # fp32 (amp=none): every reference trains in fp32; `--set amp=auto` trains in bf16 where the
    # device computes it natively, 2-4x faster (docs/SCALE.md), at the cost of exact parity.
    # Every reference that holds images out is of JEM's family and draws them by JEM's rule (data/split.py).
    data = DataConfig(batch_size=batch, augment=augment, valid_size=valid_size,
                      valid_rule="jem" if valid_size else "stratified")  # fmt: skip
    return TrainConfig(epochs=epochs, amp="none", data=data,
                       model=ModelConfig(arch=arch, normalization=normalization, bn_momentum=bn_momentum), optim=optim,
                       method=method,
                       checkpoint_every=500, **kw)  # fmt: skip


# JEM++'s family (JEM++, SADA-JEM, EB-JDAT, and Robust JEM on JEM++): BN momentum 0.9 (their
# models/norms.py) and every train-mode forward moves the running statistics (method.bn_stats=all).
JEMPP_BN_MOMENTUM = 0.9


def jempp_paper(method: MethodConfig) -> TrainConfig:
    """JEM++'s CIFAR-10 run: its BN WRN-28-10, SGD 0.1 over 150 epochs, batch 64, JEM's augmentation."""
    return paper(method, sgd_jempp(), 64, 150, arch="jempp-wrn-28-10", augment="jem",
                  bn_momentum=JEMPP_BN_MOMENTUM, valid_size=REFERENCE_N_VALID)  # fmt: skip


# Robust JEM: eps = 0.1 in [-1, 1] units (its inputs are scaled to [-1, 1]) = 0.05 in [0, 1].
ROBUST_JEM_EPS = 0.1 / 2


def cpu(method: MethodConfig, epochs: int = 10, arch: str = "cnn-small", lr: float = 0.05, batch: int = 128,
         train_limit: int | None = None, optim: OptimConfig | None = None,
         augment: str = "flip-crop") -> TrainConfig:  # fmt: skip
    # One-cycle (cyclic) SGD reaches a good accuracy in few epochs (Wong et al.'s schedule).
    data = DataConfig(batch_size=batch, augment=augment, train_limit=train_limit, valid_size=CPU_N_VALID)
    return TrainConfig(epochs=epochs, data=data,
                       model=ModelConfig(arch=arch),
                       optim=optim or OptimConfig("sgd", lr=lr, nesterov=True, weight_decay=5e-4, schedule="cyclic"),
                       method=method, eval_robust_n=500, log_every=50,
                       checkpoint_every=50)  # rollback targets between epochs (guard.keep_checkpoints)  # fmt: skip


# JEM and JEAT at CPU scale: a few hundred steps instead of JEM's ~150k, so a 10k-chain buffer
# never matures (each chain gets ~10 SGLD steps in all), the model separates data from near-noise
# negatives and E(x~) runs away. A 256-chain buffer is revisited every ~2-4 steps, so its chains
# track the model (energy gap stays near 0). Probes on 5k images x 3 epochs
# (benchmarks/results/sgld_probes_cpu.md):
# 10k buffer + 5 steps: gap -1 to -3, JEAT 19 % test acc; 256 + 10 steps: gap within +-0.4, 25 %.
# Adam (1e-3 and 1e-4) and JEM's BN-free CNN ran away or diverged at this budget. JEM is JEAT's
# twin here (same CNN, optimizer, sampler), so the two differ only in the energy attack. JEM
# still collapses late in a 4-epoch run (both seeds); JEAT does not (docs/RESULTS.md, point 6).
def cpu_sgld() -> SGLDConfig:
    return jem_sgld(steps=10, buffer_size=256)


# IGEBM's energy penalty is the SGLD twins' stabiliser: without it JEM collapsed on both seeds of
# the study (docs/RESULTS.md), with alpha = 0.1 it did not. Both twins carry it so that they still
# differ only in the attack; benchmarks/results/stability_cpu.md measures it over seeds and data
# sets (docs/TRAINING.md, "Stability").
CPU_ENERGY_L2 = 0.1


def with_fields(cfg: TrainConfig, **kw) -> TrainConfig:
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg
