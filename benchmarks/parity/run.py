"""Run the authors' code beside jeat, method by method, and write the parity table.

    python benchmarks/parity/run.py --refs /path/to/checkouts --data ../shared/data
    python benchmarks/parity/run.py --methods jempp --ref-jempp ~/src/JEMPP

``--refs ROOT`` holds one checkout per reference, named ``<owner>+<repo>`` (e.g. ``sndnyang+JEMPP``);
``--ref-<method>`` or ``JEAT_REF_<METHOD>`` name one directly. Each method runs in its own process
(the references share module names such as ``utils``). Results: ``benchmarks/results/parity_cpu.json``
(merged per method) and ``docs/PARITY.md``'s table, rewritten from it. See docs/PARITY.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from common import REFERENCES, ref_checkout  # noqa: E402
from report import write_markdown  # noqa: E402
from timing import MALLOC_MODES  # noqa: E402

from jeat.atomic import atomic_write_text  # noqa: E402

INTERLEAVED = ("jem", "jempp", "sadajem", "trades", "weat")  # harness modules that can alternate the sides' steps
METHODS = ("jem", "jempp", "sadajem", "trades", "weat", "weat-adv", "eb-jdat", "dat", "free", "fast")
CHECKS = {"jem": "jem", "jempp": "jempp", "eb-jdat": "jempp", "sadajem": "sadajem", "trades": "trades",
          "weat": "trades", "weat-adv": "trades", "dat": "dat", "free": "free", "fast": "fast"}  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--refs", help="folder of reference checkouts named <owner>+<repo>")
    for m in METHODS:
        p.add_argument(f"--ref-{m}", help=f"checkout of {REFERENCES[m][0]}")
    p.add_argument("--data", default=os.environ.get("JEAT_DATA"), help="CIFAR-10 root (default $JEAT_DATA)")
    p.add_argument("--steps", type=int, default=30, help="training steps of the trajectory (d)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=2)
    p.add_argument("--buffer", type=int, default=1000)
    p.add_argument("--warmup", type=int, default=5, help="warm-up iterations (JEM family): the first runs at lr 0")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--weat-steps", type=int, default=3, help="WEAT's attack steps (ResNet-18 is slow on a CPU)")
    p.add_argument(
        "--dtype",
        choices=("float32", "float64"),
        default="float32",
        help="float64: both sides in double, to tell the same arithmetic from fp32 rounding",
    )
    p.add_argument("--traj-rtol", type=float, default=1e-3, help="relative tolerance of each trajectory loss")
    p.add_argument("--controls", type=int, default=1,
                   help="float32: one-ulp control draws of jeat against itself; floor = their largest")  # fmt: skip
    p.add_argument("--jeat-amp", choices=("none", "bf16"), default="none",
                   help="bf16: jeat in bf16 autocast against the reference in fp32 (every method): drift, "
                        "reported beside the fp32 floor, never pass / fail; with --speed, a speed row of its own "
                        "(issue 38)")  # fmt: skip
    p.add_argument("--channels-last", action="store_true", help="jeat side in channels_last (its default)")
    p.add_argument("--compile", action="store_true", help="jeat side with compile=true (torch.compile)")
    p.add_argument("--speed", action="store_true", help="speed mode: time steps only, at --depth/--width/--batch")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="speed mode: runs per method (rounds over the methods); the table shows the median and range",
    )
    p.add_argument("--malloc", choices=MALLOC_MODES, default="shipped",
                   help="CPU allocator: shipped = each side as it ships (reference: glibc defaults, jeat: its "
                        "cpu_malloc=cached); cached / system = both sides the same")  # fmt: skip
    p.add_argument("--interleave", action="store_true",
                   help="speed mode, JEM, JEM++, SADA-JEM, TRADES, WEAT: alternate reference step i and jeat "
                        "step i, each timed alone, so that the machine's drift falls on both alike (both sides "
                        "then run under one allocator: jeat's, or glibc's with --malloc system)")  # fmt: skip
    p.add_argument("--jeat-set", action="append", default=[], metavar="KEY=VALUE",
                   help="TRADES, WEAT: a jeat config override (e.g. fold_bn=false) to attribute a speed-up; "
                        "the row is keyed and labelled by it")  # fmt: skip
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/parity_cpu.json"))
    p.add_argument("--md", default=str(ROOT / "docs/PARITY.md"))
    p.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one method in this process
    return p


def run_one(o) -> dict:
    m = o.one
    if o.data:  # the references' scripts run in a temporary directory (and jeat's loop beside them)
        o.data = os.path.abspath(o.data)
    if o.dtype == "float64":  # so that the references' torch.randn(shape) draws doubles, as jeat's randn_like
        import torch

        torch.set_default_dtype(torch.float64)
    if o.malloc == "cached":  # before the reference's first tensor: both sides with jeat's allocator setting
        from jeat.training.allocator import cache_cpu_memory

        cache_cpu_memory()
    checkout = ref_checkout(m, getattr(o, f"ref_{m.replace('-', '_')}"), o.refs)
    mod = __import__(CHECKS[m])
    if m == "eb-jdat":
        res = mod.check(checkout, o, "eb-jdat", ref_checkout("jempp", o.ref_jempp, o.refs))
    elif m in ("weat", "weat-adv"):
        res = mod.check(checkout, o, m)
    else:
        res = mod.check(checkout, o)
    out = dataclasses.asdict(res)
    if o.speed and o.interleave and m in INTERLEAVED and out.get("speed"):
        out["speed"]["order"] = "interleaved"  # the table says so: both sides under one allocator
    out["pass"] = res.passed()
    out["channels_last"] = o.channels_last
    if o.jeat_amp != "none":
        out["settings"]["jeat_amp"] = o.jeat_amp
    out["date"] = time.strftime("%Y-%m-%d")
    # speed and bf16 rounding depend on the CPU's bf16 instructions (AMX, AVX512-BF16, none): name them
    import torch

    from jeat.training.precision import hardware

    out["hardware"] = hardware(torch.device("cpu"))
    return out


def _without_methods(argv) -> list[str]:
    args, out, skip = list(argv if argv is not None else sys.argv[1:]), [], False
    for a in args:
        if skip:
            skip = False
        elif a == "--methods":
            skip = True
        elif not a.startswith("--methods="):
            out.append(a)
    return out


def _run_method(m: str, o, argv) -> dict | None:
    """One method's comparison in its own process (a fresh allocator and RNG state); None if it failed."""
    cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--one", m]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        return None
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["harness_wall_s"] = time.perf_counter() - t0
    res["command"] = f"python benchmarks/parity/run.py --methods {m} " + " ".join(_without_methods(argv))
    return res


