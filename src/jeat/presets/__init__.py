"""Named configurations: the papers' settings (``paper-*``) and small CPU ones (``cpu-*``).

Paper presets follow Table 4 of the JEAT paper where it speaks; where it is silent they take
the cited method's own defaults (JEM's SGLD settings, Madry's PGD-10, Wong et al.'s Fast AT),
each marked below. CPU presets keep the algorithm and shrink model, epochs and data so that a
run finishes on 2 cores; their wall times are measured in README.md / benchmarks/.

The registry is ``registry.py``; the shared builders ``parts.py``; the JEAT paper's methods
``jeat_paper.py``; the newer hybrids ``hybrids.py``. Importing the package registers them all.
"""

from . import hybrids, jeat_paper  # noqa: F401  (registers the presets)
from .registry import available_presets, get_preset, register

__all__ = ["available_presets", "get_preset", "register"]
