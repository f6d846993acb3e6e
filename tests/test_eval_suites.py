"""Every evaluation suite end to end on a tiny trained model, FID with a mock Inception net."""

import json

import pytest
import torch
from conftest import make_npz_dir, tiny_config, write_npz
from torch import nn

from jeat.cli import main
from jeat.evaluation import evaluate
from jeat.evaluation import fid as fid_mod

EPS = 8 / 255


class MockInception(nn.Module):
    """Stands in for the 2048-d pool3 net (as pytorch-fid's tests do): 4x4 average pool -> 48 features."""

    def forward(self, x):
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    from jeat.training import train

    tmp = tmp_path_factory.mktemp("eval")
    data = make_npz_dir(tmp / "data", n_train=64, n_test=32, size=16, num_classes=10)
    cfg = tiny_config(data, tmp / "runs", name="tiny-eval")
    train(cfg, progress=False, max_steps=4)
    write_npz(tmp / "samples.npz", 12, size=16, num_classes=10, seed=5)
    return tmp / "runs" / "tiny-eval", data, tmp / "samples.npz"


@pytest.fixture
def mock_inception(monkeypatch):
    monkeypatch.setattr(fid_mod, "load_inception", lambda device: MockInception())


def _opts(tmp):
    return {"fid.size": "16", "fid.n_ref": "64", "fid.cache_dir": str(tmp / "fidcache"), "robustness.aa_n": "6",
            "robustness.pgd_steps": "3,5", "fisher.probes": "2", "landscape.grid": "5", "landscape.images": "2",
            "memorisation.n": "3", "memorisation.k": "4",
            "robustness.cw_steps": "3", "robustness.energy_steps": "3", "robustness.cw_l2_steps": "5"}  # fmt: skip


def test_every_suite_end_to_end(tiny_run, mock_inception, tmp_path):
    run, data, samples = tiny_run
    out = tmp_path / "eval"
    m = evaluate(run, suites="all", n=16, batch_size=8, device="cpu", data=str(data), out_dir=out,
                 samples=samples, options=_opts(tmp_path), progress=False)  # fmt: skip
    s = m["suites"]
    assert set(s) == {"robustness", "fid", "fisher", "calibration", "landscape", "memorisation", "ood"}
    rob = s["robustness"]
    for k in ("pgd3", "pgd5", "cw_linf"):
        assert rob[k]["n"] == 16 and rob[k]["max_linf"] <= EPS + 1e-6 and 0 <= rob[k]["accuracy"] <= 100
    assert rob["cw"]["c"] == 0.2 and rob["cw"]["steps"] == 5 and "l_2" in rob["cw"]["loss"]  # the paper's C&W
    assert rob["cw"]["accuracy"] <= rob["clean"]["accuracy"]
    assert rob["pgd5"]["accuracy"] <= rob["clean"]["accuracy"]
    ea = rob["energy_attack"]
    assert "E(x,y) only" in ea["energy_attack"]["loss"] and "cross-entropy" in ea["normal_attack"]["loss"]
    aa = rob["autoattack"]
    if "skipped" not in aa:
        assert aa["n"] == 6 and aa["max_linf"] <= EPS + 1e-6
    ta = rob["torchattacks_check"]
    assert "skipped" in ta or (ta["steps"] == 3 and "agree" in ta)
    assert s["fid"]["n"] == 12 and s["fid"]["n_ref"] == 64 and s["fid"]["fid"] > 0
    assert "not computed" in s["fid"]["is"]  # no logits weights: a message, never a number
    for k in ("jfs", "mfs"):
        assert s["fisher"][k]["n"] == 16 and s["fisher"][k]["probes"] == 2
    assert abs(s["fisher"]["jfs"]["trace"]) < 1e-4  # E(x,y) of a ReLU net is piecewise linear in x
    assert 0 <= s["calibration"]["clean"]["ece"] <= 1 and s["calibration"]["fgsm"]["n"] == 16
    assert len(s["memorisation"]["nearest"]) == 3 and len(s["memorisation"]["nearest"][0]["ssim"]) == 4
    for p in ("reliability.png", "landscape_0.png", "landscape_1.png", "memorisation.png", "report.md"):
        assert (out / p).is_file(), p
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["suites"]["robustness"]["clean"]["n"] == 16 and saved["data"]["n_test"] == 16


def test_fid_of_a_set_with_itself_is_zero_and_cached(tiny_run, mock_inception, tmp_path):
    run, data, _ = tiny_run
    opts = _opts(tmp_path)
    m = evaluate(run, suites="fid", n=8, device="cpu", data=str(data), out_dir=tmp_path / "e",
                 samples=data / "train.npz", options=opts, progress=False)  # fmt: skip
    assert abs(m["suites"]["fid"]["fid"]) < 1e-6
    cache = list((tmp_path / "fidcache").glob("*.npz"))
    assert len(cache) == 1 and "n64" in cache[0].name
    before = cache[0].stat().st_mtime_ns
    evaluate(run, suites="fid", n=8, device="cpu", data=str(data), out_dir=tmp_path / "e",
             samples=data / "train.npz", options=opts, progress=False)  # fmt: skip
    assert cache[0].stat().st_mtime_ns == before  # reused, not recomputed


