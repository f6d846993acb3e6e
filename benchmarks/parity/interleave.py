"""Speed mode with the two sides' steps interleaved (``run.py --interleave``): step i of the
reference, then step i of jeat, each timed only while it runs, so that a shared machine's drift
falls on both alike (timed one after the other, one side can meet a slower minute than the other).

Two forms. :func:`train_interleaved`, for references whose training step is a function the harness
can call on one batch (TRADES' ``train``, WEAT's ``utils.adv_train``). :class:`Interleave`, for
references run as whole scripts (JEM, JEM++, SADA-JEM): jeat's loop runs in a worker thread that
stops after each of its steps, and each optimizer step of the reference (a global post-hook, in
the main thread) lets it run one step. Only one side runs at a time, and each keeps its own RNG
state, so each draws what it would draw alone. Both sides run under one allocator setting: jeat's
(its Trainer sets it for the process), or glibc's with ``--malloc system``.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time

import numpy as np
import timing
import torch
from observe import bn_state, record_grads_at_step
from timing import note_malloc
from torch.optim.optimizer import register_optimizer_step_post_hook

_active: Interleave | None = None


def after_jeat_step() -> None:
    """Called by ``common.train_jeat`` after each jeat step: hands over to the reference when interleaving."""
    if _active is not None and threading.current_thread() is not threading.main_thread():
        _active.pause()


def train_interleaved(ref_step, tr, lab: list) -> tuple[dict, dict]:
    """The reference's step on batch i (``ref_step([batch])``), then jeat's, each timed alone. Each
    side's ``times`` are its cumulative step ends, as ``timing.speed_record`` reads them."""
    note_malloc()
    note_malloc()
    ref, ours = {"times": [], "wall": 0.0}, {"losses": [], "grads": {}, "times": [], "wall": 0.0}

    def timed(side: dict, step, *args):
        t0 = time.perf_counter()
        out = step(*args)
        side["wall"] += time.perf_counter() - t0
        side["times"].append(side["wall"])
        return out

    ours["lr"] = []
    with record_grads_at_step(ours["grads"], tr.model, 0, None, ours["lr"]):
        for xb, yb in lab:
            timed(ref, ref_step, [(xb, yb)])
            ours["losses"].append(float(timed(ours, lambda a, b: tr.train_step(a, b)["loss"], xb, yb)))
    ours["bn"] = bn_state(tr.model)  # (e) as train_jeat reports it
    return ref, ours


def _rng() -> tuple:
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def _set_rng(state: tuple) -> None:
    torch.set_rng_state(state[0])
    np.random.set_state(state[1])
    random.setstate(state[2])


class Interleave:
    """``with il.running(jeat_loop): reference_main()``, then ``il.finish()`` returns what
    ``jeat_loop()`` returned, its ``times`` and ``wall`` replaced by the time it ran. ``ref_model()``
    names the reference's model (its optimizer's steps are the hand-over points)."""

    def __init__(self, ref_model):
        self.ref_model = ref_model
        self.ref = {"times": [], "wall": 0.0}
        self.jeat = {"times": [], "wall": 0.0}
        self._go, self._paused = threading.Event(), threading.Event()
        self._worker: threading.Thread | None = None
        self._loop = None
        self._result, self._error, self._done = None, None, False
        self._jeat_rng: tuple | None = None
        self._mark = 0.0

    # ---- worker thread
    def pause(self) -> None:
        self._go.clear()
        self._paused.set()
        self._go.wait()

    def _work(self) -> None:
        try:
            self._result = self._loop()
        except BaseException as e:  # re-raised in the main thread by finish()
            self._error = e
        finally:
            self._done = True
            self._paused.set()

    # ---- main thread
    def _resume(self) -> None:
        """jeat until its next pause (or its end); the RNG states swapped around it."""
        self._paused.clear()
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, daemon=True)
            self._worker.start()
        else:
            self._go.set()
        self._paused.wait()

    @contextlib.contextmanager
    def running(self, loop):
        global _active
        self._loop, _active = loop, self
        handle = register_optimizer_step_post_hook(self._on_step)
        self._mark = time.perf_counter()
        try:
            yield self
        finally:
            handle.remove()
            _active = None

    def _on_step(self, opt, args, kwargs) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # jeat's own optimizer, in the worker
        model = self.ref_model()
        params = {id(p) for p in model.parameters()} if model is not None else set()
        if not any(id(p) in params for g in opt.param_groups for p in g["params"]):
            return
        self.ref["wall"] += time.perf_counter() - self._mark
        self.ref["times"].append(self.ref["wall"])
        if not self._done:
            ref_rng, first = _rng(), self._worker is None
            if not first:
                _set_rng(self._jeat_rng)
            t0 = time.perf_counter()
            self._resume()
            if not self._done:  # it paused after a step (not returned: no step left)
                self.jeat["wall"] += time.perf_counter() - t0
                self.jeat["times"].append(self.jeat["wall"])
            self._jeat_rng = _rng()
            _set_rng(ref_rng)
            if first:  # jeat's Trainer has set the process's allocator: both sides time under it from here
                timing.MALLOC_AT_START[:] = []
                note_malloc()
                note_malloc()
        self._mark = time.perf_counter()

    def finish(self) -> dict:
        """After the reference's script: jeat's loop runs to its end; its result, with its own time."""
        while self._worker is not None and not self._done:
            self._resume()
        if self._worker is not None:
            self._worker.join()
        if self._error is not None:
            raise self._error
        if self._result is None:
            raise RuntimeError("the reference made no optimizer step, so jeat's loop never ran")
        if len(self.ref["times"]) != len(self.jeat["times"]):  # e.g. two optimizer steps per iteration
            raise RuntimeError(f"the reference made {len(self.ref['times'])} optimizer steps for jeat's "
                               f"{len(self.jeat['times'])}: its steps are not one per iteration")  # fmt: skip
        return {**self._result, "times": list(self.jeat["times"]), "wall": self.jeat["wall"]}
