"""The one trainer: data selection and checks, patient-level split, tf.data pipelines, the paper's model,
`model.fit` with checkpointing, TensorBoard logs and resumption, then evaluation of the best model."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from cxr_age.config import Experiment, to_toml
from cxr_age.data.ages import N_GROUPS
from cxr_age.data.image_check import check_images, check_missing
from cxr_age.data.integrity import check_same_split
from cxr_age.data.pipeline import make_dataset
from cxr_age.data.selection import Selection, select
from cxr_age.data.selection_report import log_selection
from cxr_age.data.splits import SPLIT_COLUMNS, SPLITS, assign_splits
from cxr_age.data.store import PreparedStore, matching_store
from cxr_age.distribute import describe, is_chief, make_strategy, run_folder_suffix
from cxr_age.errors import CxrAgeError
from cxr_age.evaluation import evaluate
from cxr_age.models import build_model, compile_model
from cxr_age.run_dir import run_lock, training_run_dir, write_atomic, write_csv, write_text
from cxr_age.run_files import BACKUP, CONFIG, HISTORY, MODEL, REMOVED, SKIPPED, TENSORBOARD, split_file

log = logging.getLogger(__name__)


def class_weights(groups: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weight per age group, averaging 1 over the training images; 1 for absent groups."""
    counts = np.bincount(groups, minlength=N_GROUPS)
    present = counts > 0
    weights = np.ones(N_GROUPS)
    weights[present] = len(groups) / (present.sum() * counts[present])
    return {g: float(w) for g, w in enumerate(weights)}


