"""Decoding image files, owned by one module: what training, checking, preparing and prediction all read.

Images: PNG, JPEG, BMP or GIF; 8- or 16-bit; grayscale, gray+alpha, RGB or RGBA, all decoded to one
channel. Intensities are divided by the type's maximum (255 or 65535) into [0, 1] and otherwise left as
recorded: the paper names no normalisation, and a fixed scale keeps the exposure differences that carry
information. Images are resized to a square with anti-aliasing (block averages for whole factors, else
anti-aliased bilinear), so that downscaling 1024 px radiographs averages pixels instead of skipping them.
Non-square images are stretched (every NIH image is square). A file that fails gets its reason from
`failure_reason`, the decoder's own first line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from cxr_age.errors import CxrAgeError
from cxr_age.io.batches import image_array
from cxr_age.io.dicom import is_dicom, read_dicom

AUTOTUNE = tf.data.AUTOTUNE


def decode_gray(contents: tf.Tensor) -> tf.Tensor:
    """Encoded image bytes to a float32 `[height, width, 1]` tensor in [0, 1]."""
    return tf.io.decode_image(contents, channels=1, dtype=tf.float32, expand_animations=False)


def decode_error_message(err: Exception) -> str:
    """The first line of a decoder error, without TensorFlow's op suffix."""
    return str(getattr(err, "message", err)).splitlines()[0].split(" [Op:")[0]


def resize_square(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """A `[height, width, 1]` image in [0, 1] to `[image_size, image_size, 1]`, anti-aliased. Shrinking by a
    whole factor (1024 px to 512, 256, 128) averages each block of pixels (area resampling: exact, and twice
    the throughput of the anti-aliased bilinear kernel, which runs on one core inside tf.data); any other
    size uses anti-aliased bilinear filtering, whose wider kernel leaves no beat pattern at fractional factors."""
    size = [image_size, image_size]
    shape = tf.shape(image)[:2]
    whole = tf.reduce_all(shape >= image_size) & tf.reduce_all(shape % image_size == 0)
    image = tf.cond(whole, lambda: tf.image.resize(image, size, method="area"),
                    lambda: tf.image.resize(image, size, method="bilinear", antialias=True))
    return tf.clip_by_value(image, 0.0, 1.0)


def load_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Read, decode and resize one image file to float32 `[image_size, image_size, 1]` in [0, 1]."""
    return resize_square(decode_gray(tf.io.read_file(path)), image_size)


def find_unreadable(paths: list[str], progress: bool = True) -> dict[int, str]:
    """Index -> decoder message for every file in `paths` that cannot be read and decoded."""
    if not paths:
        return {}

    def probe(index: tf.Tensor, path: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, tf.shape(decode_gray(tf.io.read_file(path)))

    data = tf.data.Dataset.from_tensor_slices((list(range(len(paths))), paths))
    data = data.map(probe, num_parallel_calls=AUTOTUNE).ignore_errors().batch(64)
    readable: set[int] = set()
    with tqdm(total=len(paths), desc="checking images", unit="img", disable=None if progress else True) as bar:
        for indices, _ in data:
            readable.update(indices.numpy().tolist())
            bar.update(len(indices))
        bar.update(len(paths) - bar.n)
    return {index: failure_reason(paths[index]) for index in sorted(set(range(len(paths))) - readable)}


def failure_reason(path: str) -> str:
    """Why the training decoder cannot read `path` (decoded again on its own, for the message)."""
    try:
        decode_gray(tf.io.read_file(path))
        return "could not be decoded"
    except (tf.errors.OpError, ValueError) as err:
        return decode_error_message(err)


def image_from_array(array: np.ndarray, image_size: int) -> np.ndarray:
    """One image held in memory as the model's input, float32 `[image_size, image_size, 1]` in [0, 1].
    `uint8` and `uint16` arrays, 2-D gray or `[height, width, 1|3|4]`, are encoded as PNG and decoded by the
    training decoder, so they become exactly what the same pixels in a file become. Float arrays must already
    lie in [0, 1]; colour becomes gray with TensorFlow's luma weights. Then the same anti-aliased resize."""
    array = image_array(array)
    if array.dtype in (np.uint8, np.uint16):
        image = decode_gray(tf.io.encode_png(tf.constant(array)))
    else:
        image = tf.constant(array[..., :3], tf.float32)
        image = tf.image.rgb_to_grayscale(image) if array.shape[-1] > 1 else image
    return resize_square(image, image_size).numpy()


def read_image(path: Path, image_size: int, any_dicom: bool = False) -> np.ndarray:
    """One file (PNG, JPEG, BMP, GIF or DICOM) as the model's input, float32 `[image_size, image_size, 1]` in
    [0, 1]; CxrAgeError naming the file if it cannot be read. A DICOM file must be a frontal chest radiograph
    by its header unless `any_dicom` (`cxr_age.io.dicom`)."""
    if is_dicom(path):
        return resize_square(tf.constant(read_dicom(path, any_dicom)[..., None]), image_size).numpy()
    try:
        return load_image(tf.constant(str(path)), image_size).numpy()
    except (tf.errors.OpError, ValueError) as err:
        raise CxrAgeError(f"{path}: {decode_error_message(err)}") from None
