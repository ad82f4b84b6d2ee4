"""What the two image decoders share (`cxr_age.io.decode` and `cxr_age.io.reader` through TensorFlow,
`cxr_age.io.plain_images` through NumPy and OpenCV): the batches a reader of files yields, and which arrays
in memory count as an image."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cxr_age.errors import CxrAgeError


@dataclass
class ReadBatch:
    """The images read from one stretch of the file list, their positions in it, and the files of that stretch
    that could not be read, with why."""

    indices: list[int]
    images: np.ndarray
    skipped: list[tuple[int, str]] = field(default_factory=list)


def image_array(array: np.ndarray) -> np.ndarray:
    """An image held in memory as `[height, width, 1|3|4]`: `uint8`, `uint16`, or float in [0, 1]; a
    CxrAgeError saying what is wrong otherwise."""
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise CxrAgeError(f"an image array must be [height, width] or [height, width, 1|3|4]; got {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        if np.isnan(array).any() or array.min() < 0 or array.max() > 1:
            raise CxrAgeError("a float image array must hold values in [0, 1] (divide by its maximum first)")
    elif array.dtype not in (np.uint8, np.uint16):
        raise CxrAgeError(f"image arrays must be uint8, uint16 or float in [0, 1]; got {array.dtype}")
    return array
