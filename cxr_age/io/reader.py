"""Reading a list of image files for prediction through the training pipeline's parallel `tf.data` path:
decode and resize in parallel (`cxr_age.io.decode`), batch, prefetch, so that the next batch is read while
the network computes the current one. DICOM files are decoded by `cxr_age.io.dicom` inside the same
parallel map (`tf.numpy_function`), with the same grayscale pipeline and chest check as one at a time.

A file that fails is dropped by the pipeline (`ignore_errors`) and found by the gap it leaves in the indices
that come out; its reason comes from reading it once more on its own, so every skip is named. Order is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from cxr_age.errors import CxrAgeError
from cxr_age.io.batches import ReadBatch
from cxr_age.io.decode import AUTOTUNE, image_from_array, load_image, read_image, resize_square
from cxr_age.io.dicom import is_dicom, read_dicom

__all__ = ["ReadBatch", "failure", "image_from_array", "read_batches"]  # the Keras engine's decoder


def _dicom_pixels(path: bytes, any_dicom: bool) -> np.ndarray:
    return read_dicom(Path(path.decode()), bool(any_dicom))


def _loader(dicom: list[bool], image_size: int, any_dicom: bool) -> Callable:
    """The map function for these files: PNG-family decoding, DICOM decoding, or a choice per file when the
    list mixes them (a `tf.cond` whose two branches are traced only then). Not converted by AutoGraph, whose
    rewriting of the source costs half a second at the start of every command and changes nothing here."""
    def from_dicom(path: tf.Tensor) -> tf.Tensor:
        gray = tf.numpy_function(_dicom_pixels, [path, any_dicom], tf.float32, stateful=False)
        return resize_square(tf.ensure_shape(gray, [None, None])[..., None], image_size)

    def from_image(path: tf.Tensor) -> tf.Tensor:
        return load_image(path, image_size)

    def image_only(index: tf.Tensor, path: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, from_image(path)

    def dicom_only(index: tf.Tensor, path: tf.Tensor, _: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, from_dicom(path)

    def mixed(index: tf.Tensor, path: tf.Tensor, is_dicom_file: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return index, tf.cond(is_dicom_file, lambda: from_dicom(path), lambda: from_image(path))

    load = dicom_only if all(dicom) else image_only if not any(dicom) else mixed
    return tf.autograph.experimental.do_not_convert(load)


# TensorFlow prefixes an op's error with the op and device, `{{function_node __wrapped__DecodeImage_...}} `.
OP_CONTEXT = re.compile(r"^\{\{[^}]*\}\}\s*")


def failure(path: Path, image_size: int, any_dicom: bool) -> str:
    """Why `path` cannot be read, from reading it once more on its own (the message without the path)."""
    try:
        read_image(path, image_size, any_dicom)
    except CxrAgeError as err:
        return OP_CONTEXT.sub("", str(err).removeprefix(f"{path}: "))
    except Exception as err:  # noqa: BLE001 - whatever one file does, it is that file's skip
        lines = OP_CONTEXT.sub("", str(err).strip()).splitlines()
        return f"{type(err).__name__}: {lines[0] if lines else 'no message'}"
    return "could not be read in the pipeline"


def _limited(data: tf.data.Dataset, threads: int | None) -> tf.data.Dataset:
    """The pipeline on a private pool of `threads` threads, each op on one thread (None: TensorFlow's shared
    pools, as many threads as cores), so that reading leaves the other cores to whatever else runs."""
    if threads is None:
        return data
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    options.threading.max_intra_op_parallelism = 1
    return data.with_options(options)


def read_batches(files: Sequence[Path], image_size: int, batch_size: int, any_dicom: bool = False,
                 threads: int | None = None) -> Iterator[ReadBatch]:
    """The files as float32 `[n, image_size, image_size, 1]` batches in [0, 1], in order, read in parallel
    (on at most `threads` threads if given); each batch also names the files skipped since the previous one
    (see the module notes)."""
    if not files:
        return
    dicom = [is_dicom(path) for path in files]
    data = tf.data.Dataset.from_tensor_slices((np.arange(len(files)), [str(path) for path in files], dicom))
    data = data.map(_loader(dicom, image_size, any_dicom), num_parallel_calls=AUTOTUNE, deterministic=True)
    data = _limited(data.ignore_errors().batch(batch_size).prefetch(AUTOTUNE), threads)
    expected = 0
    for indices, images in data:
        indices = indices.numpy().tolist()
        gaps = [*range(expected, indices[0]), *sorted(set(range(indices[0], indices[-1])) - set(indices))]
        expected = indices[-1] + 1
        yield ReadBatch(indices, images.numpy(), [(i, failure(files[i], image_size, any_dicom)) for i in gaps])
    if expected < len(files):
        yield ReadBatch([], np.zeros((0, image_size, image_size, 1), np.float32),
                        [(i, failure(files[i], image_size, any_dicom)) for i in range(expected, len(files))])
