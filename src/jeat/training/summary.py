"""The end of a run: ``summary.json`` and the saved weights (mixed into the Trainer).

``summary()`` is what `jeat train` prints and writes: status (ok / recovered / warned /
stalled / diverged / failed), steps, validation accuracy (final and best: what the run decided on) and test
accuracy (final weights and best.pt's: reported only), training time, guard events, which weights
the accuracy was measured with (raw, or the EMA) and the optional PGD-20 check. ``finish()``
writes ``model.safetensors`` (and ``model_ema.safetensors``) atomically on rank 0.
"""

from __future__ import annotations

import math

import torch
from safetensors.torch import save as st_save

from . import distributed as D
from .checkpoint import atomic_write_bytes, atomic_write_json
from .precision import hardware


class Summary:
    def summary(self, status: str | None = None) -> dict:
        cfg = self.cfg
        epochs = self.run.records("epoch")
        rollbacks = [e for e in self.events if e.get("action", "").startswith("rollback")]
        if status is None:
            status = "recovered" if rollbacks else ("warned" if self.events else "ok")
        failure = self.did_not_learn(epochs) if status != "diverged" else None
        stall = None if failure or status == "diverged" else self.stalled(epochs)
        saturation = None if failure or stall or status == "diverged" else self.saturated(epochs)
        if failure:
            status = "failed"
        elif stall:
            status = "stalled"
        elif saturation:
            status = "saturated"
        return {
            **({"failure": failure} if failure else {}),
            **({"stall": stall} if stall else {}),
            **({"saturation": saturation} if saturation else {}),
            "preset": cfg.preset,
            "method": cfg.method.name,
            "arch": cfg.model.arch,
            "amp": cfg.amp,  # resolved (amp=auto -> bf16 | none): speeds are only comparable at equal precision
            "amp_why": cfg.amp_why,
            # CPU threads: speeds depend on it, and so do the exact numbers (reduction order), so two runs
            # are bit-identical only at the same count (benchmarks/stability/stability.py pairs runs on it)
            "threads": torch.get_num_threads(),
            "hardware": hardware(self.device),  # bf16 kernels (AMX, AVX512-BF16, GPU) round differently
            # ok | recovered (rolled back, then learned) | warned (policy warn) | stalled (finished, learned a
            # little, then made no progress with its cross-entropy near chance's: `stall`) | saturated (finished, but
            # its -log p(x) term sat at the energy L2's optimum and gave no gradient: `saturation`) |
            # diverged (stopped) |
            # failed (finished without learning: best validation accuracy within guard.fail_margin of chance)
            "status": status,
            "epochs": self.epoch,
            "steps": self.global_step,
            "train_images": len(self.train_set),
            **self.accuracies(epochs),
            "train_time_s": sum(r["train_time_s"] for r in epochs),
            "guard": {
                "policy": cfg.guard.policy,
                "retries": self.retries,
                "lr_scale": self.lr_scale,
                "events": self.events,
            },  # fmt: skip
            # test_acc is measured with these weights (raw, or the EMA of training/ema.py)
            "weights": self.weights,
            **({"init": {"from": cfg.init, "weights": cfg.init_weights}} if cfg.init else {}),
            **self.method.describe(),
            **(
                {
                    "ema": {
                        "decay": cfg.ema.decay,
                        "warmup": cfg.ema.warmup,
                        "updates": self.ema.updates,
                        "valid_acc_raw": epochs[-1].get("valid_acc_raw") if epochs else None,
                        "test_acc_raw": epochs[-1].get("test_acc_raw") if epochs else None,
                    }
                }
                if self.ema is not None
                else {}
            ),  # fmt: skip
        }

    def accuracies(self, epochs: list[dict]) -> dict:
        """Validation and test accuracy, kept apart: the run decided on the first (best.pt, the guard),
        the second only reports, for the final weights and for the best-on-validation weights."""
        best_rec = (
            next((r for r in epochs if r["step"] == self.best_step), None) if self.best_step is not None else None
        )
        val = self.valid_set is not None
        return {
            "valid_images": len(self.valid_set) if val else 0,
            "test_images": len(self.test_set),
            # the split every decision read: validation data, or none (data.valid_size=0: decisions off)
            "selection": "validation" if val else "none (data.valid_size=0: no guard epoch triggers, no best.pt)",
            "valid_acc": epochs[-1].get("valid_acc") if epochs else None,  # final weights
            "best_valid_acc": self.guard.best_valid_acc if val else None,
            "best_epoch": best_rec["epoch"] if best_rec else None,
            "test_acc": epochs[-1]["test_acc"] if epochs else None,  # final weights (checkpoint.pt, model.safetensors)
            "test_acc_best_valid": best_rec["test_acc"] if best_rec else None,  # checkpoints/best.pt's weights
            # what `jeat evaluate / generate / denoise RUN` load unless given a file: the final weights
            "weights_used_by_commands": {
                "default": "final: RUN/checkpoint.pt (model.safetensors once finished)",
                **({"best_on_validation": "pass RUN/checkpoints/best.pt"} if best_rec else {}),
            },
        }  # fmt: skip

    def judged_accuracy(self, epochs: list[dict]) -> tuple[str, str] | None:
        """The accuracy a finished run is judged on (record key, words), or None when it cannot be."""
        if not epochs:
            return None
        if self.valid_set is not None:
            if len(self.valid_set) < self.cfg.guard.fail_min_valid:
                return None
            return "valid_acc", f"validation accuracy on {len(self.valid_set)} held-out training images"
        # the epochs' mean batch accuracy over at least as many images as a split would need
        if len(self.train_set) < self.cfg.guard.fail_min_valid or not any("train_acc" in r for r in epochs):
            return None
        return "train_acc", "training accuracy (no validation split: data.valid_size=0)"

    def stalled(self, epochs: list[dict]) -> str | None:
        """Why a finished run that learned counts as stalled, or None (see :func:`stall_reason`)."""
        judged = self.judged_accuracy(epochs)
        if judged is None or not self.cfg.guard.stall:
            return None
        return stall_reason(epochs, judged[0], self.train_set.num_classes, self.cfg.guard.stall_ce,
                            self.cfg.guard.stall_gain, judged[1])  # fmt: skip

    def saturated(self, epochs: list[dict]) -> str | None:
        """Why a finished energy-based run counts as saturated, or None (see :func:`saturation_reason`)."""
        m = self.cfg.method
        if not self.cfg.guard.saturation or m.energy_l2 <= 0:
            return None
        return saturation_reason(epochs, m.px_weight / m.energy_l2, self.cfg.guard.saturation_share)

    def did_not_learn(self, epochs: list[dict]) -> str | None:
        """Why a finished run counts as not having learned, or None (also None when not judged). Read on
        validation accuracy; without a split, on the epochs' training accuracy -- never on the test set."""
        g = self.cfg.guard
        judged = self.judged_accuracy(epochs)
        if judged is None:
            return None
        key, what_on = judged
        epochs = [r for r in epochs if key in r]
        chance = 1.0 / max(self.train_set.num_classes, 1)
        best, final = max(r[key] for r in epochs), epochs[-1][key]
        what = "; ".join(f"{e['action']} at step {e['step']}" for e in self.events if "action" in e) or "no guard event"
        k = self.train_set.num_classes
        if best < chance + g.fail_margin:
            return (f"the run did not learn: best {what_on} {best:.3f} (final {final:.3f}) is within "
                    f"{g.fail_margin:.2f} of chance ({chance:.3f}, {k} classes); guard: {what}")  # fmt: skip
        # Learned, then died: the final weights (what later commands load) are no model (stability_cpu.md,
        # cpu-jeat on digits28: 18.3 % at best, then exactly chance for 13 epochs, status 'recovered').
        if final < chance + g.fail_margin:
            kept = ", kept in checkpoints/best.pt" if self.best_step is not None else ""
            return (f"the run ended at chance: final {what_on} {final:.3f} is within {g.fail_margin:.2f} of chance "
                    f"({chance:.3f}, {k} classes); its best was {best:.3f}{kept}; guard: {what}")  # fmt: skip
        return None

    def write_summary(self, status: str | None = None, extra: dict | None = None) -> dict:
        summary = {**self.summary(status), **(extra or {})}
        if self.rank == 0:
            atomic_write_json(self.run.path / "summary.json", summary)
        return summary

    def finish(self) -> dict:
        cfg = self.cfg
        extra: dict = {}
        if cfg.eval_robust_n:  # sharded over ranks like the clean test accuracy
            sub = self.test_set.subset(cfg.eval_robust_n)
            attack = {"eps": 8 / 255, "step_size": 2 / 255, "steps": 20, "energy": "ce"}
            extra["pgd20_acc"] = self.evaluate(sub, attack=attack, weights=self.weights)
            extra["pgd20_n"] = len(sub)
            extra["pgd20_settings"] = attack
        if self.rank == 0:
            self._save_weights(self.model.state_dict(), "model.safetensors")
            if self.ema is not None:
                self._save_weights(self.ema.shadow, "model_ema.safetensors")
        summary = self.write_summary(extra=extra)
        D.barrier()
        return summary

    def _save_weights(self, state: dict, name: str) -> None:
        state = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        atomic_write_bytes(self.run.path / name, lambda f: f.write(st_save(state)))


