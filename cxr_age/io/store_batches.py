"""`(image, target)` batches of a prepared store (`cxr_age.io.store`) assembled in NumPy, as a
`keras.utils.PyDataset`: what feeds a network on any Keras backend, TensorFlow installed or not.

Each batch is the store's uint8 rows read with `os.pread` and scaled to float32 in [0, 1] the way the tf.data
pipeline scales them (`cxr_age.io.pipeline`), so both loaders give the same pixels. Batches are read ahead
by worker threads (reading and casting release the GIL). A shuffled feed draws a fresh order every epoch from
`(seed, epoch)`; Keras stops the readers before `on_epoch_end`, so no batch mixes two orders.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
import numpy as np
import pandas as pd

from cxr_age.errors import CxrAgeError
from cxr_age.io.feed import Feed
from cxr_age.io.store import PreparedStore

AUGMENT_NEEDS_TENSORFLOW = "`augment` runs in the tf.data pipeline; without TensorFlow, train without it"


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class BatchShare:
    """This process's share of every global batch when several devices or processes train together: each
    batch is cut to a multiple of `devices` (all processes' devices: a sharded batch must divide among them),
    then process `process` of `processes` takes its contiguous part, so that the parts of all processes put
    side by side are the global batch, in order. The images a cut leaves out (fewer than `devices` per
    epoch, in the last batch) come at other places of later epochs' shuffled orders."""

    process: int = 0
    processes: int = 1
    devices: int = 1


class StoreBatches(keras.utils.PyDataset):
    """Batches of the images of `frame["path"]` from `store` with `targets` (a task's, e.g.
    `REGRESS.targets(frame)`), in order or shuffled as `feed` says. Augmentation is tf.data's alone.

    Examples:
        >>> batches = StoreBatches(store, frame, REGRESS.targets(frame), 64, Feed(shuffle=True))
        >>> images, targets = batches[0]   # float32 [64, size, size, 1], float32 [64]
    """

    def __init__(self, store: PreparedStore, frame: pd.DataFrame, targets: np.ndarray, batch_size: int,
                 feed: Feed = Feed(), workers: int | None = None, share: BatchShare = BatchShare()) -> None:
        if feed.augment:
            raise CxrAgeError(AUGMENT_NEEDS_TENSORFLOW)
        super().__init__(workers=workers or _default_workers(), use_multiprocessing=False)
        self.store = store
        self.rows = store.ids(frame["path"])
        self.targets = np.asarray(targets)
        self.batch_size = batch_size
        self.feed = feed
        self.share = share
        self.epoch = 0
        self.order = self._order()

    def _order(self) -> np.ndarray:
        if not self.feed.shuffle:
            return np.arange(len(self.rows))
        return np.random.default_rng([self.feed.seed, self.epoch]).permutation(len(self.rows))

    @property
    def left_out(self) -> int:
        """Images per epoch that the last batch's cut to a multiple of the devices leaves out."""
        return len(self.rows) % self.batch_size % self.share.devices

    def __len__(self) -> int:
        return -(-(len(self.rows) - self.left_out) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        picked = self.order[index * self.batch_size:(index + 1) * self.batch_size]
        picked = picked[:len(picked) - len(picked) % self.share.devices]
        part = len(picked) // self.share.processes
        picked = picked[self.share.process * part:(self.share.process + 1) * part]
        images = self.store.read(self.rows[picked]).astype(np.float32) / np.float32(255.0)
        return images[..., None], self.targets[picked]

    def on_epoch_end(self) -> None:
        self.epoch += 1
        self.order = self._order()
