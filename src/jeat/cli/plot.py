"""``jeat plot KIND RUN``: figures from a run directory's ``metrics.jsonl`` (PNG, matplotlib Agg).

Kinds live in :data:`PLOTS` (name -> :class:`PlotKind`); a new figure adds one entry:

- ``energy-changes``: Delta_x and Delta_theta of E(x, y) and E(x) per epoch, mean +- std
  (JEAT Fig. 3 / 9 / 10); needs a run trained with ``--set method.track_energy=true``.
- ``grad-norms``: gradient norms over Langevin iterations of a ``jeat generate`` run.
- ``curves``: any logged metrics of one or more runs over steps (e.g. the energy gap of JEM vs JEAT).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class PlotKind:
    help: str
    run: Callable  # (args) -> int
    add_arguments: Callable | None = None  # (parser) -> None, extra options


PLOTS: dict[str, PlotKind] = {}


def run_dir(run: str | Path) -> Path:
    """The run directory of ``run`` (a run directory or a file inside one)."""
    path = Path(run)
    return path if path.is_dir() else path.parent


def read_metrics(run: str | Path) -> list[dict]:
    path = Path(run)
    path = path / "metrics.jsonl" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"no metrics.jsonl at {path}; pass a run directory written by `jeat train`")
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def per_epoch(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(epochs, values) of ``key``: from epoch records (``train_<key>``, averaged over the epoch's
    steps by the loop), else the mean of the step records of each epoch (a run still going)."""
    epochs = [r for r in records if r.get("kind") == "epoch" and f"train_{key}" in r]
    if epochs:
        return [int(r["epoch"]) for r in epochs], [float(r[f"train_{key}"]) for r in epochs]
    groups: dict[int, list[float]] = {}
    for r in records:
        if r.get("kind") == "step" and key in r:
            groups.setdefault(int(r["epoch"]) + 1, []).append(float(r[key]))
    xs = sorted(groups)
    return xs, [sum(groups[e]) / len(groups[e]) for e in xs]


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# ------------------------------------------------------------------ energy-changes
ENERGY_PANELS = (("xy", "E(x, y)"), ("x", "E(x)"))
ENERGY_SERIES = (
    ("dx", r"$\Delta_x$ (attack)", "tab:red", -0.08),
    ("dtheta", r"$\Delta_\theta$ (update)", "tab:blue", 0.08),
)


def plot_energy_changes(run: str | Path, out: str | Path | None = None) -> Path:
    """Draw Delta_x / Delta_theta of E(x,y) and E(x), mean +- std per epoch; returns the PNG path."""
    records = read_metrics(run)
    plt = _figure()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    found = False
    for ax, (e, label) in zip(axes, ENERGY_PANELS, strict=True):
        for d, name, color, shift in ENERGY_SERIES:
            xs, means = per_epoch(records, f"{d}_energy_{e}_mean")
            _, stds = per_epoch(records, f"{d}_energy_{e}_std")
            if not xs:
                continue
            found = True
            ax.errorbar([x + shift for x in xs], means, yerr=stds if len(stds) == len(means) else None, fmt="o",
                        capsize=3, color=color, label=name)  # fmt: skip
        ax.axhline(0.0, color="gray", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"change of {label}")
        ax.set_title(f"{label}: mean $\\pm$ std per epoch")
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if not found:
        plt.close(fig)
        raise ValueError(f"{run}: no energy-change metrics; train with --set method.track_energy=true")
    out = Path(out) if out else run_dir(run) / "energy_changes.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def _run_energy_changes(args) -> int:
    print(plot_energy_changes(args.run, args.out))
    return 0


PLOTS["energy-changes"] = PlotKind("Delta_x / Delta_theta of E(x,y) and E(x) per epoch (JEAT Fig. 3)",
                                   _run_energy_changes)  # fmt: skip


# ------------------------------------------------------------------ grad-norms (generation)
def _run_grad_norms(args) -> int:
    from ..sampling.plots import plot_grad_norms

    print(plot_grad_norms(args.run, args.out))
    return 0


