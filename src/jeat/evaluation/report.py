"""metrics.json and report.md of an evaluation, and the summary rows `jeat compare` tabulates.

metrics.json accumulates: running one suite again replaces only that suite's entry, so suites
can be run separately (the fast ones on CPU, FID on a GPU) into one directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..training.checkpoint import atomic_write_json, atomic_write_text


def load_metrics(path: str | Path) -> dict:
    """metrics.json from a file, an eval dir, or a run dir (RUN/eval/metrics.json)."""
    p = Path(path)
    for f in (p, p / "metrics.json", p / "eval" / "metrics.json"):
        if f.is_file():
            return json.loads(f.read_text())
    raise FileNotFoundError(f"no metrics.json at {p}, {p / 'metrics.json'} or {p / 'eval' / 'metrics.json'}")


def save_metrics(out_dir: Path, header: dict, results: dict) -> dict:
    f = out_dir / "metrics.json"
    metrics = json.loads(f.read_text()) if f.is_file() else {}
    metrics.update(header)
    metrics.setdefault("suites", {}).update(results)
    atomic_write_json(f, metrics)
    return metrics


def _pm(entry: dict | None, key: str = "accuracy", unit: str = "%") -> str:
    if not isinstance(entry, dict) or key not in entry:
        return "-"
    se = f" ± {entry['se']:.2f}" if isinstance(entry.get("se"), float) and entry["se"] == entry["se"] else ""
    return f"{entry[key]:.2f}{se}{unit} (N={entry.get('n', '?')})"


def summary_row(m: dict) -> dict[str, str]:
    """The Table 2-3 quantities of one evaluation, formatted; '-' where not measured."""
    s = m.get("suites", {})
    rob, fid, fis, cal, ood = (s.get(k, {}) for k in ("robustness", "fid", "fisher", "calibration", "ood"))
    aa = rob.get("autoattack", {})
    ea = rob.get("energy_attack", {})
    is_ = fid.get("is")
    row = {
        "Threat model": threat(rob) if rob else "-",
        "Accuracy": _pm(rob.get("clean")),
        "PGD-20": _pm(rob.get("pgd20")),
        "PGD-50": _pm(rob.get("pgd50")),
        "C&W l2 (c=0.2, paper)": _pm(rob.get("cw")),
        "C&W-inf (margin PGD)": _pm(rob.get("cw_linf")),
        "C&W margin PGD-l2": _pm(rob.get("cw_margin_l2")),
        "AutoAttack": (_pm(aa) + f" ({aa.get('version', 'standard')})")
        if "accuracy" in aa
        else ("not run" if aa else "-"),
        "Table 1 CE attack": _pm(ea.get("normal_attack")),
        "Table 1 energy attack": _pm(ea.get("energy_attack")),
        "JFS ↓": _pm(fis.get("jfs"), "score", ""),
        "MFS ↓": _pm(fis.get("mfs"), "score", ""),
        "FID ↓": f"{fid['fid']:.2f} (N={fid['n']}, ref {fid['n_ref']})" if "fid" in fid else "-",
        "IS ↑": f"{is_['mean']:.2f} ± {is_['std']:.2f} (N={is_['n']})" if isinstance(is_, dict) else "-",
        "ECE clean": f"{100 * cal['clean']['ece']:.2f}% (N={cal['clean']['n']})" if "clean" in cal else "-",
        "ECE FGSM": f"{100 * cal['fgsm']['ece']:.2f}% (N={cal['fgsm']['n']})" if "fgsm" in cal else "-",
        "OOD AUROC log p(x)": f"{ood['mean_auroc']['logpx']:.3f} (mean of {len(ood['sets'])} sets, N={ood['n_in']})"
        if "logpx" in ood.get("mean_auroc", {})
        else "-",
    }
    return row


def threat(rob: dict) -> str:
    """'l_inf, eps 8/255' / 'l_2, eps 0.5': the ball every attack of a robustness result used."""
    norm, eps = rob.get("norm", "linf"), rob.get("eps", 8 / 255)
    if norm == "linf":
        e = f"{round(eps * 255)}/255" if abs(eps * 255 - round(eps * 255)) < 1e-6 else f"{eps:g}"
        return f"l_inf, eps {e}"
    return f"l_2, eps {eps:g}"


def label(m: dict) -> str:
    return m.get("name") or Path(m.get("checkpoint", "?")).parent.name


def compare_table(metrics: list[dict]) -> str:
    """Markdown: one column per run, one row per quantity (rows nobody measured are dropped)."""
    rows = [summary_row(m) for m in metrics]
    keys = [k for k in rows[0] if any(r[k] != "-" for r in rows)] if rows else []
    head = "| | " + " | ".join(f"{label(m)} ({m.get('method', '?')})" for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 1) + "|"]
    lines += ["| " + k + " | " + " | ".join(r[k] for r in rows) + " |" for k in keys]
    return "\n".join(lines)


def write_report(out_dir: Path, metrics: dict) -> Path:
    s = metrics.get("suites", {})
    md = [
        f"# Evaluation of `{metrics.get('checkpoint')}`",
        "",
        f"method `{metrics.get('method')}`, model `{metrics.get('arch')}` ({metrics.get('weights', 'raw')} weights), "
        f"data {metrics.get('data')}, "
        f"device {metrics.get('device')}, seed {metrics.get('seed')}. Every number lists the N it was measured on; "
        "all numbers and settings are in `metrics.json`.",
        "",
        "## Summary",
        "",
        compare_table([metrics]),
        "",
    ]
    rob = s.get("robustness", {})
    if rob:
        md += [
            "## Robustness",
            "",
            f"{threat(rob)}, step {rob.get('step_size', 2 / 255):.4g}, random start. C&W-inf / C&W margin PGD-l2 "
            "are PGD on the C&W margin loss; C&W l2 (c=0.2) is the minimum-distortion attack (no eps-ball).",
        ]
        for k in ("autoattack", "torchattacks_check"):
            v = rob.get(k, {})
            if "skipped" in v:
                md.append(f"- {k}: {v['skipped']}")
            elif k == "torchattacks_check" and "agree" in v:
                md.append(
                    f"- {v.get('attack', 'torchattacks.PGD')}-{v.get('steps', 20)} {v['accuracy']:.2f}% "
                    f"vs ours {v['ours']:.2f}% "
                    f"(difference {v['difference']:+.2f}, tolerance {v['tolerance']:.2f}): "
                    f"{'agree' if v['agree'] else 'DISAGREE'}"
                )
            elif k == "autoattack" and "log" in v:
                md += [f"- AutoAttack log: {line}" for line in v["log"]]
        md.append("")
    fid = s.get("fid", {})
    if fid:
        md += [
            "## FID / IS",
            "",
            f"- FID: {fid.get('fid', fid.get('skipped'))}"
            + (f" (N={fid['n']} samples vs {fid['n_ref']} training images)" if "fid" in fid else ""),
            f"- IS: {fid.get('is')}",
            f"- features: {fid.get('features')}",
            "",
        ]
    ood = s.get("ood", {})
    if ood.get("sets"):
        from .ood import table

        sizes = ", ".join(f"{k} (N={v['n']})" for k, v in ood["sets"].items())
        md += ["## Out-of-distribution detection (JEM Table 3)", "",
               f"Positives: {ood['n_in']} test images; sets: {sizes}. "
               "Scores: logpx = log p(x) + const = -E(x); maxprob = max_y p(y|x); grad_norm = -||d log p(x)/dx||.", "",
               *table(ood, "auroc"), "", *table(ood, "aupr_in"), "", *table(ood, "fpr95"), ""]  # fmt: skip
        skipped = ood.get("skipped", {})
        md += [f"Not measured: {k}: {why}." for k, why in skipped.items()] + ([""] if skipped else [])
    mem = s.get("memorisation", {})
    if "skipped" in mem:
        md += ["## Memorisation", "", mem["skipped"], ""]
    for name, res in s.items():
        for p in res.get("plots", []) if isinstance(res, dict) else []:
            md += [f"## {name}: {p}" if name not in ("landscape",) else f"## landscape: {p}", "", f"![{name}]({p})", ""]
    md += ["## Timing (s)", "", json.dumps(metrics.get("timing_s", {})), ""]
    return atomic_write_text(out_dir / "report.md", "\n".join(md))