STALL_MIN_EPOCHS = 4  # two halves of at least two epochs each: one epoch's dip or jump is not a trend


def stall_reason(epochs: list[dict], key: str, classes: int, ce_share: float, gain: float, what_on: str) -> str | None:
    """A run stalled when, over the second half of its epochs, its training cross-entropy stayed at or
    above ``ce_share`` x ln(classes) (the loss of a uniform guess) and its best ``key`` accuracy rose less
    than ``gain`` above the first half's best. The guard cannot see this: nothing falls. Measured case:
    cpu-jeat at the medium study's scale sat at CE 2.2 (ln 10 = 2.30) with 18-29 % validation accuracy for 7
    of 8 epochs, in fp32 and bf16 (benchmarks/results/study/probes/jeat_medium_precision.md), status `ok`.
    Judged only where the method logs its cross-entropy term (``train_ce``: the energy-based methods)."""
    epochs = [r for r in epochs if key in r and "train_ce" in r]
    if len(epochs) < STALL_MIN_EPOCHS or classes < 2:
        return None
    first, second = epochs[: len(epochs) // 2], epochs[len(epochs) // 2 :]
    floor = ce_share * math.log(classes)
    low_ce = min(r["train_ce"] for r in second)
    before, after = max(r[key] for r in first), max(r[key] for r in second)
    if low_ce < floor or after >= before + gain:
        return None
    return (f"the run stalled: over its last {len(second)} of {len(epochs)} epochs the training cross-entropy "
            f"stayed at or above {low_ce:.2f} ({ce_share:g} x ln {classes} = {floor:.2f}) and the best {what_on} "
            f"was {after:.3f}, against {before:.3f} in the first {len(first)} epochs (less than {gain:.2f} "
            "of progress)")  # fmt: skip


def saturation_reason(epochs: list[dict], optimum: float, share: float) -> str | None:
    """A run saturated when, over the second half of its epochs, every epoch's mean energy gap
    E(x_data) - E(x~) sat at or below ``-share x optimum``, where ``optimum`` = px_weight / energy_l2 is how far
    the gap goes when the model tells data and negatives apart completely: w (E_d - E_n) + alpha (E_d^2 +
    E_n^2) is least at E_d = -w / 2 alpha, E_n = w / 2 alpha. There the -log p(x) term's gradient vanishes and
    the sampler no longer shapes the model: it trains as a classifier with an energy penalty. Measured case:
    cpu-jem at the medium study's scale sat at -9.95 to -9.99 (optimum 10) from epoch 2 of 8, 77.6 % test
    accuracy, FID 326 against 262 at the small scale, log p(x) rating noise above test images; learning EBM
    runs of the small study (with the L2) had epoch gaps of -4.4 to +0.6. Judged where the method logs its
    energy gap."""
    epochs = [r for r in epochs if "train_energy_gap" in r]
    if len(epochs) < STALL_MIN_EPOCHS or optimum <= 0:
        return None
    second = epochs[len(epochs) // 2 :]
    bound = -share * optimum
    high = max(r["train_energy_gap"] for r in second)
    if high > bound:
        return None
    return (f"the -log p(x) term saturated: over the last {len(second)} of {len(epochs)} epochs the mean energy gap "
            f"E(x_data) - E(x~) stayed at or below {high:.2f} ({share:g} x -{optimum:g} = {bound:.2f}, the energy "
            "L2's optimum -px_weight / energy_l2): the model tells data from its samples apart completely, the term "
            "gives no gradient and the model trains as a classifier with an energy penalty")  # fmt: skip
