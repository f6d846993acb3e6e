"""TrainConfig overrides, serialisation round-trips, presets, optimisers and schedules."""

from __future__ import annotations

import json

import pytest
import torch

from jeat.config import TrainConfig
from jeat.data import AUGMENTATIONS, DATASETS
from jeat.energy import ENERGY_KINDS
from jeat.models import available_models
from jeat.overrides import apply_override
from jeat.presets import available_presets, get_preset
from jeat.training.optim import SCHEDULES, build_optimizer, build_scheduler, lr_factor

# ---------------------------------------------------------------------------- overrides


def test_override_fraction():
    cfg = TrainConfig()
    apply_override(cfg, "method.attack.eps=8/255")
    assert cfg.method.attack.eps == 8 / 255
    apply_override(cfg, "method.attack.step_size = 2.5/255")
    assert cfg.method.attack.step_size == 2.5 / 255


@pytest.mark.parametrize(
    ("assignment", "getter", "expected"),
    [
        ("optim.lr=0.5", lambda c: c.optim.lr, 0.5),
        ("optim.lr=1e-4", lambda c: c.optim.lr, 1e-4),
        ("epochs=3", lambda c: c.epochs, 3),
        ("epochs=1e2", lambda c: c.epochs, 100),
        ("optim.milestones=100,150", lambda c: c.optim.milestones, (100, 150)),
        ("optim.milestones=[160, 180]", lambda c: c.optim.milestones, (160, 180)),
        ("optim.milestones=", lambda c: c.optim.milestones, ()),
        ("optim.betas=0.5,0.99", lambda c: c.optim.betas, (0.5, 0.99)),
        ("data.train_limit=none", lambda c: c.data.train_limit, None),
        ("data.train_limit=1000", lambda c: c.data.train_limit, 1000),
        ("data.root=None", lambda c: c.data.root, None),
        ("data.root=/data/with=sign", lambda c: c.data.root, "/data/with=sign"),
        ("method.sgld.clip_grad=null", lambda c: c.method.sgld.clip_grad, None),
        ("method.sgld.clip_grad=0.01", lambda c: c.method.sgld.clip_grad, 0.01),
        ("channels_last=false", lambda c: c.channels_last, False),
        ("data.download=yes", lambda c: c.data.download, True),
        ("guard.enabled=0", lambda c: c.guard.enabled, False),
        ("method.attack.random_start=True", lambda c: c.method.attack.random_start, True),
        ("model.arch=wrn-28-2", lambda c: c.model.arch, "wrn-28-2"),
        ("method.name=jeat", lambda c: c.method.name, "jeat"),
    ],
)
def test_override_types(assignment, getter, expected):
    cfg = TrainConfig()
    apply_override(cfg, assignment)
    value = getter(cfg)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("optim.lrr=0.1", r"unknown config field 'optim.lrr'; OptimConfig has: name, lr"),
        ("optimizer.lr=0.1", r"unknown config section 'optimizer'"),
        ("epochs.value=1", r"unknown config section 'epochs'"),
        ("optim.lr", r"must look like section.field=value"),
        ("optim.lr=fast", r"bad value for optim.lr"),
        ("epochs=1.5", r"bad value for epochs: expected an integer"),
        ("epochs=inf", r"bad value for epochs"),
        ("channels_last=maybe", r"bad value for channels_last: expected a boolean"),
        ("optim.milestones=10,x", r"bad value for optim.milestones"),
        ("data=5", r"'data' is a config section"),
        ("method.attack=none", r"'method.attack' is a config section"),
    ],
)
def test_override_errors(assignment, message):
    cfg = TrainConfig()
    before = cfg.to_dict()
    with pytest.raises(ValueError, match=message):
        apply_override(cfg, assignment)
    assert cfg.to_dict() == before  # a failed override changes nothing


# ---------------------------------------------------------------------------- serialisation


def test_to_dict_from_dict_round_trip_through_json():
    cfg = TrainConfig()
    for o in ("optim.milestones=3,7", "optim.betas=0.1,0.2", "method.attack.eps=4/255", "data.train_limit=10",
              "method.sgld.clip_grad=0.5", "name=x"):  # fmt: skip
        apply_override(cfg, o)
    back = TrainConfig.from_dict(json.loads(cfg.to_json()))
    assert back == cfg
    assert isinstance(back.optim.milestones, tuple) and isinstance(back.optim.betas, tuple)
    assert back.to_dict() == cfg.to_dict()


def test_from_dict_rejects_unknown_fields():
    d = TrainConfig().to_dict()
    d["optim"]["learning_rate"] = 1.0
    with pytest.raises(ValueError, match=r"unknown OptimConfig fields: \['learning_rate'\]"):
        TrainConfig.from_dict(d)
    with pytest.raises(ValueError, match="unknown TrainConfig fields"):
        TrainConfig.from_dict({"bogus": 1})


