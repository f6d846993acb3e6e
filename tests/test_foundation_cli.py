"""The ``jeat`` command line: help, config printing, a tiny end-to-end run, and clean errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from conftest import make_npz_dir

from jeat.cli import COMMANDS, build_parser, main
from jeat.methods import METHODS
from jeat.models import available_models
from jeat.presets import available_presets


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "usage: jeat" in out and "energy-based" in out
    for name in COMMANDS:
        assert name in out
    # every command explains itself in one line
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub._choices_actions:
        assert action.help, f"`jeat {action.dest}` has no help line"


@pytest.mark.parametrize("command", ["evaluate", "generate", "denoise"])
def test_model_loading_commands_share_options(command):
    # the same spelling and defaults everywhere a checkpoint is loaded (cli/options.py)
    args = build_parser().parse_args([command, "RUN"])
    assert (args.device, args.seed, args.debug, args.weights) == ("auto", 0, False, "auto")
    args = build_parser().parse_args([command, "RUN", "--device", "cpu", "--seed", "3", "--weights", "ema"])
    assert (args.device, args.seed, args.weights) == ("cpu", 3, "ema")
    with pytest.raises(SystemExit):
        build_parser().parse_args([command, "RUN", "--weights", "best"])


def test_train_help_explains_options(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    for flag in ("--preset", "--set", "--resume", "--data", "--print-config", "--device"):
        assert flag in out
    assert "JEAT_DATA" in out
    # The choices are listed where the flags are, not only under `jeat info`.
    assert all(name in out for name in available_presets())
    assert all(f"  {name} " in out for name in METHODS)


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_console_script_help():
    exe = shutil.which("jeat")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "jeat", "--help"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "train" in res.stdout


def test_print_config_with_overrides(capsys):
    rc = main(["train", "--preset", "cpu-standard", "--print-config", "--set", "optim.lr=0.5", "--set",
               "method.attack.eps=4/255", "--epochs", "3", "--arch", "wrn-16-2", "--method", "noise"])  # fmt: skip
    assert rc == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["optim"]["lr"] == 0.5 and cfg["method"]["attack"]["eps"] == 4 / 255
    assert cfg["epochs"] == 3 and cfg["model"]["arch"] == "wrn-16-2" and cfg["method"]["name"] == "noise"
    assert cfg["preset"] == "cpu-standard"


def test_print_config_set_wins_over_shortcuts(capsys):
    assert main(["train", "--preset", "tiny", "--print-config", "--lr", "0.3", "--set", "optim.lr=0.7"]) == 0
    assert json.loads(capsys.readouterr().out)["optim"]["lr"] == 0.7


def test_info_lists(capsys):
    assert main(["info", "presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in available_presets())
    assert main(["info", "models"]) == 0
    assert capsys.readouterr().out.split() == available_models()
    assert main(["info", "methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(ln.split()[0] for ln in lines) == sorted(METHODS)
    assert all(len(ln.split()) > 2 for ln in lines)  # every method has a one-line description


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--preset", "nope", "--print-config"], "unknown preset 'nope'; run `jeat info presets`"),
        (["train", "--print-config", "--set", "optim.lrr=1"], "unknown config field 'optim.lrr'"),
        (["train", "--print-config", "--set", "optim.lr"], "must look like section.field=value"),
        (["train", "--print-config", "--set", "epochs=two"], "bad value for epochs"),
        (["train", "--resume", "/nonexistent/run"], "cannot resume"),
        (["train", "--epochs", "-1"], "epochs must be > 0, got -1"),
        (["train", "--batch-size", "0", "--print-config"], "data.batch_size must be > 0, got 0"),
        (["train", "--set", "method.sgld.steps=0"], "method.sgld.steps must be > 0"),
        (["train", "--set", "method.attack.eps=-0.1"], "method.attack.eps must be >= 0"),
        (["train", "--set", "data.train_limit=0"], "data.train_limit must be >= 1 or none"),
        (["train", "--set", "method.sgld.reinit_prob=1.5"], "reinit_prob must be in [0, 1]"),
    ],
)
def test_bad_input_returns_1_with_a_clear_message(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("jeat train: error: ") and message in err
    assert "Traceback" not in err


def test_missing_data_is_a_clean_error(capsys, tmp_path, no_jeat_data):
    rc = main(["train", "--preset", "tiny", "--data", str(tmp_path / "empty"), "--out", str(tmp_path), "--no-progress",
               "--device", "cpu"])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert "cifar10 (train) not found" in err and "JEAT_DATA" in err and str(tmp_path / "empty") in err


def _train_argv(data, out, *extra):
    return ["train", "--preset", "tiny", "--dataset", "npz", "--data", str(data), "--out", str(out), "--name", "run",
            "--no-progress", "--device", "cpu", "--batch-size", "16", "--set", "data.train_limit=none",
            "--set", "data.test_limit=none", "--set", "log_every=1", "--set", "data.valid_size=16", *extra]  # fmt: skip


def test_train_end_to_end_and_resume(capsys, tmp_path):
    data = make_npz_dir(tmp_path / "data", n_train=64, n_test=16, size=16)  # 16 held out for validation
    assert main(_train_argv(data, tmp_path)) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 3 and summary["epochs"] == 1 and summary["preset"] == "tiny"
    assert 0 <= summary["test_acc"] <= 1
    run = tmp_path / "run"
    for f in ("config.json", "metrics.jsonl", "checkpoint.pt", "model.safetensors", "summary.json"):
        assert (run / f).is_file(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"]["name"] == "npz" and cfg["data"]["root"] == str(data) and cfg["data"]["batch_size"] == 16

    # Resuming with more epochs continues from the checkpoint instead of starting over.
    assert main(["train", "--resume", str(run), "--no-progress", "--set", "epochs=2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 6 and summary["epochs"] == 2
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 3, 4, 5, 6, 6]  # three step lines and one epoch line per epoch
    assert json.loads((run / "config.json").read_text())["epochs"] == 2


def test_package_metadata_does_not_cap_torch():
    """GPU users pick their torch; CPU installs pin it with constraints.txt (README, .ci/run)."""
    from importlib.metadata import requires

    torch_req = [r for r in requires("jeat") if r.split(";")[0].strip().startswith("torch")]
    assert torch_req and all("<" not in r for r in torch_req), torch_req
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert "torch==" in (root / "constraints.txt").read_text()
    for f in ("README.md", ".ci/run"):  # the install path pins it, the metadata does not
        assert "-c constraints.txt" in (root / f).read_text(), f


@pytest.mark.parametrize("method", sorted(METHODS))
def test_train_method_shortcut_gives_a_runnable_config(capsys, method):
    """`jeat train --method NAME` works for every method: what a method implies (JEM++'s sampler
    for jempp, robust-jem and eb-jdat) is set in the config, where --set can still change it."""
    assert main(["train", "--preset", "tiny", "--method", method, "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["method"]["name"] == method
    if method in ("jempp", "robust-jem", "eb-jdat"):
        assert cfg["method"]["sgld"]["sampler"] == "pyld" and cfg["method"]["sgld"]["init"] == "gaussian"
    assert main(["train", "--preset", "tiny", "--method", method, "--print-config",
                 "--set", "method.sgld.init=uniform"]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out)["method"]["sgld"]["init"] == "uniform"


def test_train_eb_jdat_from_the_command_line(tmp_path, capsys):
    data = make_npz_dir(tmp_path / "data", n_train=32, n_test=16, size=8)
    rc = main(["train", "--preset", "tiny", "--method", "eb-jdat", "--dataset", "npz", "--data", str(data),
               "--out", str(tmp_path / "runs"), "--no-progress", "--batch-size", "16", "--set", "method.sgld.steps=1",
               "--set", "method.sgld.inner_steps=1", "--set", "method.sgld.buffer_size=16",
               "--set", "method.sgld.init=uniform", "--set", "method.attack.steps=1",
               "--set", "data.valid_size=0"])  # fmt: skip
    assert rc == 0 and json.loads(capsys.readouterr().out)["method"] == "eb-jdat"


def test_a_truncated_safetensors_is_one_line_naming_the_file(tmp_path, capsys):
    from conftest import tiny_config

    from jeat.training import Trainer

    data = make_npz_dir(tmp_path / "data", n_train=32, n_test=16, size=16)
    t = Trainer(tiny_config(data, tmp_path / "runs", name="r"), progress=False)
    t.fit()
    run = t.run.path
    (run / "checkpoint.pt").unlink()  # what is left to load: model.safetensors, cut short
    blob = (run / "model.safetensors").read_bytes()
    (run / "model.safetensors").write_bytes(blob[: len(blob) // 2])
    capsys.readouterr()
    for argv in (["evaluate", str(run), "--suite", "robustness", "--n", "8", "--no-progress"],
                 ["generate", str(run), "--per-class", "1", "--steps", "1"]):  # fmt: skip
        assert main(argv) == 1, argv
        err = capsys.readouterr().err
        assert "model.safetensors is not a readable safetensors file" in err and "Traceback" not in err, err
        assert len(err.strip().splitlines()) == 1
