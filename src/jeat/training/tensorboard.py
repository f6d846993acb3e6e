"""Optional TensorBoard logging beside metrics.jsonl (``tensorboard = true``, the default).

Written only when ``torch.utils.tensorboard`` imports (the ``tensorboard`` package is installed);
otherwise nothing happens and metrics.jsonl stays the record. Step metrics go under ``train/``,
epoch metrics under ``epoch/``, guard events as text. On resume the writer purges events logged
after the checkpoint's step, as ``RunDir.truncate_log`` does for the JSONL log.
"""

from __future__ import annotations

import math
from pathlib import Path


def open_sink(run_path: Path, purge_step: int | None = None) -> TensorBoardSink | None:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the tensorboard package is optional
        return None
    return TensorBoardSink(SummaryWriter(str(run_path / "tensorboard"), purge_step=purge_step))


class TensorBoardSink:
    def __init__(self, writer):
        self.writer = writer

    def log(self, record: dict) -> None:
        kind, step = record.get("kind"), record.get("step")
        if step is None:
            return
        if kind == "guard":
            text = f"{record.get('reason')}: {record.get('quantity')} = {record.get('value')} -> {record.get('action')}"
            self.writer.add_text("guard", text, step)
            return
        prefix = {"step": "train", "epoch": "epoch"}.get(kind)
        if prefix is None:
            return
        for key, value in record.items():
            if key in ("kind", "step", "epoch") or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            if math.isfinite(value):
                self.writer.add_scalar(f"{prefix}/{key}", value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
