"""The JEAT paper's methods (standard, noise, PGD-AT, Fast AT, PreJEAT, JEAT, JEM, Robust JEM) at the
papers' scale (``paper-*``, Table 4 of the JEAT paper where it speaks) and on 2 CPU cores (``cpu-*``)."""

from __future__ import annotations

from ..config import (
    AttackConfig,
    DataConfig,
    MethodConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
)
from .parts import (
    CPU_ENERGY_L2,
    JEAT_DECAY,
    JEM_DECAY,
    REFERENCE_N_VALID,
    ROBUST_JEM_EPS,
    adam_table4,
    cpu,
    cpu_sgld,
    jem_sgld,
    jempp_paper,
    jempp_sgld,
    paper,
    sgd_madry,
)
from .registry import register

# ------------------------------------------------------------------ paper presets (WRN-28-10)
register("paper-standard", "WRN-28-10, plain cross-entropy, SGD 0.1, 200 epochs")(
    lambda: paper(MethodConfig("standard"), sgd_madry(), 128, 200)
)
for _s in (8, 16, 24):
    register(f"paper-noise-{_s}", f"WRN-28-10, Gaussian noise sigma={_s}/255 injected (Fig. 5)")(
        lambda s=_s: paper(MethodConfig("noise", noise_sigma=s / 255), sgd_madry(), 128, 200)
    )