PLOTS["grad-norms"] = PlotKind(
    "||grad_x E(x,y)|| vs ||grad_x E(x)|| over Langevin iterations, mean +- std (JEAT Fig. 11-12); "
    "RUN is a `jeat generate` output directory (its traces.json)",
    _run_grad_norms,
)


# ------------------------------------------------------------------ curves (training)
DEFAULT_CURVES = ("loss", "energy_gap", "test_acc")


def plot_curves(runs: list[str | Path], keys: list[str] | None = None, out: str | Path | None = None) -> Path:
    """One panel per metric over optimizer steps, one line per run (step records; ``test_acc``
    and other epoch-only keys from the epoch records). Default keys: those of
    :data:`DEFAULT_CURVES` that any run logged. Guard events (divergence triggers) are dashed
    vertical lines in the run's colour, labelled with the trigger and what was done."""
    records = {str(r): read_metrics(r) for r in runs}

    def series(recs: list[dict], key: str) -> tuple[list[int], list[float]]:
        pts = [(r["step"], float(r[key])) for r in recs if key in r and r.get("kind") in ("step", "epoch")]
        return [s for s, _ in pts], [v for _, v in pts]

    logged = {k for recs in records.values() for r in recs for k in r}
    keys = list(keys or [k for k in DEFAULT_CURVES if k in logged])
    missing = [k for k in keys if k not in logged]
    if missing or not keys:
        raise ValueError(f"no metric {missing or list(DEFAULT_CURVES)} in {', '.join(records)}; logged: "
                         f"{', '.join(sorted(k for k in logged if k not in ('kind', 'step', 'epoch')))}")  # fmt: skip
    labels = {name: run_dir(name).name for name in records}
    if len(set(labels.values())) < len(labels):  # same run name in different folders: show the folder too
        labels = {name: "/".join(run_dir(name).parts[-2:]) for name in records}
    plt = _figure()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), constrained_layout=True, squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        for name, recs in records.items():
            xs, ys = series(recs, key)
            if xs:
                (line,) = ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, ms=3, label=labels[name])
                for ev in (r for r in recs if r.get("kind") == "guard"):
                    ax.axvline(ev["step"], color=line.get_color(), ls="--", lw=0.8)
                    ax.annotate(
                        f"{ev['reason']} -> {ev['action']}",
                        (ev["step"], 0.98),
                        rotation=90,
                        va="top",
                        xycoords=("data", "axes fraction"),
                        ha="right",
                        fontsize=6,
                        color=line.get_color(),
                    )
        ax.set_xlabel("step")
        ax.set_title(key)
    axes[0][0].legend(fontsize=8)
    out = Path(out) if out else run_dir(runs[0]) / "curves.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _run_curves(args) -> int:
    keys = args.keys.split(",") if args.keys else None
    print(plot_curves([args.run, *args.compare], keys, args.out))
    return 0


def _curves_arguments(q) -> None:
    q.add_argument("--compare", nargs="*", default=[], metavar="RUN", help="more runs drawn on the same axes")
    q.add_argument("--keys", help=f"comma-separated metrics (default: those of {','.join(DEFAULT_CURVES)} logged)")


PLOTS["curves"] = PlotKind("training curves of several runs over steps (loss, energy gap, test accuracy, ...)",
                           _run_curves, _curves_arguments)  # fmt: skip


# ------------------------------------------------------------------ command line
def add_parser(sub) -> None:
    p = sub.add_parser("plot", help="draw figures from a run's metrics (" + ", ".join(PLOTS) + ")",
                       description="Draw a figure from RUN/metrics.jsonl as PNG.")  # fmt: skip
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    for name, kind in PLOTS.items():
        q = kinds.add_parser(name, help=kind.help, description=kind.help)
        q.add_argument("run", metavar="RUN", help="run directory (or its metrics.jsonl)")
        q.add_argument("--out", help="PNG path (default: RUN/<kind>.png)")
        q.add_argument("--debug", action="store_true", help="show full tracebacks")
        if kind.add_arguments:
            kind.add_arguments(q)
        q.set_defaults(func=kind.run)
