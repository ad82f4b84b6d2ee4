"""The tf.data input pipeline: image files to `(image, target)` batches.

Files are decoded and resized by `cxr_age.io.decode` in parallel; targets are given (a task's
`targets`, `cxr_age.tasks`). Augmentation is off by default: the paper names none. With a prepared store
(`cxr_age.io.store`) the same images are read back from uint8 shards instead of being decoded again.
"""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from cxr_age.io.decode import AUTOTUNE, load_image
from cxr_age.io.feed import Feed
from cxr_age.io.store import PreparedStore


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


def make_dataset(frame: pd.DataFrame, targets: np.ndarray, image_size: int, batch_size: int,
                 feed: Feed = Feed(), store: PreparedStore | None = None) -> tf.data.Dataset:
    """Batches of `(image, target)` from the `path` column and the matching `targets` (a task's, e.g.
    `REGRESS.targets(frame)`): order as `feed` says, then either parallel decode of the files or, with a
    prepared `store` of this size, batched reads of its rows; batch, optional augmentation, prefetch.

    Examples:
        >>> data = make_dataset(frame, REGRESS.targets(frame), 64, 16, Feed(shuffle=True))
    """
    if store is not None:
        store.require_size(image_size)
    sources = store.ids(frame["path"]) if store is not None else frame["path"].to_numpy(dtype=str)
    data = tf.data.Dataset.from_tensor_slices((sources, targets))
    if feed.shuffle:
        data = data.shuffle(len(frame), seed=feed.seed, reshuffle_each_iteration=True)
    if store is None:
        data = data.map(lambda path, target: (load_image(path, image_size), target), num_parallel_calls=AUTOTUNE)
        data = data.batch(batch_size)
    else:
        data = data.batch(batch_size).map(lambda ids, target: (_store_images(store, ids), target),
                                          num_parallel_calls=AUTOTUNE)
    if feed.augment:
        jitter = augmenter(feed.seed)
        data = data.map(lambda x, target: (jitter(x, training=True), target), num_parallel_calls=AUTOTUNE)
    # Under a multi-worker strategy every worker makes the same global batches (same seed) and keeps its
    # share of each: the batches of one device, whatever the number of workers.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return data.with_options(options).prefetch(AUTOTUNE)
