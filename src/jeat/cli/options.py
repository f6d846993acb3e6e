"""Options shared by the commands that load a trained model (evaluate, generate, denoise)."""

from __future__ import annotations


def add_model_options(p) -> None:
    """--device, --seed, --debug and --weights, spelled and defaulted the same in every command."""
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    p.add_argument(
        "--weights",
        choices=["auto", "ema", "raw"],
        default="auto",
        help="the run's weight average (ema) or trained weights (raw); auto: ema when the run kept one",
    )