def inference_copy(model: keras.Model) -> keras.Model:
    """The same network (shared layers and weights) as an uncompiled model: saved, it holds the architecture
    and weights without the optimizer's state, a third of a compiled DenseNet's file under Adam."""
    return keras.Model(model.input, model.output, name=model.name)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keep the model of the lowest validation loss in `path` for inference (no optimizer state; resuming
    reads Keras's backup instead), written under a temporary name and renamed, so a run killed while saving
    never leaves half a model. On resume the best loss so far is read back from `history`, so an epoch after
    the restart replaces the model only if it beats every epoch before it."""

    def __init__(self, path: Path, history: Path) -> None:
        super().__init__()
        self.path = path
        self.history = history
        self.best = float("inf")

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.path.is_file() and self.history.is_file() and self.history.stat().st_size:
            losses = pd.read_csv(self.history)["val_loss"]
            self.best = float(losses.min()) if len(losses) else float("inf")

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        current = (logs or {}).get("val_loss")
        if current is not None and current < self.best:
            self.best = float(current)
            write_atomic(self.path, lambda temporary: inference_copy(self.model).save(temporary))


def _callbacks(run_dir: Path, patience: int) -> list[keras.callbacks.Callback]:
    return [
        # Two generations of the backup: a run killed while writing one resumes from the other.
        keras.callbacks.BackupAndRestore(str(run_dir / BACKUP), double_checkpoint=True),
        BestModelCheckpoint(run_dir / MODEL, run_dir / HISTORY),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 3)),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
        keras.callbacks.TensorBoard(str(run_dir / TENSORBOARD), write_graph=False),
    ]


def prepare_data(config: Experiment, run_dir: Path, selection: Selection | None = None,
                 ) -> tuple[Selection, dict[str, pd.DataFrame], PreparedStore | None]:
    """Select (unless `selection` is given), check every image (from a matching prepared store's record when
    there is one), split by patient (the same split as before when resuming) and write the split and skip
    lists into the run."""
    data = config.data
    selection = check_missing(selection or select(data), bool(data.skip_missing))
    store = matching_store(selection.frame["path"], data.image_size)
    if store is not None:
        log.info("reading prepared images from %s", store.folder)
    selection = check_images(selection, bool(data.skip_missing), bool(data.skip_unreadable), store=store)
    write_csv(selection.skipped, run_dir / SKIPPED)
    write_csv(selection.removed, run_dir / REMOVED)
    frame = assign_splits(selection.frame, data.seed, data.nih_lists)
    check_same_split(run_dir, frame)
    parts = {name: frame.loc[frame["split"] == name, SPLIT_COLUMNS] for name in SPLITS}
    for name, part in parts.items():
        if part.empty:
            raise CxrAgeError(f"the {name} split is empty: {len(frame)} images are too few to split by patient")
        write_csv(part, split_file(run_dir, name))
    return selection, parts, store


def train(experiment: Experiment, out: str | Path | None = None, *,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          strategy: tf.distribute.Strategy | None = None) -> Path | None:
    """Train an experiment into a run folder, resuming it if it was interrupted, and evaluate its best model.

    The table is read and checked before any folder is made. The run's lock is held throughout, so no second
    process trains into the same folder. Progress is logged to the `cxr_age` logger.

    Args:
        experiment: the resolved settings (`Experiment.load(...)`).
        out: a new or empty folder, or an interrupted run of the same settings. Default: a folder under
            `runs/` named after the task, the experiment and a hash of the settings, so that the same call
            finds its interrupted run again; a finished run is never overwritten.
        callbacks: extra Keras callbacks.
        strategy: the `tf.distribute` strategy of `experiment.train.strategy`, if the caller made it already
            (a multi-worker strategy must be made before any other TensorFlow work).

    Returns:
        The run folder (load it with `AgeModel.load`), or None on a non-chief worker of a multi-worker run,
        which trains its share into `<out>-worker<i>` while the chief writes the run.

    Examples:
        >>> experiment = cxr_age.Experiment.load("demo", task="regress", epochs=1)
        >>> run = cxr_age.train(experiment, "runs/first-try")
    """
    selection = select(experiment.data)  # a bad table stops here, before a run folder exists
    log_selection(selection, experiment.data, log)
    name = experiment.train.strategy
    suffix = run_folder_suffix(name)
    strategy = strategy or make_strategy(name)
    placement = describe(strategy, name, experiment.train.batch_size)
    stem = f"{experiment.train.task}-{experiment.name}{suffix}"
    run_dir, resumed = training_run_dir(f"{Path(out)}{suffix}" if out else None, stem, to_toml(experiment))
    settings = experiment.train
    log.info("%s %s: %s, loss %s, %d px, %d epochs, batch %d", "resuming" if resumed else "run", run_dir,
             settings.backbone, settings.loss, experiment.data.image_size, settings.epochs, settings.batch_size)
    log.info(placement)
    with run_lock(run_dir):
        finished = _train(experiment, run_dir, callbacks, strategy, selection)
    return run_dir if finished else None


def _train(config: Experiment, run_dir: Path, extra_callbacks: Sequence[keras.callbacks.Callback],
           strategy: tf.distribute.Strategy, selection: Selection) -> bool:
    """Train into `run_dir` and, on the chief, evaluate; False on a non-chief worker."""
    settings = config.train
    write_text(to_toml(config), run_dir / CONFIG)
    keras.utils.set_random_seed(config.data.seed)
    _, parts, store = prepare_data(config, run_dir, selection)
    common = dict(age_scale=settings.age_scale, seed=config.data.seed, store=store)
    train_data = make_dataset(parts["train"], settings.task, config.data.image_size, settings.batch_size,
                              shuffle=True, augment=config.data.augment, **common)
    val_data = make_dataset(parts["val"], settings.task, config.data.image_size, settings.batch_size, **common)
    with strategy.scope():
        model = build_model(settings.task, settings.backbone, config.data.image_size, settings.weights,
                            settings.bn_momentum, bool(settings.mixed_precision),
                            synchronized_bn=strategy.num_replicas_in_sync > 1)
        compile_model(model, config)
    weights = class_weights(parts["train"]["group"].to_numpy()) if settings.class_weights else None
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=settings.epochs,
        class_weight=weights,
        shuffle=False,  # the dataset shuffles itself (seeded, every epoch); Keras cannot shuffle a tf.data input
        callbacks=_callbacks(run_dir, settings.patience) + list(extra_callbacks),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if not is_chief(settings.strategy):
        return False
    evaluate(run_dir)
    return True