def test_fid_of_replay_buffer_states_beside_fresh_samples(tiny_run, mock_inception, tmp_path):
    import shutil

    import numpy as np
    from safetensors.torch import save_file

    run, data, samples = tiny_run
    imported = tmp_path / "imported"  # weights + buffer, as `jeat import` writes them
    imported.mkdir()
    shutil.copy(run / "config.json", imported / "config.json")
    from jeat.loading import load_trained

    state = {k: v.contiguous() for k, v in load_trained(run).model.state_dict().items()}
    save_file(state, str(imported / "model.safetensors"))
    train_x = torch.from_numpy(np.load(data / "train.npz")["x"]).permute(0, 3, 1, 2).float() / 255
    save_file({"x": train_x.contiguous()}, str(imported / "replay_buffer.safetensors"))
    opts = {**_opts(tmp_path), "fid.buffer": "true"}
    m = evaluate(imported / "model.safetensors", suites="fid", n=8, device="cpu", data=str(data),
                 out_dir=tmp_path / "e", samples=samples, options=opts, progress=False)  # fmt: skip
    f = m["suites"]["fid"]
    assert f["buffer"]["n"] == 64 and abs(f["buffer"]["fid"]) < 1e-6  # the buffer holds the reference set
    assert f["n"] == 12 and f["fid"] > 0  # fresh samples, reported beside it with their own N
    with pytest.raises(ValueError, match="no replay buffer"):  # a standard run keeps none
        evaluate(run, suites="fid", n=8, device="cpu", data=str(data), out_dir=tmp_path / "e2",
                 options=opts, progress=False)  # fmt: skip


def test_suites_without_samples_say_so_and_cli_compare(tiny_run, tmp_path, capsys):
    run, data, _ = tiny_run
    out = tmp_path / "ev"
    rc = main(["evaluate", str(run), "--suite", "fid,memorisation,calibration", "--n", "8", "--device", "cpu",
               "--data", str(data), "--out", str(out), "--no-progress"])  # fmt: skip
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "--samples" in m["suites"]["fid"]["skipped"] and "--samples" in m["suites"]["memorisation"]["skipped"]
    capsys.readouterr()
    assert main(["compare", str(out), str(out / "metrics.json")]) == 0
    table = capsys.readouterr().out
    assert "ECE clean" in table and table.count("|---") == 3


def test_cli_evaluate_names_the_directory_it_wrote(tiny_run, capsys):
    run, data, _ = tiny_run
    rc = main(["evaluate", str(run), "--suite", "calibration", "--n", "8", "--device", "cpu", "--data", str(data),
               "--no-progress"])  # fmt: skip
    assert rc == 0
    said = capsys.readouterr().out
    assert str(run / "eval" / "metrics.json") in said and "RUN/eval" not in said
    assert json.loads((run / "eval" / "metrics.json").read_text())["out_dir"] == str(run / "eval")


def test_our_pgd_matches_torchattacks(tiny_run):
    torchattacks = pytest.importorskip("torchattacks")
    from jeat.attacks import pgd
    from jeat.data import load_dataset
    from jeat.loading import load_trained

    run, data, _ = tiny_run
    model = load_trained(run).model.eval()
    test = load_dataset("npz", "test", root=str(data))
    x, y = test.images.float() / 255, test.labels
    # Without random start both are deterministic: the same sign-gradient steps and projections.
    ours = pgd(model, x, y, eps=EPS, step_size=2 / 255, steps=10, random_start=False)
    theirs = torchattacks.PGD(model, eps=EPS, alpha=2 / 255, steps=10, random_start=False)(x, y)
    assert (ours - theirs).abs().max() < 1e-5
    assert torch.equal(model(ours).argmax(1), model(theirs).argmax(1))


