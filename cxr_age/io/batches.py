"""What a reader of image files yields, whichever decoder it uses (`cxr_age.io.reader` through `tf.data`,
`cxr_age.io.plain_images` through OpenCV)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class ReadBatch:
    """The images read from one stretch of the file list, their positions in it, and the files of that stretch
    that could not be read, with why."""

    indices: list[int]
    images: np.ndarray
    skipped: list[tuple[int, str]] = field(default_factory=list)