def test_from_dict_fills_missing_fields_with_defaults():
    cfg = TrainConfig.from_dict({"epochs": 3, "optim": {"lr": 0.2}})
    assert cfg.epochs == 3 and cfg.optim.lr == 0.2 and cfg.optim.momentum == TrainConfig().optim.momentum


# ---------------------------------------------------------------------------- presets

PRESETS = sorted(available_presets())


def test_presets_exist():
    assert {"tiny", "cpu-standard", "paper-jeat", "paper-pgd", "paper-jem", "paper-robust-jem"} <= set(PRESETS)
    assert all(desc for desc in available_presets().values())


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds(name):
    cfg = get_preset(name)
    assert isinstance(cfg, TrainConfig) and cfg.preset == name
    assert cfg.model.arch in available_models()
    assert cfg.data.name in DATASETS and cfg.data.augment in AUGMENTATIONS
    assert cfg.optim.schedule in SCHEDULES and cfg.optim.name in ("sgd", "adam")
    assert cfg.method.attack.energy in ENERGY_KINDS
    assert cfg.amp in ("auto", "bf16", "none") and cfg.epochs > 0 and cfg.data.batch_size > 0
    assert TrainConfig.from_dict(json.loads(cfg.to_json())) == cfg
    params = [torch.nn.Parameter(torch.zeros(2))]
    opt = build_optimizer(params, cfg.optim)
    sched = build_scheduler(opt, cfg.optim, steps_per_epoch=10, epochs=cfg.epochs)
    if cfg.optim.warmup_steps or cfg.optim.schedule == "cycliclr":  # JEM's warm-up, torch's CyclicLR (Fast AT):
        assert opt.param_groups[0]["lr"] == 0  # the first step runs at lr 0, the second does not
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] > 0
    opt.step()
    sched.step()


def test_get_preset_returns_fresh_objects():
    a = get_preset("cpu-standard")
    apply_override(a, "optim.lr=123")
    a.method.attack.eps = 1.0
    b = get_preset("cpu-standard")
    assert b.optim.lr != 123 and b.method.attack.eps != 1.0


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'paper-xyz'; available: .*cpu-standard"):
        get_preset("paper-xyz")


def test_paper_presets_follow_table_4():
    jeat = get_preset("paper-jeat")
    assert jeat.model.arch == "jem-wrn-28-10" and jeat.epochs == 200 and jeat.data.batch_size == 64
    assert (jeat.optim.name, jeat.optim.lr, jeat.optim.milestones) == ("adam", 1e-4, (160, 180))
    assert jeat.optim.betas == (0.9, 0.999) and jeat.optim.weight_decay == 0
    assert (jeat.method.name, jeat.method.attack.energy, jeat.method.attack.eps) == ("jeat", "joint", 8 / 255)
    pgd = get_preset("paper-pgd")
    assert (pgd.method.attack.steps, pgd.method.attack.eps, pgd.method.attack.step_size) == (10, 8 / 255, 2 / 255)
    jem = get_preset("paper-jem")
    assert jem.model.arch == "jem-wrn-28-10" and jem.optim.warmup_steps == 1000
    tiny = get_preset("tiny")
    assert tiny.amp == "none" and tiny.epochs == 1


def test_paper_jeat_and_paper_jem_differ_only_in_the_method_and_the_decay_factor():
    jem, jeat = _without_method("paper-jem"), _without_method("paper-jeat")
    assert (jem["optim"].pop("gamma"), jeat["optim"].pop("gamma")) == (0.3, 0.1)  # JEM's code; JEAT's appendix
    assert jem == jeat
    assert get_preset("paper-jeat-bn").model.arch == "wrn-28-10"  # the BN/ReLU variant, as an option


def test_paper_robust_jem_follows_jempp_and_the_robust_jem_paper():
    c = get_preset("paper-robust-jem")
    s = c.method.sgld
    assert (s.sampler, s.steps, s.inner_steps, s.noise, s.init, s.class_conditional_buffer) == (
        "pyld",
        10,
        5,
        0.0,
        "gaussian",
        False,
    )  # m = 10, n = 5; JEM++: no noise, unconditional chains
    # JEM++'s [-1, 1] settings (fba6ba5) in [0, 1] units: sgld_lr 0 (its default at HEAD), pyld_lr 0.2
    # -> 0.05, eps 1 -> clip 0.1
    assert (s.step_size, s.inner_step_size, s.inner_clip) == (0.0, 0.05, 0.1)
    assert (c.model.bn_momentum, c.method.bn_stats, c.method.px_data, c.amp) == (0.9, "all", "separate", "none")
    o = c.optim
    assert (o.name, o.lr, o.weight_decay, o.milestones, o.gamma, o.warmup_steps) == (
        "sgd",
        0.1,
        4e-4,
        (50, 100, 125),
        0.2,
        1000,
    )
    assert c.model.arch == "jempp-wrn-28-10" and c.epochs == 150 and c.data.augment == "jem"
    assert (c.method.attack.steps, c.method.attack.eps) == (15, 0.05)


