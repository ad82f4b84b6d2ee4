"""The tf.data input pipeline: image files to `(image, target)` batches.

Files are decoded and resized by `cxr_age.data.decode` in parallel; targets come from the task
(`cxr_age.tasks`). Augmentation is off by default: the paper names none. With a prepared store
(`cxr_age.data.store`) the same images are read back from uint8 shards instead of being decoded again.
"""

from __future__ import annotations

import keras
import pandas as pd
import tensorflow as tf

from cxr_age.data.decode import AUTOTUNE, load_image
from cxr_age.data.store import PreparedStore
from cxr_age.errors import CxrAgeError
from cxr_age.tasks import get_task


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
    y = get_task(task).targets(frame, age_scale)
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
