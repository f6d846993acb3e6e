"""Training methods by name; each is a small :class:`Method` strategy for the one loop.

| name | inputs of the CE term | extra term |
|---|---|---|
| standard | x | - |
| noise | x + N(0, sigma^2) | - |
| pgd | PGD-k on CE (Madry) | - |
| fgsm | FGSM + random start (Fast AT) | - |
| free | x + delta, delta carried across m replays of each batch (Free AT) | - |
| prejeat (alias energy-pgd) | energy attack on E(x,y) (Alg. 2) | - |
| jeat | energy attack on E(x,y) (Alg. 1) | E(x_adv) - E(x~) (SGLD buffer) |
| jem | x | E(x) - E(x~) (SGLD buffer) |
| robust-jem | PGD-k on CE | E(x) - E(x~) (JEM++ sampler) |
| jempp | x | E(x) - E(x~) (JEM++ sampler, Gaussian-seeded chains) |
| trades | x | beta KL(p(x) || p(x')), x' from the KL attack |
| weat | x (nat) or x' (adv), energy-weighted | beta KL, energy-weighted |
| eb-jdat | x and x' (energy + perception attack) | E(x) - E(x~) + 0.1 (E(x) - E(x')) (JEM++ sampler) |
| dat | l_2 PGD-k on CE | BCE(-E(x), 1) + BCE(-E(x_o^T), 0), OOD images attacked T steps (AUC curriculum) |

Any method can be trained with SAM (``optim.sam_rho``; SADA-JEM = jempp + SAM).
"""

from __future__ import annotations

from .base import Method
from .dat import DAT
from .ebjdat import EBJDAT
from .free import FreeAT
from .jeat import JEAT
from .jem import JEM, JEMPP
from .noise import NoiseInjection
from .pgd import FGSMTraining, PGDTraining
from .prejeat import PreJEAT
from .robust_jem import RobustJEM
from .standard import Standard
from .trades import TRADES, WEAT

METHODS: dict[str, type[Method]] = {}


def register_method(cls: type[Method]) -> type[Method]:
    METHODS[cls.name] = cls
    return cls


for _cls in (Standard, NoiseInjection, PGDTraining, FGSMTraining, FreeAT, PreJEAT, JEAT, JEM, RobustJEM,
             JEMPP, TRADES, WEAT, EBJDAT, DAT):  # fmt: skip
    register_method(_cls)
METHODS["energy-pgd"] = PreJEAT  # the issue's name for Algorithm 2's training


def describe_methods() -> dict[str, str]:
    """name -> one-line summary (aliases say what they stand for)."""
    return {name: cls.summary if name == cls.name else f"alias of {cls.name}" for name, cls in sorted(METHODS.items())}


def build_method(cfg, model, train_set, device) -> Method:
    name = cfg.method.name
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name](cfg, model, train_set, device)


__all__ = ["METHODS", "Method", "build_method", "describe_methods", "register_method"]
