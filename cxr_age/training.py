"""The one trainer: data selection and checks, patient-level split, tf.data pipelines, the paper's model,
`model.fit` with checkpointing and resumption, then evaluation of the best model."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxr_age.config import ExperimentConfig, to_toml
from cxr_age.data.ages import N_GROUPS
from cxr_age.data.image_check import check_images, check_missing
from cxr_age.data.integrity import check_same_split
from cxr_age.data.pipeline import make_dataset
from cxr_age.data.selection import Selection, select
from cxr_age.data.splits import SPLIT_COLUMNS, SPLITS, assign_splits
from cxr_age.data.store import PreparedStore, matching_store
from cxr_age.distribute import is_chief, make_strategy
from cxr_age.errors import CxrAgeError
from cxr_age.evaluation import evaluate_run
from cxr_age.losses import YearsMAE, r2_loss
from cxr_age.models import build_model
from cxr_age.quiet_tf import keras, tf
from cxr_age.run_dir import run_lock, write_atomic, write_csv, write_text


def class_weights(groups: np.ndarray) -> dict[int, float]:
    """Inverse-frequency weight per age group, averaging 1 over the training images; 1 for absent groups."""
    counts = np.bincount(groups, minlength=N_GROUPS)
    present = counts > 0
    weights = np.ones(N_GROUPS)
    weights[present] = len(groups) / (present.sum() * counts[present])
    return {g: float(w) for g, w in enumerate(weights)}


def compile_model(model: keras.Model, config: ExperimentConfig, run_eagerly: bool = False) -> None:
    """Adam, the configured loss, and metrics in the units a reader wants (years; AUC and accuracy).
    `run_eagerly` skips graph tracing: slower steps, but no minute-long trace for a single step."""
    settings = config.train
    if settings.task == "regress":
        loss = {"mse": "mean_squared_error", "r2": r2_loss}[settings.loss]
        metrics = [YearsMAE(settings.age_scale), keras.metrics.R2Score(name="r2")]
    else:
        loss = "categorical_crossentropy"
        metrics = ["categorical_accuracy", keras.metrics.AUC(multi_label=True, num_labels=N_GROUPS, name="auc")]
    model.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), loss=loss, metrics=metrics,
                  run_eagerly=run_eagerly, jit_compile="auto" if settings.jit_compile is None else settings.jit_compile)


class BestModelCheckpoint(keras.callbacks.Callback):
    """Keep the model of the lowest validation loss in `path`, written under a temporary name and renamed, so
    a run killed while saving never leaves half a model. On resume the best loss so far is read back from
    `history`, so an epoch after the restart replaces the model only if it beats every epoch before it."""

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
            write_atomic(self.path, lambda temporary: self.model.save(temporary))


def _callbacks(run_dir: Path, patience: int) -> list[keras.callbacks.Callback]:
    return [
        # Two generations of the backup: a run killed while writing one resumes from the other.
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
        BestModelCheckpoint(run_dir / "model.keras", run_dir / "history.csv"),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 3)),
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
    ]


def prepare_data(config: ExperimentConfig,
                 run_dir: Path) -> tuple[Selection, dict[str, pd.DataFrame], PreparedStore | None]:
    """Select, check every image (from a matching prepared store's record when there is one), split by
    patient (the same split as before when resuming) and write the split and skip lists into the run."""
    data = config.data
    selection = check_missing(select(data), bool(data.skip_missing))
    store = matching_store(selection.frame["path"], data.image_size)
    if store is not None:
        print(f"reading prepared images from {store.folder}")
    selection = check_images(selection, bool(data.skip_missing), bool(data.skip_unreadable), store=store)
    write_csv(selection.skipped, run_dir / "skipped.csv")
    frame = assign_splits(selection.frame, data.seed, data.nih_lists)
    check_same_split(run_dir, frame)
    parts = {name: frame.loc[frame["split"] == name, SPLIT_COLUMNS] for name in SPLITS}
    for name, part in parts.items():
        if part.empty:
            raise CxrAgeError(f"the {name} split is empty: {len(frame)} images are too few to split by patient")
        write_csv(part, run_dir / f"{name}.csv")
    return selection, parts, store


def train(config: ExperimentConfig, run_dir: Path, extra_callbacks: Sequence[keras.callbacks.Callback] = (),
          strategy: tf.distribute.Strategy | None = None) -> dict | None:
    """Train as configured into `run_dir` (resuming from its backup if one is there) and evaluate, holding
    the run's lock throughout so that no second process trains into the same folder. `strategy`: the one of
    `config.train.strategy`, made by the caller at start-up (made here if not given). Returns the metrics,
    or None on a non-chief worker of a multi-worker run (the chief evaluates)."""
    with run_lock(run_dir):
        return _train(config, run_dir, extra_callbacks, strategy or make_strategy(config.train.strategy))


def _train(config: ExperimentConfig, run_dir: Path, extra_callbacks: Sequence[keras.callbacks.Callback],
           strategy: tf.distribute.Strategy) -> dict | None:
    settings = config.train
    write_text(to_toml(config), run_dir / "config.toml")
    keras.utils.set_random_seed(config.data.seed)
    _, parts, store = prepare_data(config, run_dir)
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
    return evaluate_run(run_dir) if is_chief(settings.strategy) else None
