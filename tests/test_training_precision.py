"""amp=auto: bf16 only where the device computes it natively; the run records the concrete choice."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config

from jeat.methods import describe_methods
from jeat.training import precision
from jeat.training.loop import Trainer
from jeat.training.precision import resolve_amp

CPU = torch.device("cpu")


@pytest.mark.parametrize("native", [True, False])
def test_auto_picks_bf16_only_where_native(monkeypatch, native):
    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    assert resolve_amp("auto", CPU) == ("bf16" if native else "none")
    assert resolve_amp("none", CPU) == "none"  # an explicit choice is kept either way


def test_explicit_bf16_without_native_support_is_kept_but_warned(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(UserWarning, match="emulates"):
        assert resolve_amp("bf16", CPU) == "bf16"


def test_unknown_amp_is_a_clear_error():
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, none"):
        resolve_amp("fp16", CPU)


def test_native_bf16_answers_for_this_cpu():
    assert isinstance(precision.native_bf16(CPU), bool)
    assert precision.native_bf16(torch.device("meta")) is False


def test_a_run_records_the_resolved_precision_not_auto(tmp_path, monkeypatch, npz_dir):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    trainer = Trainer(tiny_config(npz_dir, tmp_path, amp="auto"), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["amp"] == "none"
    assert trainer.summary()["amp"] == "none"
    assert trainer.summary()["hardware"] == precision.hardware(CPU)  # bf16 results name the kernels they ran on


@pytest.mark.parametrize(
    ("flags", "says"),
    [("avx2 amx_bf16 avx512_bf16", "AMX"), ("avx2 avx512_bf16", "AVX512-BF16"), ("avx2", "no native")],
)
def test_hardware_names_the_cpu_and_its_bf16_instructions(tmp_path, flags, says):
    info = tmp_path / "cpuinfo"
    info.write_text(f"processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu {flags}\n\nprocessor\t: 1\n")
    assert precision.hardware(CPU, str(info)) == f"cpu: Some CPU 9000 ({says}{' bf16' if says == 'no native' else ''})"


def test_auto_trains_bf16_only_for_a_method_the_precision_study_proved_neutral(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    amp, why = precision.resolve_amp_why("auto", CPU, "standard")
    assert amp == "bf16" and "precision_cpu.md" in why
    studied = set(precision.BF16_NEUTRAL) | set(precision.BF16_HELD) | set(precision.BF16_DIFFERS)
    for unmeasured in [m for m in describe_methods() if m not in studied][:1]:  # none once all are studied
        amp, why = precision.resolve_amp_why("auto", CPU, unmeasured)  # fp32, and the run says why
        assert amp == "none" and f"not yet proven neutral for method {unmeasured!r}" in why and "amp=bf16" in why
    amp, why = precision.resolve_amp_why("auto", CPU, "jem")  # held: fp32, with the evidence that holds it
    assert amp == "none" and "held for method 'jem'" in why and "OOD AUROC" in why
    amp, why = precision.resolve_amp_why("auto", CPU, "prejeat")  # measured different: fp32, the column named
    assert amp == "none" and "measured different for method 'prejeat'" in why and "OOD AUROC" in why
    assert precision.resolve_amp_why("bf16", CPU, "jem") == ("bf16", "amp=bf16 chosen explicitly")
    assert studied <= set(describe_methods())  # real methods
    assert len(studied) == len(precision.BF16_NEUTRAL) + len(precision.BF16_HELD) + len(precision.BF16_DIFFERS)


def test_a_run_records_why_and_a_resume_keeps_the_recorded_choice(tmp_path, monkeypatch, npz_dir):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    unproven = {k: v for k, v in precision.BF16_NEUTRAL.items() if k != "jeat"}  # jeat as if not yet measured
    monkeypatch.setattr(precision, "BF16_NEUTRAL", unproven)
    cfg = tiny_config(npz_dir, tmp_path, amp="auto")
    cfg.method.name = "jeat" if cfg.method.name == "standard" else cfg.method.name
    Trainer(cfg, tmp_path / "run", progress=False)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["amp"] == "none" and "not yet proven neutral" in saved["amp_why"]
    monkeypatch.setattr(precision, "BF16_NEUTRAL", {**precision.BF16_NEUTRAL, cfg.method.name: "proven"})
    again = Trainer(type(cfg).from_dict(saved), tmp_path / "again", progress=False)  # what --resume reads
    assert again.cfg.amp == "none" and again.cfg.amp_why == saved["amp_why"]  # the recorded choice stands