register("paper-pgd", "WRN-28-10, Madry PGD-10 AT, eps 8/255, step 2/255")(
    lambda: paper(MethodConfig("pgd", attack=AttackConfig("ce", 8 / 255, 2 / 255, 10)), sgd_madry(), 128, 200)
)
register("paper-fast", "WRN-28-10, Fast AT (FGSM, random start, step 10/255), cyclic LR 0-0.2, 15 epochs (Table 4)")(
    lambda: paper(
        MethodConfig("fgsm", attack=AttackConfig("ce", 8 / 255, 10 / 255, 1, update_bn=True)),
        OptimConfig("sgd", lr=0.2, weight_decay=5e-4, schedule="cycliclr", cycle_momentum=True),
        128,
        15,
        # The baseline's code (locuslab/fast_adversarial CIFAR10/train_fgsm.py, utils.py; parity-checked in
        # benchmarks/parity/fast.py): torch's CyclicLR as it steps (step 0 at lr 0, momentum cycled 0.9 -> 0.8,
        # its default), the attack's forward in train mode moving BN running statistics, zero-padded crop +
        # flip and its mean/std constants (std 0.2471, not jeat's rounded 0.2470).
        augment="flip-crop-zero",
        normalization="cifar-locuslab",
    )  # fmt: skip
)
# The JEAT paper names no validation split; JEAT and PreJEAT build on JEM's code (train_wrn_ebm.py,
# --n_valid 5000), so the JEAT family holds out JEM's 5,000, as paper-jem does.
# Free AT (Shafahi et al. 2019), the JEAT paper's "Free m=8" baseline, Table 4's FREE row: SGD 0.1, batch 128,
# multistep [100, 150] (x0.1, the appendix), 200 epochs counted as Free AT counts them (methods/free.py),
# weight decay 2e-4, momentum 0.9; m = 8 replays, eps 8/255 with steps of eps, delta from zero (no random
# start); on the paper's WRN-28-10 ("for all algorithms"). Data as locuslab/fast_adversarial's loaders:
# zero-padded crop + flip, CIFAR mean/std; all 50,000 images (no validation split).
FREE_ATTACK = AttackConfig("ce", 8 / 255, 8 / 255, 1, random_start=False)
register("paper-free", "WRN-28-10, Free AT (m=8 replays, eps 8/255), SGD 0.1, [100, 150] of 200 epochs (Table 4)")(
    lambda: paper(
        MethodConfig("free", attack=FREE_ATTACK, free_replays=8),
        OptimConfig("sgd", lr=0.1, weight_decay=2e-4, schedule="multistep", milestones=(100, 150), gamma=0.1),
        128,
        200,
        augment="flip-crop-zero",
        normalization="cifar-locuslab",
    )  # fmt: skip
)
register("paper-prejeat", "WRN-28-10, PreJEAT (Alg. 2): one energy-attack step, CE loss; Adam 1e-4, batch 64")(
    lambda: paper(
        MethodConfig("prejeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1)),
        adam_table4(),
        64,
        200,
        valid_size=REFERENCE_N_VALID,
    )  # fmt: skip
)


# JEAT and JEM as a matched pair (Table 4 gives JEAT JEM's hyper-parameters; neither paper says
# JEAT's WRN-28-10 has batch norm): the same JEM WRN-28-10 (JEM's block, no normalisation,
# LeakyReLU 0.2, [-1, 1] inputs), JEM's augmentation, Adam 1e-4 with JEM's 1000-step warm-up, the
# same sampler. They differ in the method and in the lr decay factor (JEAT's appendix: /10; JEM's code: x0.3).
# paper-jeat-bn keeps the BN/ReLU WRN as an option; it is paper-prejeat's twin (the same BN/ReLU WRN-28-10,
# flip-crop, Adam of Table 4 decaying by 10, no warm-up, 5,000 held out), so PreJEAT vs JEAT (Fig. 6)
# compares paper-prejeat with paper-jeat-bn: they differ only in the algorithm.
def _jem_pair(method: MethodConfig, gamma: float = JEAT_DECAY) -> TrainConfig:
    return paper(method, OptimConfig(**{**adam_table4(gamma=gamma).__dict__, "warmup_steps": 1000}), 64, 200,
                  arch="jem-wrn-28-10", augment="jem", valid_size=REFERENCE_N_VALID)  # fmt: skip


JEAT_ATTACK = AttackConfig("joint", 8 / 255, 8 / 255, 1)
register("paper-jeat", "JEAT (Alg. 1) on JEM's WRN-28-10; Table 4, the same settings as paper-jem")(
    lambda: _jem_pair(MethodConfig("jeat", attack=JEAT_ATTACK, sgld=jem_sgld()))
)
# JEM draws its p(x) batch and its CE batch from two loaders (train_wrn_ebm.py): px_data=separate.
register("paper-jem", "JEM's WRN-28-10 (no BN, LeakyReLU), JEM objective, Table 4, warm-up 1000 steps")(
    lambda: _jem_pair(MethodConfig("jem", sgld=jem_sgld(), px_data="separate"), gamma=JEM_DECAY)
)
register("paper-jeat-bn", "JEAT (Alg. 1) on a BN/ReLU WRN-28-10 with flip-crop; Table 4 otherwise")(
    lambda: paper(
        MethodConfig("jeat", attack=JEAT_ATTACK, sgld=jem_sgld()), adam_table4(), 64, 200, valid_size=REFERENCE_N_VALID
    )  # fmt: skip
)
register("paper-robust-jem", "Robust JEM: JEM++ (BN WRN, SGD, proximal sampler m=10, n=5) + PGD-15 AT, eps 0.05")(
    lambda: jempp_paper(
        MethodConfig(
            "robust-jem",
            attack=AttackConfig("ce", ROBUST_JEM_EPS, ROBUST_JEM_EPS / 4, 15),
            sgld=jempp_sgld(10),
            px_data="separate",
            bn_stats="all",
        )
    )
)


# ------------------------------------------------------------------ CPU presets (2 cores)
register("cpu-standard", "small CNN, plain cross-entropy, 10 epochs (the README's main job)")(
    lambda: cpu(MethodConfig("standard"))
)
for _s in (8, 16, 24):
    register(f"cpu-noise-{_s}", f"small CNN, Gaussian noise sigma={_s}/255 (Fig. 5), 10 epochs")(
        lambda s=_s: cpu(MethodConfig("noise", noise_sigma=s / 255))
    )
# Budgets: 2 shared cores run the small CNN at ~60-90 img/s per forward+backward (bf16); an
# attack step or an SGLD step costs about one more. Each preset below is sized to ~15-20 min.
register("cpu-pgd", "small CNN, PGD-3 AT (eps 8/255, step 3/255), 10k images, 3 epochs")(
    lambda: cpu(MethodConfig("pgd", attack=AttackConfig("ce", 8 / 255, 3 / 255, 3)), epochs=3, train_limit=10_000)
)
register("cpu-fgsm", "small CNN, Fast AT (FGSM + random start, step 10/255), 10k images, 4 epochs")(
    lambda: cpu(MethodConfig("fgsm", attack=AttackConfig("ce", 8 / 255, 10 / 255, 1)), epochs=4, train_limit=10_000)
)
# Free AT at CPU scale: m = 4 replays, 8 epochs as Free AT counts them (2 passes over 10k images), about
# the forward/backward passes of cpu-pgd.
register("cpu-free", "small CNN, Free AT (m=4 replays, eps 8/255), 10k images, 8 epochs (2 passes)")(
    lambda: cpu(MethodConfig("free", attack=FREE_ATTACK, free_replays=4), epochs=8, train_limit=10_000)
)
register("cpu-prejeat", "small CNN, PreJEAT (energy FGSM + random start), 10k images, 4 epochs")(
    lambda: cpu(
        MethodConfig("prejeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1)), epochs=4, train_limit=10_000
    )
)


register("cpu-jeat", "small CNN, JEAT: energy FGSM + 10-step SGLD, 256-chain buffer, 4k images, 3 epochs")(
    lambda: cpu(
        MethodConfig(
            "jeat", attack=AttackConfig("joint", 8 / 255, 8 / 255, 1), sgld=cpu_sgld(), energy_l2=CPU_ENERGY_L2
        ),
        epochs=3,
        train_limit=4_000,
    )
)
register("cpu-jem", "small CNN, JEM objective + energy L2 0.1, 10-step SGLD, 256-chain buffer, 4k images, 3 epochs")(
    lambda: cpu(MethodConfig("jem", sgld=cpu_sgld(), energy_l2=CPU_ENERGY_L2), epochs=3, train_limit=4_000)
)
# Robust JEM at CPU scale: JEM++'s sampler (5 outer x 5 inner proximal steps, unconditional chains
# from the class Gaussians) and its optimizer family (SGD, one-cycle here) on the twins' BN CNN,
# a 256-chain buffer for the short run, PGD-3, JEM's augmentation.
register("cpu-robust-jem", "small CNN, PGD-3 AT (eps 0.05) + JEM++ proximal sampler 5x5, energy L2 0.1, 4k images")(
    lambda: cpu(
        MethodConfig(
            "robust-jem",
            attack=AttackConfig("ce", ROBUST_JEM_EPS, ROBUST_JEM_EPS / 2, 3),
            sgld=jempp_sgld(5, buffer_size=256),
            energy_l2=CPU_ENERGY_L2,
        ),
        epochs=3,
        augment="jem",
        train_limit=4_000,
    )
)


register("tiny", "for tests: small CNN, 512 images (256 more held out for validation), 1 epoch, fp32")(
    lambda: TrainConfig(
        epochs=1,
        amp="none",
        channels_last=False,
        log_every=2,
        data=DataConfig(batch_size=32, train_limit=512, test_limit=256, augment="flip-crop", valid_size=256),
        model=ModelConfig("cnn-small"),
        optim=OptimConfig("sgd", lr=0.05, schedule="constant"),
    )
)
