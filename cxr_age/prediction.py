"""Predict the age of single studies with saved runs: find the image files, read each one exactly as
training read its images (PNG and JPEG through the pipeline's decoder; DICOM through `data.dicom`), and run the
regressor and, optionally, the age-group classifier. Unreadable files are skipped with their reason, never
fatal for the others. Only the path the user gave identifies an image in the results."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxr_age.config import ExperimentConfig
from cxr_age.data.ages import GROUP_LABELS
from cxr_age.data.dicom import is_dicom, read_dicom
from cxr_age.data.pipeline import decode_error_message, load_image, resize_square
from cxr_age.errors import CxrAgeError
from cxr_age.evaluation import load_run, predicted_values
from cxr_age.quiet_tf import keras, tf

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclass
class Inputs:
    """The image files to predict, and the files of the named folders that are not images (with why)."""

    files: list[Path]
    ignored: list[tuple[str, str]] = field(default_factory=list)


def gather_inputs(names: Sequence[str]) -> Inputs:
    """Files as named, and the image files found (recursively, sorted) in named folders: images by suffix,
    DICOM by suffix or by its `DICM` marker. A name that does not exist is an error."""
    inputs = Inputs([])
    for name in names:
        path = Path(name)
        if path.is_file():
            inputs.files.append(path)
        elif path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                if found.suffix.lower() in IMAGE_SUFFIXES or is_dicom(found):
                    inputs.files.append(found)
                else:
                    inputs.ignored.append((str(found), "not an image file (by its suffix or a DICOM marker)"))
        else:
            raise CxrAgeError(f"{name}: no such file or folder")
    if not inputs.files:
        raise CxrAgeError(f"no image files (PNG, JPEG, BMP, GIF or DICOM) in {', '.join(names)}")
    return inputs


def read_image(path: Path, image_size: int) -> np.ndarray:
    """One file as the model's input, float32 `[image_size, image_size, 1]` in [0, 1]; CxrAgeError if the
    file cannot be read."""
    if is_dicom(path):
        return resize_square(tf.constant(read_dicom(path)[..., None]), image_size).numpy()
    try:
        return load_image(tf.constant(str(path)), image_size).numpy()
    except (tf.errors.OpError, ValueError) as err:
        raise CxrAgeError(f"{path}: {decode_error_message(err)}") from None


@dataclass
class TrainedModel:
    """A run's best model (Keras safe mode) and the settings it was trained with."""

    run: Path
    config: ExperimentConfig
    model: keras.Model

    @property
    def task(self) -> str:
        return self.config.train.task

    @property
    def image_size(self) -> int:
        return self.config.data.image_size

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """Model outputs of a batch, computed eagerly (no graph tracing for a handful of images)."""
        return np.asarray(self.model(images, training=False))


def load_trained(run: Path, task: str) -> TrainedModel:
    """The run's model, which must be of `task` (`regress` or `classify`)."""
    config, model = load_run(run)
    if config.train.task != task:
        flag = "--run" if config.train.task == "regress" else "--classify-run"
        raise CxrAgeError(f"{run} is a {config.train.task} run, not {task}: pass it as {flag}")
    return TrainedModel(run, config, model)


@dataclass
class Batch:
    """Predictions for the readable files of one batch, and the regressor's inputs (for saliency)."""

    rows: list[dict]
    images: np.ndarray
    skipped: list[tuple[str, str]]


def _read_all(files: Sequence[Path], size: int) -> tuple[list[Path], list[np.ndarray], list[tuple[str, str]]]:
    kept, images, skipped = [], [], []
    for path in files:
        try:
            images.append(read_image(path, size))
            kept.append(path)
        except CxrAgeError as err:
            skipped.append((str(path), str(err).removeprefix(f"{path}: ")))
    return kept, images, skipped


def _classifier_columns(classifier: TrainedModel, images: np.ndarray) -> list[dict]:
    probabilities = classifier.outputs(images)
    groups = predicted_values(probabilities, "classify", classifier.config.train.age_scale)
    return [{"predicted_group": group, **{f"p_{label}": float(p) for label, p in zip(GROUP_LABELS, row)}}
            for group, row in zip(groups, probabilities)]


def predict_batches(files: Sequence[Path], regressor: TrainedModel, classifier: TrainedModel | None,
                    batch_size: int, progress: bool = True) -> Iterator[Batch]:
    """Per batch of files: the predicted age (and the classifier's groups and probabilities) of each
    readable file; unreadable files are skipped with their reason."""
    with tqdm(total=len(files), desc="predicting", unit="img", disable=None if progress else True) as bar:
        for start in range(0, len(files), batch_size):
            chunk = files[start:start + batch_size]
            kept, images, skipped = _read_all(chunk, regressor.image_size)
            rows: list[dict] = []
            batch = np.stack(images) if images else np.zeros((0,))
            if kept:
                ages = predicted_values(regressor.outputs(batch), "regress", regressor.config.train.age_scale)
                rows = [{"file": str(path), "predicted_age": float(age)} for path, age in zip(kept, ages)]
                if classifier is not None:
                    # The files are decoded again only when the classifier was trained at another size.
                    same_size = classifier.image_size == regressor.image_size
                    inputs = batch if same_size else np.stack([read_image(path, classifier.image_size)
                                                               for path in kept])
                    for row, extra in zip(rows, _classifier_columns(classifier, inputs)):
                        row.update(extra)
            bar.update(len(chunk))
            yield Batch(rows, batch, skipped)


def predictions_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a table with a fixed column order: file, predicted age, then the classifier's columns."""
    frame = pd.DataFrame(rows)
    first = [c for c in ("file", "predicted_age", "predicted_group") if c in frame]
    return frame[first + [c for c in frame.columns if c not in first]]
