"""The real training command, timed epoch by epoch: `cxr_age.train` (what `cxr-age-train` runs, evaluation and
figures included) on the embedded sample (477 NIH radiographs, 256 px) from a prepared store that it prepares
first, in a scratch folder. Where TensorFlow is installed the store is read through tf.data; without it (Keras
on JAX on a GPU machine) through NumPy batches, and the store is decoded by OpenCV.

Reported: the store's preparation, each epoch's training seconds (the first includes XLA's compilation, or its
loading from the persistent cache) and validation seconds, the training images/s of the last epoch, and the
whole command's seconds. Run twice with the same --cache to see the cache's effect.

    KERAS_BACKEND=jax python benchmarks/train_epoch.py [--task regress] [--backbone NAME] [--image-size 256]
        [--batch-size 64] [--epochs 2] [--mixed-precision] [--cache DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import keras

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch's training batches and of its validation pass."""

    def __init__(self) -> None:
        super().__init__()
        self.epochs: list[dict] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = self.trained = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.trained = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        self.epochs.append({"train_seconds": self.trained - self.start, "validation_seconds": now - self.trained})


def time_training(task: str, image_size: int, batch_size: int, epochs: int, mixed_precision: bool,
                  backbone: str | None = None) -> dict:
    """Prepare the sample's store and train on it in the current folder (the paper's backbone for `task` unless
    `backbone` names another), in a scratch folder of its own; the timings as a dict."""
    from cxr_age.config import Experiment
    from cxr_age.io.selection import select
    from cxr_age.io.store_writer import prepare_store
    from cxr_age.workflows.training import train

    experiment = Experiment.load("demo", task=task, image_size=image_size, batch_size=batch_size, epochs=epochs,
                                 patience=epochs + 1, mixed_precision=mixed_precision, backbone=backbone)
    clock = EpochClock()
    with tempfile.TemporaryDirectory(prefix="cxr-age-train-epoch-") as scratch, contextlib.chdir(scratch):
        start = time.perf_counter()
        frame = select(experiment.data).frame
        prepared = prepare_store(frame, image_size, progress=False)
        prepare_seconds = time.perf_counter() - start
        start = time.perf_counter()
        run = train(experiment, "run", callbacks=[clock])
        command_seconds = time.perf_counter() - start
        images = len(run.split_images("train"))
        test_mae = run.metrics()["splits"]["test"]["model"].get("mae", {}).get("value")
        policy = run.experiment.train.precision_policy or "float32"
    return {"task": task, "backbone": experiment.train.backbone, "image_size": image_size, "batch_size": batch_size,
            "policy": policy, "backend": keras.backend.backend(),
            "tensorflow_imported": sys.modules.get("tensorflow") is not None, "store": str(prepared.folder),
            "stored_images": len(frame), "prepare_seconds": prepare_seconds, "train_images": images,
            "epochs": clock.epochs,
            "images_per_second": images / clock.epochs[-1]["train_seconds"], "command_seconds": command_seconds,
            "test_mae": test_mae}


def report(result: dict) -> list[str]:
    """The timings as lines."""
    lines = [f"cxr-age-train {result['task']} ({result['backbone']}, {result['image_size']} px, batch "
             f"{result['batch_size']}, {result['policy']}, Keras on {result['backend']}, TensorFlow "
             f"{'imported' if result['tensorflow_imported'] else 'absent'}): {result['stored_images']} images "
             f"prepared in {result['prepare_seconds']:.1f} s, {result['train_images']} of them for training"]
    for number, epoch in enumerate(result["epochs"], 1):
        lines.append(f"  epoch {number}: {epoch['train_seconds']:.1f} s training"
                     f"{' (compilation included)' if number == 1 else ''}, {epoch['validation_seconds']:.1f} s "
                     "validation")
    lines.append(f"  last epoch: {result['images_per_second']:.1f} training images/s; whole command "
                 f"{result['command_seconds']:.1f} s (evaluation and figures included)")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("regress", "classify"), default="regress")
    parser.add_argument("--backbone", choices=("densenet121", "densenet169", "densenet201"),
                        help="default: the paper's for the task (DenseNet169 regressor, DenseNet201 classifier)")
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--cache", type=Path, help="the cache folder (CXR_AGE_CACHE; XLA's programs in its xla/)")
    parser.add_argument("--json", type=Path, help="also write the timings to this JSON file")
    args = parser.parse_args()
    if args.cache:
        os.environ["CXR_AGE_CACHE"] = str(args.cache.resolve())
    result = time_training(args.task, args.image_size, args.batch_size, args.epochs, args.mixed_precision,
                           args.backbone)
    print("\n".join(report(result)))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
