"""Bounds on :class:`~jeat.config.TrainConfig` values, checked before a run starts, so that e.g.
``--epochs -1`` is refused with the field's name instead of training nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import TrainConfig

POSITIVE = ("epochs", "log_every", "data.batch_size", "data.eval_batch_size", "optim.lr", "method.attack.steps",
            "method.sgld.steps", "method.sgld.buffer_size", "method.sgld.inner_steps",
            "method.free_replays")  # fmt: skip
NON_NEGATIVE = ("method.dat.step_size", "method.dat.start_steps", "method.dat.max_steps", "method.dat.r1",
                "checkpoint_every", "eval_robust_n", "data.valid_size", "optim.weight_decay", "optim.warmup_steps",
                "optim.momentum", "optim.sam_rho",
                "method.noise_sigma", "method.attack.eps", "method.attack.step_size", "method.sgld.step_size",
                "method.sgld.noise", "method.sgld.inner_step_size", "method.sgld.inner_clip", "method.px_weight",
                "method.energy_l2", "method.trades_beta", "method.ebjdat_perception_weight")  # fmt: skip
AT_LEAST_ONE_OR_NONE = ("data.train_limit", "data.test_limit", "method.px_batch_size")
UNIT_INTERVAL = ("method.sgld.reinit_prob",)
HALF_OPEN_UNIT = ("ema.decay",)  # [0, 1)


def _get(cfg: TrainConfig, path: str):
    obj = cfg
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def validate(cfg: TrainConfig) -> None:
    """Refuse values no run can use, naming the field and how to fix it (ValueError)."""
    bad = []
    for path in POSITIVE:
        if not _get(cfg, path) > 0:
            bad.append(f"{path} must be > 0, got {_get(cfg, path)!r}")
    for path in NON_NEGATIVE:
        if not _get(cfg, path) >= 0:
            bad.append(f"{path} must be >= 0, got {_get(cfg, path)!r}")
    for path in AT_LEAST_ONE_OR_NONE:
        value = _get(cfg, path)
        if value is not None and value < 1:
            bad.append(f"{path} must be >= 1 or none, got {value!r}")
    for path in UNIT_INTERVAL:
        if not 0 <= _get(cfg, path) <= 1:
            bad.append(f"{path} must be in [0, 1], got {_get(cfg, path)!r}")
    for path in HALF_OPEN_UNIT:
        if not 0 <= _get(cfg, path) < 1:
            bad.append(f"{path} must be in [0, 1), got {_get(cfg, path)!r}")
    if cfg.model.bn_momentum is not None and not 0 <= cfg.model.bn_momentum <= 1:
        bad.append(f"model.bn_momentum must be in [0, 1] or none, got {cfg.model.bn_momentum!r}")
    if cfg.data.valid_rule not in ("stratified", "jem"):
        bad.append(f"data.valid_rule must be stratified or jem, got {cfg.data.valid_rule!r}")
    if cfg.method.px_data not in ("batch", "separate", "clean"):
        bad.append(f"method.px_data must be batch, separate or clean, got {cfg.method.px_data!r}")
    if cfg.method.bn_stats not in ("classifier", "all"):
        bad.append(f"method.bn_stats must be classifier or all, got {cfg.method.bn_stats!r}")
    if cfg.method.attack.norm not in ("linf", "l2"):
        bad.append(f"method.attack.norm must be linf or l2, got {cfg.method.attack.norm!r}")
    d = cfg.method.dat
    if d.energy not in ("logsumexp", "conditional") or d.sample_energy not in ("logsumexp", "conditional"):
        bad.append(f"method.dat.energy / sample_energy must be logsumexp or conditional, got {d.energy!r}, "
                   f"{d.sample_energy!r}")  # fmt: skip
    if d.start_steps > d.max_steps:
        bad.append(f"method.dat.start_steps ({d.start_steps}) must be <= method.dat.max_steps ({d.max_steps})")
    if d.bn not in ("frozen", "train"):
        bad.append(f"method.dat.bn must be frozen or train, got {d.bn!r}")
    if d.auc_window < 1 or not 0 <= d.auc_threshold <= 1:
        bad.append("method.dat.auc_window must be >= 1 and method.dat.auc_threshold in [0, 1]")
    if cfg.init_weights not in ("auto", "ema", "raw"):
        bad.append(f"init_weights must be auto, ema or raw, got {cfg.init_weights!r}")
    if cfg.ema.warmup < 1:
        bad.append(f"ema.warmup must be >= 1, got {cfg.ema.warmup!r}")
    if cfg.amp not in ("auto", "bf16", "none"):
        bad.append(f"amp must be 'auto', 'bf16' or 'none', got {cfg.amp!r}")
    if cfg.cpu_malloc not in ("cached", "system"):
        bad.append(f"cpu_malloc must be 'cached' or 'system', got {cfg.cpu_malloc!r}")
    if bad:
        raise ValueError("invalid configuration: " + "; ".join(bad) + " (set with --set FIELD=VALUE)")