def _pooled(runs: list[dict]) -> dict:
    """Speed mode: the run with the median jeat / reference ratio (the lower one of an even count),
    carrying every run's numbers under ``speed.repeats``."""
    res = dict(sorted(runs, key=lambda r: r["speed"]["ratio"])[(len(runs) - 1) // 2])
    keep = ("ratio", "jeat_img_s", "reference_img_s")
    res["speed"] = {**res["speed"], "repeats": [{k: r["speed"][k] for k in keep} for r in runs]}
    return res


def _base_key(o) -> str:
    """The record a run writes: float32 / float64 parity, bf16 drift, or a speed row; a bf16 run never
    replaces an fp32 row. Refuses --jeat-amp bf16 where the harness cannot run jeat in bf16."""
    if o.jeat_amp == "bf16" and o.dtype != "float32":  # every harness sets jeat's cfg.amp from --jeat-amp
        raise SystemExit("--jeat-amp bf16: float32 runs only (the reference runs in float32)")
    key = ("speed" if o.channels_last else "speed-contiguous") if o.speed else f"parity-{o.dtype}"
    if o.jeat_amp == "bf16":
        key = f"{key}-bf16" if o.speed else "parity-bf16"
    return key + (f"-malloc-{o.malloc}" if o.speed and o.malloc != "shipped" else "")


def _key(key: str, method: str, o) -> str:
    """A speed row at a non-default WEAT attack length is a row of its own (``...-attack10``)."""
    if o.speed and o.interleave and method in INTERLEAVED:
        key += "-interleaved"
    if o.jeat_set and method in INTERLEAVED:
        key += "".join(f"-set-{a}" for a in o.jeat_set)
    return f"{key}-attack{o.weat_steps}" if o.speed and method == "weat" and o.weat_steps != 3 else key


def main(argv=None) -> int:
    o = parser().parse_args(argv)
    if o.one:
        print(json.dumps(run_one(o)))
        return 0
    results = json.loads(Path(o.out).read_text()) if Path(o.out).exists() else {}
    key = _base_key(o)
    methods = [s.strip() for s in o.methods.split(",") if s.strip()]
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    failed, runs = [], {m: [] for m in methods}
    # --repeat rounds go over the methods in turn, so that the machine's drift spreads over all of them
    for _ in range(o.repeat if o.speed else 1):
        for m in methods:
            res = _run_method(m, o, argv)
            if res is None:
                failed.append(m)
                continue
            runs[m].append(res)
            # re-read before writing: another invocation may have added its results meanwhile
            results = json.loads(Path(o.out).read_text()) if Path(o.out).exists() else {}
            results.setdefault(m, {})[_key(key, m, o)] = _pooled(runs[m]) if o.speed else res
            # speed mode times steps at the speed settings, without the fp32 controls: no pass / fail there
            status = "timed" if o.speed else "drift" if o.jeat_amp == "bf16" else "pass" if res["pass"] else "FAIL"
            print(
                f"{m}: {status} "
                + ", ".join(f"{k} {v.get('max_rel', 0):.2e}" for k, v in res["checks"].items())
                + (f"; speed jeat/ref {res['speed'].get('ratio', float('nan')):.2f}" if res.get("speed") else "")
            )
            atomic_write_text(Path(o.out), json.dumps(results, indent=1) + "\n")  # never half a record
    write_markdown(results, Path(o.md))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
