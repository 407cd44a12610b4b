"""Scalar tracking of training runs (loss, learning rate, dev metrics) for TensorBoard.

The trainer calls `scalars` and `close` on a tracker: `TensorBoardTracker` writes event
files, `NullTracker` records nothing, which keeps tracking switchable without branches in
the training loop.
"""

from __future__ import annotations

from pathlib import Path


class NullTracker:
    """Records nothing (tracking switched off)."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        pass

    def close(self) -> None:
        pass


class TensorBoardTracker(NullTracker):
    """Writes scalars as TensorBoard event files under `log_dir`."""

    def __init__(self, log_dir: Path):
        from torch.utils.tensorboard import SummaryWriter  # imported lazily: slow, and only needed when on

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)

    def close(self) -> None:
        self.writer.close()
