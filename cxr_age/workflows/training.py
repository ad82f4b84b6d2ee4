"""The one trainer: data selection and checks, patient-level split, the input batches (tf.data, or a prepared
store through `keras.utils.PyDataset` where TensorFlow is absent), the paper's model, `model.fit` with
checkpointing, TensorBoard logs and resumption, then evaluation of the best model. On Keras's JAX backend the
compiled steps are kept in XLA's persistent cache (`cxr_age.nets.compile_cache`)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import keras
import numpy as np
import pandas as pd

from cxr_age.config import Experiment
from cxr_age.errors import CxrAgeError
from cxr_age.io.ages import N_GROUPS
from cxr_age.io.feed import Feed
from cxr_age.io.files import write_atomic
from cxr_age.io.healthy import healthy_lines, healthy_mask, keep_healthy
from cxr_age.io.image_check import check_images, check_missing
from cxr_age.io.loader import make_batches, require_source
from cxr_age.io.selection import Selection, select
from cxr_age.io.selection_report import log_selection
from cxr_age.io.splits import SPLIT_COLUMNS, SPLITS, assign_splits
from cxr_age.io.store import PreparedStore, matching_store
from cxr_age.io.store_batches import BatchShare
from cxr_age.nets.compile_cache import enable_compile_cache
from cxr_age.nets.densenet import NetworkOptions, build_model
from cxr_age.nets.distribute import describe, is_chief, make_strategy, run_folder_suffix
from cxr_age.nets.jax_distribution import JaxDataParallel
from cxr_age.nets.precision import check_policy, gpu_capability, mixed_policy
from cxr_age.run import Run
from cxr_age.runtime import has_tensorflow
from cxr_age.workflows.evaluation import evaluate

if TYPE_CHECKING:
    import tensorflow as tf

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


def _callbacks(run: Run, patience: int) -> list[keras.callbacks.Callback]:
    callbacks = [
        # Two generations of the backup: a run killed while writing one resumes from the other.
        keras.callbacks.BackupAndRestore(str(run.file(Run.BACKUP)), double_checkpoint=True),
        BestModelCheckpoint(run.file(Run.MODEL), run.file(Run.HISTORY)),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience),
        keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=max(1, patience // 3)),
        keras.callbacks.CSVLogger(str(run.file(Run.HISTORY)), append=True),
    ]
    if not has_tensorflow():
        log.info("no TensorBoard log: its writers are TensorFlow's (%s holds the same curves)", Run.HISTORY)
        return callbacks
    return [*callbacks, keras.callbacks.TensorBoard(str(run.file(Run.TENSORBOARD)), write_graph=False)]


def prepare_data(config: Experiment, run: Run | str | os.PathLike, selection: Selection | None = None,
                 ) -> tuple[Selection, dict[str, pd.DataFrame], PreparedStore | None]:
    """Select (unless `selection` is given), check every image (from a matching prepared store's record when
    there is one), split by patient (the same split as before when resuming) and write the split and skip
    lists into the run."""
    run = Run.of(run)
    data = config.data
    selection = check_missing(selection or select(data), bool(data.skip_missing))
    store = matching_store(selection.frame["path"], data.image_size)
    if store is not None:
        log.info("reading prepared images from %s", store.folder)
    selection = check_images(selection, bool(data.skip_missing), bool(data.skip_unreadable), store=store)
    run.write_table(selection.skipped, Run.SKIPPED)
    run.write_table(selection.removed, Run.REMOVED)
    frame = assign_splits(selection.frame, data.seed, data.nih_lists)
    if data.healthy_only:
        frame, counts = keep_healthy(frame)
        for line in healthy_lines(counts):
            log.info(line)
        run.write_healthy(counts)
    run.check_same_split(frame)
    parts = {name: frame.loc[frame["split"] == name, SPLIT_COLUMNS] for name in SPLITS}
    for name, part in parts.items():
        if part.empty:
            raise CxrAgeError(f"the {name} split is empty: {len(frame)} images are too few to split by patient")
        run.write_split(name, part)
    return selection, parts, store


def with_precision_policy(experiment: Experiment) -> Experiment:
    """With `mixed_precision`, the experiment with the mixed policy that fits this machine's chip (bfloat16 on
    GPUs of compute capability 8.0 and up, float16 with loss scaling elsewhere; `cxr_age.nets.precision`), or
    the one its `precision_policy` names, so that the run's config records what was used; without, no policy."""
    settings = experiment.train
    policy = None
    if settings.mixed_precision:
        policy = check_policy(settings.precision_policy or mixed_policy(gpu_capability()))
        log.info("mixed precision: %s", policy)
    return replace(experiment, train=replace(settings, precision_policy=policy))