def _without_method(name: str) -> dict:
    d = get_preset(name).to_dict()
    d.pop("preset")
    d["method"].pop("name")
    # JEM reads its data term from a loader of its own (px_data=separate); JEAT's data term is on
    # x_adv of the CE batch (Alg. 1), so it has none.
    d["method"].pop("px_data")
    d["method"].pop("attack")
    return d


def test_cpu_jem_and_cpu_jeat_are_twins():
    # The study compares JEM and JEAT at CPU scale: they must differ only in the method (the attack).
    jem = _without_method("cpu-jem")
    assert jem == _without_method("cpu-jeat")
    assert get_preset("cpu-jeat").method.sgld.buffer_size < 1_000  # chains must mature in a short run
    assert jem["method"]["energy_l2"] > 0  # the stabiliser (docs/TRAINING.md, "Stability")


# ---------------------------------------------------------------------------- schedules


def _cfg(**kw):
    cfg = TrainConfig().optim
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def test_multistep_decays_at_epoch_milestones():
    cfg = _cfg(schedule="multistep", milestones=(2, 4), gamma=0.1)
    f = [lr_factor(cfg, s, steps_per_epoch=10, total_steps=60) for s in (0, 19, 20, 39, 40, 59)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_cyclic_is_a_triangle_and_cosine_anneals():
    cfg = _cfg(schedule="cyclic")
    assert lr_factor(cfg, 0, 10, 100) == 0 and lr_factor(cfg, 50, 10, 100) == 1
    assert lr_factor(cfg, 25, 10, 100) == pytest.approx(0.5) and lr_factor(cfg, 100, 10, 100) == 0
    cos = _cfg(schedule="cosine")
    assert lr_factor(cos, 0, 10, 100) == 1 and lr_factor(cos, 100, 10, 100) == pytest.approx(0)


def test_warmup_multiplies_the_schedule_from_zero_as_jem_does():
    # JEM/JEM++/SADA-JEM: lr * cur_iter / warmup_iters, so the first step runs at lr 0.
    cfg = _cfg(schedule="constant", warmup_steps=4)
    assert [lr_factor(cfg, s, 10, 100) for s in range(6)] == pytest.approx([0, 0.25, 0.5, 0.75, 1, 1])


def test_cycled_momentum_follows_torchs_onecycle():
    p = [torch.nn.Parameter(torch.zeros(1))]
    cfg = _cfg(name="sgd", lr=0.1, schedule="onecycle", pct_start=0.25, cycle_momentum=True)
    ours_opt = build_optimizer(p, cfg)
    ours = build_scheduler(ours_opt, cfg, steps_per_epoch=7, epochs=3)
    ref_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=0.1, pct_start=0.25, total_steps=21)
    for _ in range(21):
        ours_opt.step()
        ref_opt.step()
        assert ours_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"])
        assert ours_opt.param_groups[0]["momentum"] == pytest.approx(ref_opt.param_groups[0]["momentum"])
        ours.step()
        ref.step()


def test_scheduler_sets_lr_per_step_and_first_cyclic_step_is_positive():
    p = [torch.nn.Parameter(torch.zeros(1))]
    cfg = _cfg(name="sgd", lr=0.2, schedule="cyclic")
    opt = build_optimizer(p, cfg)
    sched = build_scheduler(opt, cfg, steps_per_epoch=5, epochs=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(lr > 0 for lr in lrs) and max(lrs) <= 0.2 + 1e-12
    assert lrs.index(max(lrs)) in (4, 5)


def test_unknown_optimizer_and_schedule():
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'"):
        build_optimizer(p, _cfg(name="rmsprop"))
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_factor(_cfg(schedule="step"), 0, 1, 1)


def test_jeat_decays_by_ten_and_its_bn_twin_differs_from_prejeat_only_in_the_algorithm():
    from jeat import get_preset

    # JEAT appendix: "Multi-Step scheduler decay by 10 every time"; JEM's code: decay_rate 0.3
    assert [get_preset(p).optim.gamma for p in ("paper-jeat", "paper-jeat-bn", "paper-prejeat")] == [0.1] * 3
    assert get_preset("paper-jem").optim.gamma == 0.3
    pre, bn = get_preset("paper-prejeat").to_dict(), get_preset("paper-jeat-bn").to_dict()
    for d in (pre, bn):
        d.pop("preset"), d.pop("method")
    assert pre == bn


def test_editing_a_preset_never_changes_the_next_get_preset():
    # presets share module-level parts (e.g. DAT_ATTACK); a caller's edit must stay in its own config
    from dataclasses import fields, is_dataclass

    from jeat.presets import available_presets, get_preset

    def touch(obj):
        for f in fields(obj):
            v = getattr(obj, f.name)
            if is_dataclass(v):
                touch(v)
            elif isinstance(v, bool):
                setattr(obj, f.name, not v)
            elif isinstance(v, (int, float)):
                setattr(obj, f.name, v + 1)

    for name in available_presets():
        before = get_preset(name).to_dict()
        touch(get_preset(name))
        assert get_preset(name).to_dict() == before, name
