"""Typed configuration of a training run.

A run is fully described by one :class:`TrainConfig`; it is written to the run directory as
``config.json`` and read back on resume. Presets (``jeat.presets``) are functions that
return one; every field can be overridden from the CLI with ``--set section.field=value``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import asdict, dataclass, field, fields


@dataclass
class DataConfig:
    name: str = "cifar10"  # cifar10 | cifar100 | npz | folder
    root: str | None = None  # default: $JEAT_DATA, else ~/.cache/jeat/data
    download: bool = False
    test_file: str | None = None  # e.g. test1k_lossless.npz
    image_size: int | None = None  # resize folder images to this square size
    augment: str = "flip-crop"  # none | flip-crop | jem (flip-crop + JEM's N(0, 0.03^2) in [-1, 1] units)
    batch_size: int = 128
    eval_batch_size: int = 500
    # Images held out of the training set as validation data (data/split.py): class-stratified, drawn with the
    # run's seed before train_limit, recorded in RUN/split.json. Every decision of a run (the guard's epoch
    # triggers, best.pt, rollback targets, the `failed` verdict) reads it; the test set only reports. 0: no
    # split, and then those decisions are off (with a warning), never taken on the test set. Presets set it
    # (paper-*: their reference's n_valid; cpu-*: 2,000, docs/TRAINING.md "Validation").
    valid_size: int = 0
    # How the held-out images are drawn: stratified (each class its share, the run's seed) | jem (JEM's,
    # JEM++'s and EB-JDAT's: numpy seed 1234, the first valid_size of a permutation; their paper-* presets).
    valid_rule: str = "stratified"
    train_limit: int | None = None  # random subset for quick runs (of the images left after the split)
    test_limit: int | None = None
    # DAT's out-of-distribution images: gaussian (the training set's class-conditional Gaussians, built in,
    # offline) | uniform | cifar10 | cifar100 | svhn (train split, from the data root) | npz:PATH | folder:PATH.
    # The reference draws 80M Tiny Images (withdrawn by its authors; give it as npz:/folder: if you have it).
    outdist: str = "gaussian"


@dataclass
class ModelConfig:
    arch: str = "cnn-small"  # see jeat.models.available_models()
    normalization: str | None = None  # cifar | half | none; default per architecture
    # BatchNorm momentum (torch convention: weight of the new batch). None: torch's 0.1. JEM++,
    # SADA-JEM and EB-JDAT build BN with momentum 0.9 (their models/norms.py).
    bn_momentum: float | None = None


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "multistep"  # constant | multistep | cyclic | cosine | onecycle
    milestones: tuple[int, ...] = ()  # epochs, for multistep
    gamma: float = 0.1  # multistep decay factor
    warmup_steps: int = 0  # linear warm-up from 0 over this many steps (JEM: 1000)
    pct_start: float = 0.25  # onecycle: fraction of the run spent warming up (WEAT: 0.25)
    # onecycle: momentum 0.95 -> 0.85 -> 0.95 as torch's OneCycleLR (WEAT); cycliclr: 0.9 -> 0.8 -> 0.9 as torch's
    # CyclicLR (Fast AT's code)
    cycle_momentum: bool = False
    # Sharpness-aware minimisation (training/sam.py; SADA-JEM): 0 = off. adaptive: ASAM.
    sam_rho: float = 0.0
    sam_adaptive: bool = False


@dataclass
class AttackConfig:
    """The attack used inside training (l_inf unless ``norm=l2``)."""

    energy: str = "ce"  # ce: Eq. 14 (Madry) | joint: Eq. 18 (energy attack)
    eps: float = 8 / 255  # radius in [0, 1] pixel units
    step_size: float = 2 / 255
    steps: int = 10
    random_start: bool = True
    # linf | l2 (PGD-L2: unit-gradient steps, projection onto the l_2 ball; DAT's eps 0.5, step 0.1). Last, so
    # positional AttackConfig(energy, eps, step_size, steps) keeps its meaning.
    norm: str = "linf"
    # The attack's forwards move BN running statistics, as locuslab/fast_adversarial's Fast AT runs its attack
    # (train mode, nothing frozen): paper-fast. False: batch statistics, running ones untouched (jeat's default).
    update_bn: bool = False


@dataclass
class SGLDConfig:
    """Langevin sampling of negatives for E(x) (JEM / JEAT / Robust JEM)."""

    # sgld: x <- x - step_size * grad + noise * N(0, I) (JEM). pyld: JEM++'s proximal sampler
    # (sampling/pyld.py): per outer step an optional clipped box step of step_size (JEM++'s sgld_lr,
    # 0 at its HEAD), then `inner_steps` clipped box steps.
    sampler: str = "sgld"
    steps: int = 20  # K (pyld: the m outer steps)
    # JEM's sgld_lr=1 and sgld_std=0.01 are in its [-1, 1] input units; in our [0, 1] pixel units
    # the same dynamics is step 1/4 (grad_u = 2 grad_x, dx = 2 du) and noise 0.01/2.
    # The update is x <- x - step_size * grad E + noise * N(0, I): step_size is the paper's alpha/2
    # (Eq. 16-17 write x - alpha/2 grad E + sqrt(alpha) eps), i.e. JEM's sgld_lr, not alpha itself.
    step_size: float = 0.25  # JEM's sgld_lr = 1 in [-1, 1] units
    noise: float = 0.005  # JEM's sgld_std = 0.01 in [-1, 1] units; replaces the paper's sqrt(alpha)
    buffer_size: int = 10_000
    reinit_prob: float = 0.05  # rho
    init: str = "uniform"  # uniform | gaussian (class-conditional, JEM++ / Robust JEM)
    class_conditional_buffer: bool = False
    # sgld: clip each per-pixel step to +-clip_grad. pyld: the outer step's clip (None: JEM++'s
    # eps = 1, i.e. 2 * step_size in [0, 1] units).
    clip_grad: float | None = None
    clamp: bool = False  # sgld: keep samples inside [0, 1] (pyld always does)
    # BN models: during SGLD (and the negatives' loss forward) normalise by the negatives' own batch
    # statistics ("batch", JEM++'s and SADA-JEM's practice; JEM's WRN has no BN) or by the running
    # statistics ("running", what generation uses). Negatives update the running statistics only
    # with method.bn_stats=all (the references'), and only in "batch" mode.
    bn: str = "batch"
    inner_steps: int = 5  # pyld: n inner proximal steps (JEM++ in_steps; Robust JEM n = 5)
    inner_step_size: float = 0.05  # pyld: JEM++'s pyld_lr = 0.2 in [-1, 1] units
    inner_clip: float = 0.1  # pyld: per-pixel bound of an inner step (pyld_lr * eps / 2, eps = 1)


@dataclass
class DATConfig:
    """DAT (Yin et al. 2025, xuwangyin/DAT): the energy as a binary discriminator between data and
    out-of-distribution images attacked towards high energy, with an AUC curriculum on the attack length."""

    energy: str = "logsumexp"  # the BCE logit: logsumexp_y f(x)[y] = -E(x) (their logsumexp=true) | conditional f(x)[y]
    sample_energy: str = "conditional"  # the attack ascends f(x)[y] of the in-distribution batch's labels
    # (their logsumexp_sampling=false) | logsumexp
    step_size: float = 0.1  # l_2 PGD step (unit-gradient), their attack.step_size
    eps: float | None = None  # l_2 radius of that attack; None: unbounded (their eps=.inf), only the box
    start_steps: int = 0  # attack steps at the start of training (their attack.start_step)
    max_steps: int = 50  # T: the curriculum stops growing here (their attack.max_steps)
    auc_threshold: float = 0.8  # +1 step once the running AUC(data vs attacked) reaches this (their AUC_th)
    auc_window: int = 1000  # images over which that AUC is averaged (their min_imgs_per_threshold)
    r1: float = 0.0  # weight of the zero-centred gradient penalty on data (their r1reg)
    bn: str = "frozen"  # frozen: every BN uses its running statistics, never updated (their use_batchnorm=false)
    # | train: BN as in the other methods (classifier forward in train mode)


@dataclass
class MethodConfig:
    name: str = "standard"  # `jeat info methods`
    noise_sigma: float = 8 / 255  # 'noise': delta ~ N(0, sigma^2) (Fig. 5)
    free_replays: int = 8  # 'free': m, the replays of each minibatch (Shafahi et al.'s "Free m=8")
    attack: AttackConfig = field(default_factory=AttackConfig)
    sgld: SGLDConfig = field(default_factory=SGLDConfig)
    px_weight: float = 1.0  # weight of the -log p(x) term (JEAT, JEM)
    # Data images of that term: `batch`, the CE batch itself (one forward fewer; cpu-* presets);
    # `separate`, an augmented batch drawn apart from the CE batch (JEM's and JEM++'s two loaders);
    # `clean`, an un-augmented batch drawn apart (SADA-JEM's).
    px_data: str = "batch"
    # Images in that separate data batch and in each batch of SGLD negatives (None: the CE batch
    # size). SADA-JEM: CE batch 128, p(x) batch and negatives 64.
    px_batch_size: int | None = None
    # Which train-mode forwards update BN running statistics: `classifier` (only the classifier
    # input's; attacks and SGLD leave them alone) or `all` (every train-mode forward, in the
    # references' order: p(x) batch, SGLD, negatives, CE batch; JEM++, SADA-JEM, EB-JDAT; for TRADES,
    # its second forward of x for the KL target).
    bn_stats: str = "classifier"
    # alpha * mean(E(x_data)^2 + E(x~)^2): IGEBM's (Du & Mordatch 2019) energy-magnitude penalty
    # against runaway energies. Not in JEM/JEAT: 0 (off) in every preset.
    energy_l2: float = 0.0
    track_energy: bool = False  # log Delta_x and Delta_theta energy changes (Fig. 3)
    trades_beta: float = 6.0  # trades / weat: weight of the KL term (TRADES' 6, WEAT's --beta default)
    weat_variant: str = "nat"  # weat: nat (CE on x, WEAT_nat) | adv (CE on x', WEAT_adv)
    ebjdat_px_weight: float = 0.1  # eb-jdat: weight of E(x) - E(x_adv) (their p_x_xadv_weight)
    ebjdat_ce_weight: float = 1.0  # eb-jdat: weight of CE(x_adv) (their p_y_given_xadv_weight)
    # eb-jdat: weight of the perception distance per example. The reference sums the per-example
    # distances of a sub-batch of 2 (feat_diff's L = len(outs0)), so each example carries weight 1.
    ebjdat_perception_weight: float = 1.0
    ebjdat_attack: str = "energy"  # eb-jdat: x_adv ascends f(x,y) (reference) or CE ("ce", their commented variant)
    dat: DATConfig = field(default_factory=DATConfig)


@dataclass
class GuardConfig:
    """Divergence detection and recovery (training/guard.py; defaults measured in docs/TRAINING.md)."""

    enabled: bool = True
    check_every: int = 10  # steps per check; the guard sees each interval's mean (one host sync)
    max_energy: float = 1e4  # |E| beyond this counts as divergence (JEM issues #4, #8)
    # Relative to the run's own history: the last `window` passing checks, after `warmup_checks`.
    window: int = 20
    warmup_checks: int = 5
    gap_band: float = 5.0  # |E(x_data) - E(x~)| above this: the negatives no longer track the data
    # ... and still growing: out of the band on gap_patience checks in a row and |gap| up by at least
    # gap_growth over them. A gap that settles outside the band is not a runaway (the energy L2
    # caps it near -1/alpha, and runs train there: benchmarks/results/stability_cpu_old_guard.md).
    gap_patience: int = 3
    gap_growth: float = 1.0
    gap_hard: float = 20.0  # |gap| beyond this fires at once
    # With method.energy_l2 = alpha > 0 the gap settles near -1/alpha: the band becomes at least
    # (1 + gap_settle_margin) / alpha and the hard bound at least 2 / alpha (training/guard.py).
    gap_settle_margin: float = 0.25
    jump_factor: float = 10.0  # |E - recent median| > factor * max(recent range, jump_floor)
    jump_floor: float = 1.0
    ce_factor: float = 3.0  # CE above factor * recent median ...
    acc_drop: float = 0.10  # ... while batch accuracy falls this far below its recent median
    # The epoch triggers judge validation accuracy (data.valid_size; never the test set):
    valid_acc_drop: float = 0.10  # an epoch's validation accuracy this far below the run's best ...
    # ... on valid_acc_patience epochs in a row: one dip that the next epoch climbs out of is not a
    # collapse (issue 26: jempp on digits28 fell 82.3 -> 64.7 % for one epoch and went on to 96.7 %).
    valid_acc_patience: int = 2
    # Both epoch triggers also need the fall to exceed valid_acc_z standard errors of the difference of
    # two accuracies on the run's validation set (sqrt(b(1-b)/n + a(1-a)/n)): on 300 images a fall from
    # 15.7 to 12.0 % is noise (SE 2.8 points), not 65 % of the gain lost (issue 26, digits28).
    valid_acc_z: float = 3.0
    # An epoch's validation accuracy that lost more than learned_lost of the run's best gain over chance
    # (1/classes), once that gain reached chance_learned: the collapse of a run whose best was too
    # low for valid_acc_drop to see (issue 26: healthy runs lost at most 39 %, collapses 72-102 %).
    # 0.5, under the stability judge's 60 % (measured on the test set): the guard reads another sample of the
    # same fall, and on 300 validation images one standard error of the lost share is about 0.1 - at 0.6 the
    # guard missed two falls the judge counted (52.7 and 52.9 % on validation, 66 and 62 % on test; issue 34).
    learned_lost: float = 0.5
    chance_learned: float = 0.05
    # A run that had learned (chance_learned) and then predicts one class for dead_share of the validation
    # images is dead, whatever the noise margin says (valid_dead; > 1 turns it off).
    dead_share: float = 0.95
    # A finished run whose best validation accuracy is below chance + fail_margin did not learn: status
    # `failed` (and a non-zero exit from `jeat train`), whatever the guard did on the way. Judged only with at
    # least fail_min_valid validation images (fewer cannot tell chance from a few points above it); without
    # a validation split, on the last epoch's training accuracy (named in the message).
    fail_margin: float = 0.05
    fail_min_valid: int = 100
    # A finished run that learned but whose training cross-entropy stayed at or above stall_ce x ln(classes)
    # over the second half of its epochs, with its best accuracy there less than stall_gain above the first
    # half's, stalled: status `stalled` and a message, the model kept (training/summary.py stall_reason;
    # cpu-jeat at the medium scale sat at CE 2.2 with 18-29 % validation accuracy for 7 of 8 epochs).
    stall: bool = True
    stall_ce: float = 0.9
    stall_gain: float = 0.05
    # A finished energy-based run (method.energy_l2 = alpha > 0) whose epochs' mean energy gap E(x_data) - E(x~)
    # sat at or below saturation_share x the optimum -px_weight / alpha over the second half of its epochs is
    # saturated: the model tells data from its own samples apart completely, so the -log p(x) term gives no
    # gradient and the model trains as a classifier (status `saturated`, training/summary.py saturation_reason;
    # cpu-jem at the medium scale sat at -9.95 to -9.99 of -10 from epoch 2 on: FID 326, log p(x) rating
    # noise above test images). The small study's EBM runs with the L2 had epoch gaps of -4.4 to +0.6.
    saturation: bool = True
    saturation_share: float = 0.9
    # What a trigger does: stop | warn (log, go on) | rollback (last good checkpoint, new noise
    # seed) | rollback-lr (also lr *= lr_factor). After max_retries rollbacks the run stops.
    policy: str = "rollback-lr"
    max_retries: int = 3
    lr_factor: float = 0.5
    keep_checkpoints: int = 3  # newest step checkpoints kept under RUN/checkpoints/ (plus the best epoch)


@dataclass
class EMAConfig:
    """Exponential moving average of the weights (training/ema.py). Off when decay is 0."""

    decay: float = 0.0  # e.g. 0.999; evaluation, sampling and model_ema.safetensors use the average
    warmup: int = 10  # d_t = min(decay, (1 + t) / (warmup + t)); 1: no ramp
    copy_first: bool = False  # d_0 = 0: the average starts at the first updated weights (DAT's AveragedModel)


@dataclass
class TrainConfig:
    preset: str = "custom"
    epochs: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    # auto (bf16 where the device computes it natively and the method is proven neutral in bf16,
    # training/precision.py BF16_NEUTRAL; else fp32) | bf16 | none
    amp: str = "auto"
    amp_why: str = ""  # recorded when amp is resolved (never read to decide anything)
    channels_last: bool = True
    # with channels_last on a CPU, the stages a model names (ResNet-18: the 8x8 and 4x4 ones) stay NCHW,
    # where oneDNN is faster (models/layout.py, benchmarks/results/layout_cpu.md)
    staged_layout: bool = True
    # eval-mode attacks inside training (TRADES' and WEAT's KL attack, DAT's) run each conv + BN
    # pair as one convolution (models/folding.py): the same function, fewer memory passes
    fold_bn: bool = True
    compile: bool = False
    # cached: on a CPU device glibc malloc keeps freed memory instead of page-faulting it back in
    # every SGLD / attack pass (training/allocator.py); system: leave malloc alone
    cpu_malloc: str = "cached"
    out_dir: str = "runs"
    name: str | None = None  # run directory name; default: the preset name
    log_every: int = 50  # steps between metric lines
    checkpoint_every: int = 0  # steps between mid-epoch checkpoints (0: end of each epoch only)
    eval_robust_n: int = 0  # test images for a PGD-20 check after training (0: skip)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    ema: EMAConfig = field(default_factory=EMAConfig)
    tensorboard: bool = True  # also write TensorBoard events under RUN/tensorboard when it is importable
    # Start from these weights (a jeat run directory, checkpoint.pt or model.safetensors, e.g. one made by
    # `jeat import` from RobustBench): stage two of DAT, or fine-tuning any method. Architecture must match.
    init: str | None = None
    init_weights: str = "auto"  # auto | ema | raw: which weights of that run

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return _from_dict(cls, d)


# Fields renamed since a run's config.json may have been written: old name -> new name. The guard's
# epoch triggers read validation data since issue 34 (they were named after the test set).
RENAMED = {
    "GuardConfig": {"test_acc_drop": "valid_acc_drop", "test_acc_patience": "valid_acc_patience",
                    "test_acc_z": "valid_acc_z", "fail_min_test": "fail_min_valid"},
}  # fmt: skip


def _from_dict(cls, d: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    renamed = RENAMED.get(cls.__name__, {})
    d = {renamed.get(k, k): v for k, v in d.items()}
    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
    for name, value in d.items():
        t = hints[name]
        if dataclasses.is_dataclass(t):
            kwargs[name] = _from_dict(t, value)
        elif typing.get_origin(t) is tuple and value is not None:
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
