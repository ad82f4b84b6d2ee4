"""The training decoder's images without TensorFlow, for engines that run without it (ONNX Runtime): the
same files, intensities and resize as `cxr_age.io.decode`, in NumPy and OpenCV (and pydicom for DICOM).

What matches and what may not, measured in `tests/test_bundle.py` and the benchmarks:

- 8- and 16-bit grayscale PNG, and colour PNG whose channels are equal (NIH's RGBA files): the same values.
- JPEG: OpenCV and TensorFlow both take libjpeg's own grayscale output; the libjpeg builds can differ by one
  grey level in a few pixels.
- Colour images with unequal channels: OpenCV's luma weights (0.299, 0.587, 0.114), which TensorFlow's PNG
  decoder may round differently by one grey level.
- Resizing: block averages for whole factors (TensorFlow's `area`), else the anti-aliased triangle filter of
  `tf.image.resize(..., "bilinear", antialias=True)` (its `scale_and_translate` with half-pixel centres),
  both in float64 and then float32, so they agree to rounding.
- GIF is not read (OpenCV has no GIF decoder in every build): such a file is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from cxr_age.errors import CxrAgeError
from cxr_age.io.batches import ReadBatch, image_array
from cxr_age.io.dicom import is_dicom, read_dicom

JPEG_MAGIC = b"\xff\xd8"


def _gray(image: np.ndarray) -> np.ndarray:
    """OpenCV's decoded array (gray, BGR or BGRA; 8 or 16 bit) as one channel in [0, 1]."""
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    if image.ndim == 3:
        colour = image[..., :3]
        if (colour == colour[..., :1]).all():
            image = colour[..., 0]
        else:
            image = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    return image.astype(np.float32) / np.float32(scale)


def decode_file(path: Path) -> np.ndarray:
    """An image file (PNG, JPEG, BMP) as float32 `[height, width]` in [0, 1]; a CxrAgeError naming why not."""
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise CxrAgeError(f"{path}: the file is empty")
    flags = cv2.IMREAD_GRAYSCALE if bytes(data[:2]) == JPEG_MAGIC else cv2.IMREAD_UNCHANGED
    image = cv2.imdecode(data, flags)
    if image is None:
        raise CxrAgeError(f"{path}: not an image OpenCV can decode (PNG, JPEG or BMP)")
    return _gray(image)


def _triangle_weights(size_in: int, size_out: int) -> np.ndarray:
    """`[size_out, size_in]` weights of TensorFlow's anti-aliased bilinear resize along one axis: a triangle
    kernel widened by the scale when shrinking, half-pixel centres, taps outside the image left out and the
    rest renormalised."""
    scale = size_in / size_out
    width = max(scale, 1.0)
    centres = (np.arange(size_out) + 0.5) * scale
    sources = np.arange(size_in) + 0.5
    weights = np.clip(1.0 - np.abs(sources[None, :] - centres[:, None]) / width, 0.0, None)
    return weights / weights.sum(axis=1, keepdims=True)


def resize_square(image: np.ndarray, image_size: int) -> np.ndarray:
    """`[height, width]` in [0, 1] to `[image_size, image_size]`, as `cxr_age.io.decode.resize_square` does:
    block averages when both sides are whole multiples of the size, else the anti-aliased triangle filter."""
    height, width = image.shape
    values = image.astype(np.float64)
    if height >= image_size and width >= image_size and height % image_size == 0 and width % image_size == 0:
        blocks = values.reshape(image_size, height // image_size, image_size, width // image_size)
        resized = blocks.mean(axis=(1, 3))
    else:
        resized = _triangle_weights(height, image_size) @ values @ _triangle_weights(width, image_size).T
    return np.clip(resized, 0.0, 1.0).astype(np.float32)


def read_image(path: Path, image_size: int, any_dicom: bool = False) -> np.ndarray:
    """One file (PNG, JPEG, BMP or DICOM) as the model's input, float32 `[image_size, image_size, 1]`."""
    path = Path(path)
    gray = read_dicom(path, any_dicom) if is_dicom(path) else decode_file(path)
    return resize_square(gray, image_size)[..., None]


def image_from_array(array: np.ndarray, image_size: int) -> np.ndarray:
    """An image held in memory (`uint8`, `uint16`, or float in [0, 1]; `[h, w]` or `[h, w, 1|3|4]` in RGB
    order) as the model's input."""
    array = image_array(array)
    if array.dtype in (np.uint8, np.uint16):
        gray = _gray(array[..., 0] if array.shape[-1] == 1 else array[..., 2::-1])  # RGB(A) as OpenCV's BGR
    else:
        rgb = array[..., :3].astype(np.float32)
        gray = rgb[..., 0] if rgb.shape[-1] == 1 else rgb @ np.array([0.2989, 0.587, 0.114], np.float32)
    return resize_square(gray, image_size)[..., None]


def _read_or_reason(path: Path, image_size: int, any_dicom: bool) -> np.ndarray | str:
    try:
        return read_image(path, image_size, any_dicom)
    except CxrAgeError as err:
        return str(err).removeprefix(f"{path}: ")
    except Exception as err:  # noqa: BLE001 - whatever one file does, it is that file's skip
        lines = str(err).strip().splitlines()
        return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"


def read_batches(files: Sequence[Path], image_size: int, batch_size: int, any_dicom: bool = False,
                 threads: int | None = None) -> Iterator[ReadBatch]:
    """The files as float32 batches in order, decoded on a pool of `threads` threads (None: one per core),
    a batch ahead of the caller; each batch names the files of its stretch that could not be read."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        def stretch(start: int):
            chunk = files[start:start + batch_size]
            return start, pool.map(lambda path: _read_or_reason(Path(path), image_size, any_dicom), chunk)

        pending = [stretch(start) for start in range(0, len(files), batch_size)[:2]]
        next_start = 2 * batch_size
        while pending:
            start, results = pending.pop(0)
            if next_start < len(files):
                pending.append(stretch(next_start))
                next_start += batch_size
            results = list(results)
            indices = [start + i for i, result in enumerate(results) if not isinstance(result, str)]
            images = [result for result in results if not isinstance(result, str)]
            skipped = [(start + i, result) for i, result in enumerate(results) if isinstance(result, str)]
            yield ReadBatch(indices, np.stack(images) if images else
                            np.zeros((0, image_size, image_size, 1), np.float32), skipped)
