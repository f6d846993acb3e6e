"""``jeat generate`` / ``jeat denoise`` / ``jeat plot grad-norms`` and their Python API on tiny trained runs:
output formats, reproducibility, seed distributions, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_npz_dir, tiny_config
from PIL import Image

from jeat.cli import main
from jeat.sampling import GenerateConfig, generate, generate_from_checkpoint
from jeat.sampling.grid import class_grid, load_samples, to_uint8
from jeat.training import Trainer

K, SIZE = 4, 16


def _train(cfg, run_dir):
    trainer = Trainer(cfg, run_dir=run_dir, progress=False)
    try:
        trainer.fit()
    finally:
        getattr(trainer, "close", lambda: None)()
    return run_dir


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return make_npz_dir(tmp_path_factory.mktemp("gen") / "data", n_train=64, n_test=16, size=SIZE, num_classes=K)


@pytest.fixture(scope="module")
def run(data_dir, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("genrun")
    return _train(tiny_config(data_dir, base, epochs=1), base / "run")


def test_outputs_have_the_documented_formats(run, tmp_path):
    out = tmp_path / "gen"
    res = generate_from_checkpoint(run, out=out, sampler="joint", per_class=3, steps=4, step_size=0.1, batch_size=5)
    assert res.x.shape == (K * 3, 3, SIZE, SIZE) and res.x.min() >= 0 and res.x.max() <= 1
    x, y = load_samples(out / "samples.npz")
    assert x.dtype == np.uint8 and x.shape == (K * 3, SIZE, SIZE, 3)
    assert y.dtype == np.int64 and y.tolist() == [c for c in range(K) for _ in range(3)]
    np.testing.assert_array_equal(x, to_uint8(res.x))
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (K * (SIZE + 2) + 2, 3 * (SIZE + 2) + 2, 3)  # one row per class, 2-px padding
    tr = json.loads((out / "traces.json").read_text())
    assert tr["config"]["sampler"] == "joint" and tr["num_samples"] == K * 3
    for key in ("energy", "grad_norm", "joint_grad_norm", "marginal_grad_norm", "joint_grad_norm_std"):
        assert len(tr[key]) == 4, key
    assert tr["grad_norm"] == pytest.approx(tr["joint_grad_norm"], rel=1e-4)  # Eq. 17 follows grad E(x, y)
    assert 0 <= tr["accuracy_on_samples"] <= 1


def test_reruns_with_the_same_seed_are_identical(run):
    kw = dict(per_class=2, steps=3, step_size=0.1, noise=0.05, batch_size=3)
    for sampler in ("ce", "joint", "marginal", "combined"):
        a = generate_from_checkpoint(run, sampler=sampler, seed=7, pgd_steps=2, **kw)
        b = generate_from_checkpoint(run, sampler=sampler, seed=7, pgd_steps=2, **kw)
        c = generate_from_checkpoint(run, sampler=sampler, seed=8, pgd_steps=2, **kw)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y), sampler
        assert not torch.equal(a.x, c.x), sampler
    # and the caller's RNG state is left alone
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    generate_from_checkpoint(run, seed=1, **kw)
    assert torch.equal(torch.rand(3), expected)


def test_marginal_labels_are_predictions_and_combined_reports_the_prior(run):
    m = generate_from_checkpoint(run, sampler="marginal", per_class=2, steps=2, step_size=0.1)
    assert m.extra["labels"] == "predicted" and m.y.dtype == torch.int64 and m.y.shape == (2 * K,)
    c = generate_from_checkpoint(run, sampler="combined", per_class=2, steps=2, step_size=0.1, pgd_steps=5)
    assert c.config.clamp is False  # contrast reduction instead of clamping, as Robust JEM
    prior = c.extra["prior"]
    assert prior["p_target_prior"] > prior["p_target_seed"]


@pytest.mark.parametrize("dist", ["gaussian", "gmm"])
def test_fitted_seed_distributions_run_and_are_cached(run, dist):
    res = generate_from_checkpoint(run, seed_dist=dist, per_class=2, steps=1, gmm_components=2, gmm_rank=2)
    assert res.x.shape == (2 * K, 3, SIZE, SIZE)
    name = "seeds-gaussian.safetensors" if dist == "gaussian" else "seeds-gmm-m2-r2.safetensors"
    assert (run / name).is_file()


def test_buffer_seeds(data_dir, tmp_path, run):
    cfg = tiny_config(data_dir, tmp_path, epochs=1, method__name="jem", model__arch="jem-cnn-small")
    cfg.method.sgld.steps, cfg.method.sgld.buffer_size = 2, 32
    jem = _train(cfg, tmp_path / "jem")
    res = generate_from_checkpoint(jem, seed_dist="buffer", per_class=2, steps=1)
    assert res.x.shape == (2 * K, 3, SIZE, SIZE)
    with pytest.raises(ValueError, match="no replay buffer"):
        generate_from_checkpoint(run, seed_dist="buffer", per_class=1, steps=1)


def test_generate_api_on_a_bare_model():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3))
    res = generate(model, 3, (3, 4, 4), GenerateConfig(per_class=2, steps=2, classes=[0, 2]))
    assert res.seed_y.tolist() == [0, 0, 2, 2] and res.trace.energy.shape == (2,)
    with pytest.raises(ValueError, match="unknown sampler"):
        generate(model, 3, (3, 4, 4), GenerateConfig(sampler="nope"))
    with pytest.raises(ValueError, match="classes must lie"):
        generate(model, 3, (3, 4, 4), GenerateConfig(classes=[5]))


def test_class_grid_pads_short_rows():
    x = torch.rand(3, 3, 4, 4)
    g = class_grid(x, torch.tensor([0, 0, 2]), 3, per_row=2, padding=1)
    assert g.shape == (2 * 5 + 1, 2 * 5 + 1, 3)  # class 1 has no images: skipped


def test_cli_generate_denoise_and_plot(run, tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["generate", str(run), "--sampler", "ce", "--per-class", "2", "--steps", "3", "--step-size", "0.1",
               "--out", str(out), "--device", "cpu", "--no-progress", "--seed", "3"])  # fmt: skip
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["num_samples"] == 2 * K and summary["out"] == str(out)
    assert {p.name for p in out.iterdir()} >= {"grid.png", "samples.npz", "traces.json"}
    assert main(["plot", "grad-norms", str(out)]) == 0
    assert (out / "grad_norms.png").is_file()
    capsys.readouterr()
    dn = tmp_path / "dn"
    rc = main(["denoise", str(run), "--n", "6", "--sigma", "0.1", "--steps", "3", "--out", str(dn), "--device", "cpu"])
    assert rc == 0
    m = json.loads((dn / "metrics.json").read_text())
    assert m["n"] == 6 and len(m["psnr_curve"]) == 4 and m["psnr_noisy"] < 30 and 0 < m["ssim_noisy"] < 1
    grid = np.asarray(Image.open(dn / "denoise.png"))
    assert grid.shape[:2] == (3 * (SIZE + 2) + 2, 6 * (SIZE + 2) + 2)  # rows: clean, noisy, denoised
    capsys.readouterr()
    # --paper: Appendix G.1's noise (variance 0.3) and Langevin sampler; a flag given beside it wins
    assert main(["denoise", str(run), "--paper", "--n", "4", "--steps", "2", "--out", str(tmp_path / "dp"),
                 "--device", "cpu"]) == 0  # fmt: skip
    s = json.loads(capsys.readouterr().out)
    assert s["paper_settings"] == {"sigma": "paper", "steps": "given", "step_size": "paper", "noise": "paper"}
    cfg = json.loads((tmp_path / "dp" / "metrics.json").read_text())
    assert len(cfg["psnr_curve"]) == 3 and cfg["psnr_noisy"] < m["psnr_noisy"]  # std 0.548 is far noisier than 0.1
    assert main(["generate", str(run), "--seed-dist", "buffer", "--steps", "1", "--out", str(tmp_path / "x")]) == 1
    assert "no replay buffer" in capsys.readouterr().err


def test_pyld_kernel_lowers_the_energy_and_rejects_ce(run):
    from jeat.energy import energy
    from jeat.loading import load_trained

    model = load_trained(run).model.eval()
    torch.manual_seed(0)
    x0 = torch.rand(8, 3, SIZE, SIZE)
    y = torch.arange(8) % K
    cfg = GenerateConfig(sampler="joint", kernel="pyld", steps=5, inner_steps=3, per_class=2, noise=0.0)
    res = generate(model, K, (3, SIZE, SIZE), cfg, seeds=lambda yy: x0[: len(yy)])
    with torch.no_grad():
        before = energy(model(x0), y, "joint").mean()
        after = energy(model(res.x), res.seed_y, "joint").mean()
    assert after < before and res.x.min() >= 0 and res.x.max() <= 1 and res.trace is None
    with pytest.raises(ValueError, match="pyld kernel samples joint, marginal or combined"):
        GenerateConfig(sampler="ce", kernel="pyld").validate()


def test_paper_inference_fills_only_what_the_user_left_unset(run):
    from jeat.sampling.generate import ROBUST_JEM_INFERENCE, paper_inference

    cfg, named = paper_inference({"sampler": "joint", "steps": 2}, paper=True)
    assert (cfg.kernel, cfg.inner_steps, cfg.steps, cfg.seed_dist, cfg.noise) == ("pyld", 5, 2, "jempp", 0.005)
    assert "steps" not in named and {"kernel", "seed_dist", "inner_steps"} <= set(named)
    assert ROBUST_JEM_INFERENCE["marginal"]["steps"] == 300 and ROBUST_JEM_INFERENCE["joint"]["steps"] == 50
    assert ROBUST_JEM_INFERENCE["combined"]["pgd_eps"] == 0.25  # the paper's 0.5 in [-1, 1] units
    plain, none = paper_inference({"sampler": "joint"}, paper=False)
    assert none is None and plain.kernel == "sgld" and plain.steps == 100
    # A standard run gets jeat's inference unless --inference paper; the report says which.
    res = generate_from_checkpoint(run, per_class=1, steps=1)
    assert res.extra["inference"] == "jeat" and res.config.kernel == "sgld"
    res = generate_from_checkpoint(run, per_class=1, steps=2, inference="paper", sampler="combined", pgd_steps=1)
    assert res.extra["inference"] == "paper (Robust JEM)" and res.config.kernel == "pyld"
    assert res.config.seed_dist == "jempp" and (run / "seeds-jempp.safetensors").is_file()
    assert "steps" in res.extra["settings_given"] and "pgd_eps" in res.extra["settings_from_paper"]


def test_a_robust_jem_run_generates_with_the_papers_inference(data_dir, tmp_path, capsys):
    cfg = tiny_config(data_dir, tmp_path, epochs=1, method__name="robust-jem")
    cfg.method.sgld.steps, cfg.method.sgld.buffer_size, cfg.method.attack.steps = 1, 16, 1
    rj = _train(cfg, tmp_path / "rj")
    assert main(["generate", str(rj), "--per-class", "1", "--steps", "2", "--no-progress", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["inference"] == "paper (Robust JEM)" and summary["out"].endswith("generate-joint-jempp")
    traces = json.loads((rj / "generate-joint-jempp" / "traces.json").read_text())
    assert traces["config"]["kernel"] == "pyld" and traces["config"]["steps"] == 2  # the user's steps win
    assert "kernel" in traces["settings_from_paper"] and "steps" not in traces["settings_from_paper"]
    assert main(["generate", str(rj), "--inference", "jeat", "--per-class", "1", "--steps", "1", "--no-progress",
                 "--out", str(tmp_path / "j")]) == 0  # fmt: skip
    assert json.loads((tmp_path / "j" / "traces.json").read_text())["config"]["kernel"] == "sgld"


def test_generate_denoise_and_evaluate_give_the_process_the_runs_cpu_malloc(run, tmp_path, monkeypatch, capsys):
    """Their attack, SGLD and Inception passes page-fault without it (benchmarks/results/allocator_eval_cpu.md)."""
    import jeat.loading

    seen = []
    monkeypatch.setattr(jeat.loading, "apply_cpu_malloc", lambda choice, device: seen.append((choice, device)))
    cpu = ["--device", "cpu"]
    assert main(["generate", str(run), "--per-class", "1", "--steps", "1", "--out", str(tmp_path / "g"), *cpu]) == 0
    assert main(["denoise", str(run), "--n", "2", "--steps", "1", "--out", str(tmp_path / "d"), *cpu]) == 0
    assert main(["evaluate", str(run), "--suite", "calibration", "--n", "8", "--out", str(tmp_path / "e"), *cpu]) == 0
    capsys.readouterr()
    assert seen == [("cached", "cpu")] * 3  # the run's setting (TrainConfig's default), on the device used
