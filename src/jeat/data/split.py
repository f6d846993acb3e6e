"""The validation split: images held out of the training set, on which a run makes its decisions.

The test set only reports (docs/TRAINING.md, "Validation"): the guard's epoch triggers,
``best.pt``, rollback targets and the ``failed`` verdict read the validation accuracy. The split
is class-stratified (each class keeps its share of the held-out images, largest remainder) and
drawn with the run's seed, *before* any ``data.train_limit``; it is written to ``RUN/split.json``
so that ``--resume``, every DDP rank, ``jeat evaluate`` / ``generate`` and a re-run use the same
images. The file also records the training set's size and a fingerprint of its labels: a split
read back against other data is refused instead of silently holding out other images.

Two rules (``data.valid_rule``). ``stratified`` (the default) keeps every class's share exact, which a
300- or 2,000-image CPU split needs. ``jem`` is the rule of JEM's ``train_wrn_ebm.py``, copied into JEM++'s
and EB-JDAT's ``utils.get_data``: ``np.random.seed(1234)``, shuffle all indices, hold out the first
``valid_size`` - the same 5,000 images whatever the run's seed. The paper-* presets of that family use
it, so that they train on the references' 45,000 images (``benchmarks/parity/split.py`` runs the
references' ``get_data`` and compares the indices).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_text
from .sources import ImageSet

SPLIT_FILE = "split.json"
# Seeds of the split draw sit apart from the run's other streams (model init, batch order).
SPLIT_SEED_OFFSET = 104_729


VALID_RULES = ("stratified", "jem")
JEM_SPLIT_SEED = 1234  # train_wrn_ebm.py's np.random.seed(1234), whatever the run's --seed


class SplitError(ValueError):
    """A recorded split that does not fit the data it is applied to."""


def labels_fingerprint(labels: torch.Tensor) -> str:
    """SHA-256 of the labels (int64, in order): a split only makes sense on the set it was drawn on."""
    return hashlib.sha256(labels.to(torch.int64).contiguous().numpy().tobytes()).hexdigest()[:16]


@dataclass
class Split:
    valid: list[int]  # indices into the full training set, ascending
    seed: int
    n_total: int
    fingerprint: str
    rule: str = "stratified"

    def apply(self, full: ImageSet) -> tuple[ImageSet, ImageSet]:
        """(training part, validation part) of ``full``; refuses a set the split was not drawn on."""
        if len(full) != self.n_total or labels_fingerprint(full.labels) != self.fingerprint:
            raise SplitError(
                f"the recorded validation split was drawn on a training set of {self.n_total} images "
                f"(labels {self.fingerprint}), this one has {len(full)} (labels {labels_fingerprint(full.labels)}): "
                "point --data at the data the run was trained on"
            )
        mask = torch.ones(len(full), dtype=torch.bool)
        mask[torch.tensor(self.valid, dtype=torch.long)] = False
        keep = mask.nonzero().flatten()
        vidx = torch.tensor(self.valid, dtype=torch.long)
        return (ImageSet(full.images[keep], full.labels[keep], full.classes),
                ImageSet(full.images[vidx], full.labels[vidx], full.classes))  # fmt: skip

    def to_dict(self) -> dict:
        return {"valid_size": len(self.valid), "rule": self.rule, "seed": self.seed, "n_total": self.n_total,
                "labels_sha256_16": self.fingerprint, "valid_indices": self.valid}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Split:
        return cls(list(d["valid_indices"]), int(d["seed"]), int(d["n_total"]), str(d["labels_sha256_16"]),
                   str(d.get("rule", "stratified")))  # fmt: skip


def _check_size(n: int, valid_size: int) -> None:
    if not 0 < valid_size < n:
        raise SplitError(f"data.valid_size must be between 1 and {n - 1} for a training set of {n} images, "
                         f"got {valid_size} (0 turns the split off)")  # fmt: skip


def stratified_split(labels: torch.Tensor, valid_size: int, seed: int) -> Split:
    """Hold out ``valid_size`` indices, each class in proportion to its count (largest remainder),
    drawn uniformly within the class by a generator seeded from ``seed``."""
    n = len(labels)
    _check_size(n, valid_size)
    gen = torch.Generator().manual_seed(seed + SPLIT_SEED_OFFSET)
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * valid_size / n
    share = exact.floor().long()
    # Largest remainders get the images left over; ties broken by class order (deterministic).
    rest = valid_size - int(share.sum())
    if rest:
        order = torch.argsort(exact - share.double(), descending=True, stable=True)
        share[order[:rest]] += 1
    picked = []
    for c, k in zip(classes.tolist(), share.tolist(), strict=True):
        idx = (labels == c).nonzero().flatten()
        picked.append(idx[torch.randperm(len(idx), generator=gen)[:k]])
    valid = torch.cat(picked).sort().values.tolist()
    return Split(valid, seed, n, labels_fingerprint(labels))


def jem_split(labels: torch.Tensor, valid_size: int) -> Split:
    """JEM's rule: the first ``valid_size`` of a permutation drawn by numpy's legacy generator seeded 1234
    (``np.random.seed(1234); np.random.shuffle(all_inds)`` in train_wrn_ebm.py and JEM++'s utils.py)."""
    n = len(labels)
    _check_size(n, valid_size)
    inds = list(range(n))
    np.random.RandomState(JEM_SPLIT_SEED).shuffle(inds)  # the global generator's stream, without touching it
    return Split(sorted(inds[:valid_size]), JEM_SPLIT_SEED, n, labels_fingerprint(labels), "jem")


def draw_split(labels: torch.Tensor, valid_size: int, seed: int, rule: str = "stratified") -> Split:
    """A fresh split by ``rule`` (``VALID_RULES``)."""
    if rule == "jem":
        return jem_split(labels, valid_size)
    if rule != "stratified":
        raise SplitError(f"data.valid_rule must be one of {', '.join(VALID_RULES)}, got {rule!r}")
    return stratified_split(labels, valid_size, seed)


def save_split(path: Path, split: Split) -> None:
    atomic_write_text(path, json.dumps(split.to_dict()))


def load_split(run_dir: str | Path) -> Split | None:
    """The split recorded in ``run_dir`` (a run directory, or a file inside one), or None."""
    p = Path(run_dir)
    p = p if p.is_dir() else p.parent
    f = p / SPLIT_FILE
    if not f.is_file():
        return None
    try:
        return Split.from_dict(json.loads(f.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise SplitError(f"{f}: not a readable validation split ({e})") from None


def run_split(run_dir: Path, full: ImageSet, size: int, seed: int, resume: bool, rule: str = "stratified"
              ) -> Split | None:  # fmt: skip
    """A run's validation split: read back from ``RUN/split.json`` on resume, else drawn by ``rule`` (with the
    run's seed where the rule uses one; every DDP rank draws the same one; the trainer writes it once the run
    directory is claimed)."""
    recorded = load_split(run_dir) if resume else None
    if resume and (recorded is not None) != (size > 0) or recorded is not None and len(recorded.valid) != size:
        have = f"a {len(recorded.valid)}-image validation split" if recorded else "no validation split"
        raise SplitError(f"{run_dir} was trained with {have}, this resume asks for data.valid_size={size}: "
                         "a run keeps its split (drop the --set data.valid_size override)")  # fmt: skip
    if recorded is not None and recorded.rule != rule:
        raise SplitError(f"{run_dir} was trained with data.valid_rule={recorded.rule}, this resume asks for "
                         f"{rule}: a run keeps its split (drop the --set data.valid_rule override)")  # fmt: skip
    if recorded is not None:
        return recorded
    return draw_split(full.labels, size, seed, rule) if size > 0 else None


def training_part(full: ImageSet, run_dir: str | Path | None) -> ImageSet:
    """The images a run trained on: ``full`` minus the run's recorded validation split (if any)."""
    split = load_split(run_dir) if run_dir is not None else None
    return split.apply(full)[0] if split is not None else full
