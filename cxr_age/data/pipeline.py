"""The tf.data input pipeline: image files to `(image, target)` batches.

Images: PNG, JPEG, BMP or GIF; 8- or 16-bit; grayscale, gray+alpha, RGB or RGBA, all decoded to one
channel. Intensities are divided by the type's maximum (255 or 65535) into [0, 1] and otherwise left as
recorded: the paper names no normalisation, and a fixed scale keeps the exposure differences that carry
information. Images are resized to a square of `image_size` with anti-aliasing (block averages for whole
factors, else anti-aliased bilinear), so that downscaling 1024 px radiographs averages pixels instead of
skipping them. Non-square images are stretched
(every NIH image is square). Augmentation is off by default: the paper names none. With a prepared store
(`cxr_age.data.store`) the same images are read back from uint8 shards instead of being decoded again.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxr_age.data.ages import N_GROUPS, NO_GROUP
from cxr_age.data.store import PreparedStore
from cxr_age.errors import CxrAgeError
from cxr_age.quiet_tf import keras, tf

TASKS = ("regress", "classify")
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


def targets(frame: pd.DataFrame, task: str, age_scale: float) -> np.ndarray:
    """Regression: age / `age_scale` in [0, 1] (the paper's sigmoid target). Classification: one-hot over the
    nine age groups."""
    if task == "regress":
        return np.clip(frame["age"].to_numpy(np.float32) / np.float32(age_scale), 0.0, 1.0)
    if task == "classify":
        groups = frame["group"].to_numpy()
        if (groups == NO_GROUP).any():
            raise CxrAgeError(
                f"{int((groups == NO_GROUP).sum())} images are older than 90, outside the nine age groups; "
                "classification needs --max-age 90 or lower"
            )
        return np.eye(N_GROUPS, dtype=np.float32)[groups]
    raise CxrAgeError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def augmenter(seed: int) -> keras.Sequential:
    """Light geometric and contrast jitter (small rotation, shift, zoom and contrast change). No flips:
    a mirrored chest puts the heart on the wrong side."""
    return keras.Sequential(
        [
            keras.layers.RandomRotation(0.02, fill_mode="constant", seed=seed),
            keras.layers.RandomTranslation(0.04, 0.04, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom(0.05, fill_mode="constant", seed=seed + 2),
            keras.layers.RandomContrast(0.1, seed=seed + 3),
        ],
        name="augment",
    )


def _store_images(store: PreparedStore, ids: tf.Tensor) -> tf.Tensor:
    """A batch of a prepared store's rows as float32 `[n, size, size, 1]` in [0, 1]."""
    images = tf.numpy_function(store.read, [ids], tf.uint8, stateful=False)
    images = tf.cast(tf.ensure_shape(images, [None, store.image_size, store.image_size]), tf.float32) / 255.0
    return images[..., None]


def make_dataset(
    frame: pd.DataFrame,
    task: str,
    image_size: int,
    batch_size: int,
    *,
    age_scale: float = 90.0,
    shuffle: bool = False,
    augment: bool = False,
    seed: int = 0,
    store: PreparedStore | None = None,
) -> tf.data.Dataset:
    """Batches of `(image, normalised_age)` for `regress` or `(image, one_hot_group)` for `classify` from the
    `path` column: shuffled order (seeded, reshuffled each epoch), then either parallel decode of the files or,
    with a prepared `store` of this size, batched reads of its rows; batch, optional augmentation, prefetch."""
    y = targets(frame, task, age_scale)
    if store is not None and store.image_size != image_size:
        raise CxrAgeError(f"the prepared store {store.folder} holds {store.image_size} px images, not {image_size}")
    sources = store.ids(frame["path"]) if store is not None else frame["path"].to_numpy(dtype=str)
    data = tf.data.Dataset.from_tensor_slices((sources, y))
    if shuffle:
        data = data.shuffle(len(frame), seed=seed, reshuffle_each_iteration=True)
    if store is None:
        data = data.map(lambda path, target: (load_image(path, image_size), target), num_parallel_calls=AUTOTUNE)
        data = data.batch(batch_size)
    else:
        data = data.batch(batch_size).map(lambda ids, target: (_store_images(store, ids), target),
                                          num_parallel_calls=AUTOTUNE)
    if augment:
        jitter = augmenter(seed)
        data = data.map(lambda x, target: (jitter(x, training=True), target), num_parallel_calls=AUTOTUNE)
    # Under a multi-worker strategy every worker makes the same global batches (same seed) and keeps its
    # share of each: the batches of one device, whatever the number of workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options).prefetch(AUTOTUNE)
