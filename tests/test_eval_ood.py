"""The OOD suite (issue 24): its metrics against hand-computed values and its sets and report."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from jeat.data import ImageSet
from jeat.evaluation.common import EvalContext
from jeat.evaluation.ood import SYNTHETIC, run, synthetic_set
from jeat.evaluation.ood_metrics import aupr_in, auroc, fpr_at_tpr


def test_auroc_matches_a_hand_computed_value_with_a_tie():
    # pairs (in, out): 0.9 and 0.8 beat all three outs (6); 0.4 beats 0.1, ties 0.4 (0.5), loses to 0.5
    assert auroc(torch.tensor([0.9, 0.8, 0.4]), torch.tensor([0.5, 0.4, 0.1])) == pytest.approx(7.5 / 9)


def test_auroc_equals_the_pairwise_count_on_random_scores_with_ties():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randint(0, 6, (40,), generator=g).float(), torch.randint(0, 5, (30,), generator=g).float()
    pairs = [(1.0 if x > y else 0.5 if x == y else 0.0) for x, y in itertools.product(a.tolist(), b.tolist())]
    assert auroc(a, b) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)


def test_aupr_and_fpr95_match_hand_computed_values():
    # ranked 3 (in), 2 (out), 1 (in): precision 1 at recall 1/2, 2/3 at recall 1 -> AP = 1/2 + 1/3
    assert aupr_in(torch.tensor([3.0, 1.0]), torch.tensor([2.0])) == pytest.approx(0.5 + 1 / 3)
    s_in = torch.arange(1, 101).float()  # keeping 95 % of them means the threshold 6
    s_out = torch.tensor([0.0, 5.0, 6.0, 50.0])
    assert fpr_at_tpr(s_in, s_out) == pytest.approx(0.5)


def test_perfect_and_reversed_separation():
    s_in, s_out = torch.tensor([5.0, 6.0, 7.0]), torch.tensor([1.0, 2.0])
    assert auroc(s_in, s_out) == 1.0 and aupr_in(s_in, s_out) == 1.0 and fpr_at_tpr(s_in, s_out) == 0.0
    assert auroc(s_out, s_in) == 0.0
    with pytest.raises(ValueError, match="finite"):
        auroc(torch.tensor([float("nan")]), s_out)


class Brightness(nn.Module):
    """logits = [100 * mean(x), 0, ...]: log p(x) grows with the image's brightness."""

    def forward(self, x):
        z = torch.zeros(len(x), 10, dtype=x.dtype)
        return z.index_copy(1, torch.tensor([0]), 100 * x.flatten(1).mean(1, keepdim=True))


def test_a_model_whose_scores_separate_perfectly_reads_one(tmp_path):
    test = ImageSet(torch.full((20, 3, 8, 8), 255, dtype=torch.uint8), torch.zeros(20, dtype=torch.long),
                    [str(i) for i in range(10)])  # fmt: skip
    ctx = EvalContext(Brightness(), test, tmp_path, progress=False,
                      options={"ood.sets": "uniform,gaussian", "ood.scores": "logpx"})  # fmt: skip
    res = run(ctx)
    assert res["sets"]["uniform"]["logpx"] == {"auroc": 1.0, "aupr_in": 1.0, "fpr95": 0.0}
    assert res["sets"]["uniform"]["n"] == 20 and (tmp_path / "ood_hist.png").is_file()


def test_the_default_sets_skip_colour_sets_on_grayscale_data_and_say_so(tmp_path):
    test = ImageSet(torch.full((20, 1, 8, 8), 200, dtype=torch.uint8), torch.zeros(20, dtype=torch.long),
                    [str(i) for i in range(10)])  # fmt: skip
    res = run(EvalContext(Brightness(), test, tmp_path, progress=False, options={"ood.scores": "logpx"}))
    assert set(res["skipped"]) == {"grayscale", "permuted"} and "1 channel" in res["skipped"]["grayscale"]
    assert set(res["sets"]) == {"uniform", "gaussian", "constant", "interp"}
    with pytest.raises(ValueError, match="needs more than one channel"):  # named by the user: still an error
        run(EvalContext(Brightness(), test, tmp_path, progress=False,
                        options={"ood.sets": "permuted", "ood.scores": "logpx"}))  # fmt: skip


def test_synthetic_sets_are_valid_images_of_the_test_shape():
    g = torch.Generator().manual_seed(0)
    test = torch.rand(16, 3, 8, 8)
    for name in SYNTHETIC:
        x = synthetic_set(name, test, 10, g)
        assert x.shape == (10, 3, 8, 8) and x.min() >= 0 and x.max() <= 1, name
        assert torch.equal(x, (x * 255).round() / 255), f"{name} is not 8-bit quantised"
    gray = synthetic_set("grayscale", test, 4, g)
    assert torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    const = synthetic_set("constant", test, 4, g)
    assert (const.flatten(2).std(2) == 0).all()


def test_ood_suite_from_the_cli_writes_the_table_and_histogram(tmp_path, tiny_ood_run, capsys):
    from jeat.cli import main

    run_dir, data = tiny_ood_run
    npz_set = tmp_path / "other.npz"
    import numpy as np

    np.savez(npz_set, x=np.random.default_rng(0).integers(0, 256, (12, 16, 16, 3), dtype=np.uint8),
             y=np.zeros(12, dtype=np.int64))  # fmt: skip
    out = tmp_path / "ood"
    rc = main(["evaluate", str(run_dir), "--suite", "ood", "--n", "12", "--device", "cpu", "--data", str(data),
               "--out", str(out), "--no-progress", "--set", f"ood.sets=uniform,interp,npz:{npz_set}"])  # fmt: skip
    assert rc == 0
    res = json.loads((out / "metrics.json").read_text())["suites"]["ood"]
    assert list(res["sets"]) == ["uniform", "interp", f"npz:{npz_set}"]
    for v in res["sets"].values():
        for s in ("logpx", "maxprob", "grad_norm"):
            assert 0.0 <= v[s]["auroc"] <= 1.0 and 0.0 <= v[s]["fpr95"] <= 1.0
    report = (out / "report.md").read_text()
    assert "Out-of-distribution detection" in report and "| logpx |" in report and "ood_hist.png" in report
    rc = main(["evaluate", str(run_dir), "--suite", "ood", "--n", "4", "--device", "cpu", "--data", str(data),
               "--out", str(out), "--no-progress", "--set", "ood.sets=nonsense"])  # fmt: skip
    assert rc != 0 and "unknown ood set 'nonsense'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_ood_run(tmp_path_factory):
    from conftest import make_npz_dir, tiny_config

    from jeat.training import train

    tmp = tmp_path_factory.mktemp("ood")
    data = make_npz_dir(tmp / "data", n_train=32, n_test=16, size=16, num_classes=10)
    train(tiny_config(data, tmp / "runs", name="tiny-ood"), progress=False, max_steps=2)
    return tmp / "runs" / "tiny-ood", data
