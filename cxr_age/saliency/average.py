"""Average saliency maps of an age group, as in the paper's figure: the mean of the per-image maps over the
group's images, kept as a running sum so that memory does not grow with the number of images. The maps are
also averaged separately over correctly and wrongly predicted images (the paper's abstract)."""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import numpy as np
import pandas as pd
from tqdm import tqdm

from cxr_age.config import Experiment
from cxr_age.io.pipeline import make_dataset
from cxr_age.io.store import PreparedStore, matching_store
from cxr_age.saliency.methods import SaliencyMaps
from cxr_age.tasks import Task

SUBSETS = ("all", "correct", "wrong")


@dataclass
class RunningMean:
    """The mean of the arrays added so far, from a float64 sum and a count."""

    total: np.ndarray | None = None
    count: int = 0

    def add(self, batch: np.ndarray) -> None:
        """Add a batch `[n, ...]` of arrays."""
        if len(batch) == 0:
            return
        summed = batch.sum(axis=0, dtype=np.float64)
        self.total = summed if self.total is None else self.total + summed
        self.count += len(batch)

    def mean(self) -> np.ndarray | None:
        return None if self.total is None else (self.total / self.count).astype(np.float32)


@dataclass
class GroupMaps:
    """One age group's average maps (per subset), average image, and per-image predictions."""

    label: str
    maps: dict[str, RunningMean] = field(default_factory=lambda: {name: RunningMean() for name in SUBSETS})
    image: RunningMean = field(default_factory=RunningMean)
    empty_maps: int = 0
    rows: list[pd.DataFrame] = field(default_factory=list)

    def count(self, subset: str = "all") -> int:
        return self.maps[subset].count

    def images(self) -> pd.DataFrame:
        return pd.concat(self.rows, ignore_index=True) if self.rows else pd.DataFrame()


def correct_predictions(outputs: np.ndarray, batch: pd.DataFrame, task: Task, age_scale: float,
                        tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    """The prediction per image (age in years, or group label) and whether it is correct: within
    `tolerance` years of the true age (regressor) or the true group (classifier)."""
    predicted = task.decode(outputs, age_scale)
    return predicted, task.correct(predicted, batch, tolerance)


@dataclass(frozen=True)
class Averaging:
    """How a group's maps are averaged: images per batch, the tolerance in years within which a regressor's
    prediction counts as correct, whether a progress bar shows, and the prepared store to read (None: a
    matching store, else the files)."""

    batch_size: int = 8
    tolerance: float = 5.0
    progress: bool = True
    store: PreparedStore | None = None


def average_group(maps: SaliencyMaps, model: keras.Model, frame: pd.DataFrame, config: Experiment, label: str,
                  how: Averaging = Averaging()) -> GroupMaps:
    """Predict and map every image of `frame` (one age group) in batches, accumulating running means; images
    come from `how.store` if given (one store opened for all groups), else from a matching store or the
    files."""
    task = config.task
    result = GroupMaps(label)
    store = how.store or matching_store(frame["path"], config.data.image_size)
    data = make_dataset(frame, task.targets(frame, config.train.age_scale), config.data.image_size, how.batch_size,
                        store=store)
    start = 0
    with tqdm(total=len(frame), desc=f"{label} {maps.settings.method}", unit="image", disable=not how.progress,
              leave=False) as bar:
        for images, _ in data:
            batch = frame.iloc[start:start + len(images)]
            start += len(images)
            outputs = model(images, training=False).numpy()
            predicted, correct = correct_predictions(outputs, batch, task, config.train.age_scale, how.tolerance)
            group_maps = maps(images, batch["group"].to_numpy())
            result.empty_maps += int((group_maps.max(axis=(1, 2)) == 0).sum())
            result.maps["all"].add(group_maps)
            result.maps["correct"].add(group_maps[correct])
            result.maps["wrong"].add(group_maps[~correct])
            result.image.add(images.numpy()[..., 0])
            result.rows.append(batch[["image", "patient_id", "age"]].assign(
                group=label, predicted=predicted, correct=correct))
            bar.update(len(images))
    return result
