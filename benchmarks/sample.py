"""The embedded sample (477 NIH images) read once through the training pipeline and held in memory, for the
benchmarks that time a model rather than its input (`saliency.py`, `train_options.py`)."""

from __future__ import annotations

import numpy as np


def sample_arrays(size: int, count: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The first `count` sample images (all by default) as float32 `[n, size, size, 1]` in [0, 1], and their
    regression targets (age / 90). TensorFlow is imported here, not when the module is."""
    from cxr_age.config import DataConfig
    from cxr_age.io.pipeline import make_dataset
    from cxr_age.io.selection import select
    from cxr_age.tasks import REGRESS

    frame = select(DataConfig(image_size=size)).frame.iloc[:count]
    batches = list(make_dataset(frame, REGRESS.targets(frame), size, 64))
    return np.concatenate([x.numpy() for x, _ in batches]), np.concatenate([y.numpy() for _, y in batches])