def train(experiment: Experiment, out: str | os.PathLike | None = None, *,
          callbacks: Sequence[keras.callbacks.Callback] = (),
          strategy: tf.distribute.Strategy | None = None) -> Run | None:
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
        The run (load its model with `AgeModel.load`), or None on a non-chief worker of a multi-worker run,
        which trains its share into `<out>-worker<i>` while the chief writes the run.

    Examples:
        >>> experiment = cxr_age.Experiment.load("demo", task="regress", epochs=1)
        >>> run = cxr_age.train(experiment, "runs/first-try")
    """
    selection = select(experiment.data)  # a bad table stops here, before a run folder exists
    log_selection(selection, experiment.data, log)
    if experiment.data.healthy_only:
        healthy_mask(selection.frame)  # a table without findings stops here too
    name = experiment.train.strategy
    strategy = strategy or make_strategy(name)
    if not has_tensorflow() or isinstance(strategy, JaxDataParallel):  # both read a prepared store only
        data = experiment.data
        store = matching_store(selection.frame["path"], data.image_size)
        require_source(store, len(selection.frame), data.image_size, bool(data.augment))
    experiment = with_precision_policy(experiment)
    suffix = run_folder_suffix(name)
    placement = describe(strategy, name, experiment.train.batch_size)
    run, resumed = Run.for_training(experiment, f"{Path(out)}{suffix}" if out else None, suffix)
    settings = experiment.train
    log.info("%s %s: %s, loss %s, %d px, %d epochs, batch %d", "resuming" if resumed else "run", run,
             settings.backbone, settings.loss, experiment.data.image_size, settings.epochs, settings.batch_size)
    log.info(placement)
    with run.lock():
        finished = _train(experiment, run, callbacks, strategy, selection)
    return run if finished else None


def _train(config: Experiment, run: Run, extra_callbacks: Sequence[keras.callbacks.Callback],
           strategy: tf.distribute.Strategy | None, selection: Selection) -> bool:
    """Train into `run` and, on the chief, evaluate; False on a non-chief worker."""
    settings, task, size = config.train, config.task, config.data.image_size
    run.write_config(config)
    keras.utils.set_random_seed(config.data.seed)
    _, parts, store = prepare_data(config, run, selection)
    replicas = strategy.num_replicas_in_sync if strategy else 1
    share = _share(strategy)
    feed = Feed(shuffle=True, augment=config.data.augment, seed=config.data.seed)
    train_data = make_batches(parts["train"], task.targets(parts["train"], settings.age_scale), size,
                              settings.batch_size, feed, store, share)
    val_data = make_batches(parts["val"], task.targets(parts["val"], settings.age_scale), size,
                            settings.batch_size, Feed(seed=config.data.seed), store, share)
    _log_left_out(train_data, val_data, replicas)
    options = NetworkOptions(settings.bn_momentum, settings.precision_policy or "float32",
                             synchronized_bn=replicas > 1 and keras.backend.backend() == "tensorflow")
    cache = enable_compile_cache()
    if cache:
        log.info("compiled steps are cached in %s", cache)
    with strategy.scope() if strategy else contextlib.nullcontext():
        model = build_model(task.head, settings.backbone, size, settings.weights, options)
        task.compile(model, settings)
    weights = class_weights(parts["train"]["group"].to_numpy()) if settings.class_weights else None
    model.fit(
        train_data,
        validation_data=val_data,
        epochs=settings.epochs,
        class_weight=weights,
        shuffle=False,  # the batches shuffle themselves (seeded, every epoch); Keras cannot shuffle a tf.data input
        callbacks=_callbacks(run, settings.patience) + list(extra_callbacks),
        verbose=1 if sys.stdout.isatty() else 2,
    )
    if isinstance(strategy, JaxDataParallel):
        strategy.release()  # evaluation runs on the chief alone, on one device
    if not is_chief(settings.strategy):
        return False
    evaluate(run)
    return True


def _share(strategy: tf.distribute.Strategy | JaxDataParallel | None) -> BatchShare | None:
    """This process's part of each batch under a JAX distribution (tf.distribute splits its own batches)."""
    if not isinstance(strategy, JaxDataParallel):
        return None
    return BatchShare(strategy.process_id, strategy.processes, strategy.num_replicas_in_sync)


def _log_left_out(train_data: object, val_data: object, replicas: int) -> None:
    left = {name: getattr(data, "left_out", 0) for name, data in (("training", train_data), ("validation", val_data))}
    for name, count in left.items():
        if count:
            log.info("%d %s image(s) per epoch are left out of the last batch, cut to a multiple of the %d "
                     "devices%s", count, name, replicas,
                     " (a new order each epoch puts others there)" if name == "training" else "")