def test_our_pgd_l2_matches_torchattacks_pgdl2(tiny_run):
    torchattacks = pytest.importorskip("torchattacks")
    from jeat.attacks import pgd
    from jeat.data import load_dataset
    from jeat.loading import load_trained

    run, data, _ = tiny_run
    # float64: in float32 a ReLU kink met one ulp apart already moves a pixel by ~1e-4 after 10 steps.
    model = load_trained(run).model.eval().double()
    test = load_dataset("npz", "test", root=str(data))
    x, y = test.images.double() / 255, test.labels
    ours = pgd(model, x, y, eps=0.5, step_size=0.1, steps=10, random_start=False, norm="l2")
    theirs = torchattacks.PGDL2(model, eps=0.5, alpha=0.1, steps=10, random_start=False)(x, y)
    # torch's renorm divides by ||delta|| + 1e-7, torchattacks by ||delta||: ~1e-8 apart.
    assert (ours - theirs).abs().max() < 1e-6
    assert torch.equal(model(ours).argmax(1), model(theirs).argmax(1))
    assert (ours - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5


def test_robustness_in_l2_names_its_threat_model(tiny_run, tmp_path, capsys):
    run, data, _ = tiny_run
    out = tmp_path / "l2"
    rc = main(["evaluate", str(run), "--suite", "robustness", "--n", "8", "--device", "cpu", "--data", str(data),
               "--out", str(out), "--no-progress", "--norm", "l2", "--eps", "0.25", "--set", "robustness.pgd_steps=3",
               "--set", "robustness.aa_n=4", "--set", "robustness.cw_steps=3", "--set", "robustness.energy_steps=3",
               "--set", "robustness.cw_l2_steps=3"])  # fmt: skip
    assert rc == 0
    rob = json.loads((out / "metrics.json").read_text())["suites"]["robustness"]
    assert rob["norm"] == "l2" and rob["eps"] == 0.25
    assert rob["pgd3"]["norm"] == "l2" and rob["pgd3"]["max_l2"] <= 0.25 + 1e-5
    assert "cw_margin_l2" in rob and "cw_linf" not in rob
    if "accuracy" in rob["autoattack"]:
        assert rob["autoattack"]["norm"] == "L2" and rob["autoattack"]["max_l2"] <= 0.25 + 1e-4
    if "agree" in rob.get("torchattacks_check", {}):
        assert rob["torchattacks_check"]["attack"] == "torchattacks.PGDL2"
    report = (out / "report.md").read_text()
    assert "l_2, eps 0.25" in report
    assert "l_2, eps 0.25" in capsys.readouterr().out


def _aa_context(tmp_path, options=None):
    """A linear model on 3 images labelled by its own predictions (clean accuracy 100 %)."""
    pytest.importorskip("pyautoattack")
    from jeat.data import ImageSet
    from jeat.evaluation.common import EvalContext

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10)).eval()
    images = torch.randint(0, 256, (3, 3, 4, 4), dtype=torch.uint8)
    with torch.no_grad():
        labels = model(images.float() / 255).argmax(1)
    return EvalContext(model, ImageSet(images, labels, [str(i) for i in range(10)]), tmp_path, progress=False,
                       options=dict(options or {}))  # fmt: skip


def test_autoattack_runs_the_official_standard_attacks(tmp_path):
    """A linear model labelled by its own predictions (clean accuracy 100%) and an eps too small to
    flip anything, so all four attacks of the standard version really run on every image."""
    from jeat.evaluation.autoattack import STANDARD, run_autoattack

    ctx = _aa_context(tmp_path)
    res = run_autoattack(ctx, eps=1e-6)
    assert res["accuracy"] == 100.0 and res["n"] == 3 and res["max_linf"] <= 1e-6 + 1e-9
    assert res["settings"] == {k: v for k, v in STANDARD.items()} | {"attacks": STANDARD["attacks"]}
    assert any("SQUARE" in line for line in res["log"])  # the last attack of the chain ran
    assert (tmp_path / "autoattack_state.json").is_file()
    again = run_autoattack(ctx, eps=1e-6)  # resumes from the state file: nothing left to run
    assert again["resumed"] and again["accuracy"] == 100.0


def test_autoattack_rand_version_uses_eot(tmp_path):
    """The rand version (stochastic models): APGD-CE and APGD-DLR with 20 EOT draws per gradient."""
    from jeat.evaluation.autoattack import RAND, run_autoattack

    ctx = _aa_context(tmp_path, {"robustness.aa_version": "rand"})
    res = run_autoattack(ctx, eps=1e-6)
    assert res["version"] == "rand" and res["settings"] == RAND and res["accuracy"] == 100.0
    assert list(res["robust_accuracy_after"]) == ["clean", "apgd-ce", "apgd-dlr"]
    with pytest.raises(ValueError, match="aa_version"):
        run_autoattack(_aa_context(tmp_path, {"robustness.aa_version": "plus"}), eps=1e-6)


def test_robustness_can_run_only_the_attacks_asked_for(tiny_run, tmp_path):
    run, data, _ = tiny_run
    opts = {**_opts(tmp_path), "robustness.attacks": "pgd3,cw_linf", "robustness.autoattack": "0",
            "robustness.torchattacks": "0"}  # fmt: skip
    m = evaluate(run, suites="robustness", n=8, device="cpu", data=str(data), out_dir=tmp_path / "e",
                 options=opts, progress=False)  # fmt: skip
    rob = m["suites"]["robustness"]
    assert {"pgd3", "cw_linf"} <= rob.keys() and not {"pgd5", "cw", "energy_attack"} & rob.keys()
    with pytest.raises(ValueError, match="unknown robustness.attacks"):
        evaluate(run, suites="robustness", n=8, device="cpu", data=str(data), out_dir=tmp_path / "e",
                 options={**opts, "robustness.attacks": "pgd99"}, progress=False)  # fmt: skip
