"""What a task puts on top of the backbone, described without Keras, so that a task can say it while
reading settings stays free of TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Head:
    """The output layer a task puts on the backbone: the task's name (the model is `<backbone>_<task>`), the
    layer's name, its units and activation (kept in float32 under mixed precision, for a stable loss)."""

    task: str
    layer: str
    units: int
    activation: str
