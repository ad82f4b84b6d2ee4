"""The one entry to batches for training and evaluation: the tf.data pipeline where TensorFlow is
installed (`cxr_age.io.pipeline`: image files or a prepared store), else a prepared store's rows through
`keras.utils.PyDataset` (`cxr_age.io.store_batches`), so the real training command runs on Keras's JAX or
PyTorch backend on a machine that carries no TensorFlow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import keras
import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.feed import Feed
from cxr_age.io.store import PreparedStore
from cxr_age.io.store_batches import AUGMENT_NEEDS_TENSORFLOW, BatchShare, StoreBatches
from cxr_age.runtime import has_tensorflow

if TYPE_CHECKING:
    import tensorflow as tf


def make_batches(frame: pd.DataFrame, targets: np.ndarray, image_size: int, batch_size: int,
                 feed: Feed = Feed(), store: PreparedStore | None = None,
                 share: BatchShare | None = None) -> tf.data.Dataset | StoreBatches:
    """Batches of `(image, target)` of `frame`'s images (float32 `[n, size, size, 1]` in [0, 1]) for
    `model.fit`, `evaluate` or `predict`: a `tf.data.Dataset` with TensorFlow, else a `StoreBatches`, which
    needs a prepared `store` of this size holding every image. With a `share` (several JAX devices or
    processes: `cxr_age.nets.jax_distribution`) always the store's batches, this process's part of each.

    Examples:
        >>> data = make_batches(frame, REGRESS.targets(frame), 256, 64, Feed(shuffle=True), store)
    """
    if has_tensorflow() and share is None:
        from cxr_age.io.pipeline import make_dataset

        return make_dataset(frame, targets, image_size, batch_size, feed, store)
    require_source(store, len(frame), image_size, bool(feed.augment))
    store.require_size(image_size)
    return StoreBatches(store, frame, targets, batch_size, feed, share=share or BatchShare())


def require_source(store: PreparedStore | None, images: int, image_size: int, augment: bool = False) -> None:
    """For a process without TensorFlow, or training on several JAX devices: a one-line error where the batches
    cannot be made, for images that no prepared store holds (nothing else decodes their files for training
    there) or with augmentation."""
    if augment:
        raise CxrAgeError(AUGMENT_NEEDS_TENSORFLOW)
    if store is None:
        raise CxrAgeError(f"without TensorFlow ({keras.backend.backend()} backend) images are read from a prepared "
                          f"store only (as on several JAX devices), and none under prepared/ holds these {images} "
                          f"images at {image_size} px; "
                          "prepare one (cxr-age-data prepare, which decodes with OpenCV here) or copy one here")
