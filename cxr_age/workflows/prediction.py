"""Predict the age of a folder of studies with saved runs: find the image files, read each one exactly as
training read its images (`AgeModel.preprocess`), and run the regressor and, optionally, the age-group
classifier. A file that fails, for whatever reason, is skipped with that reason and never ends the run.
Files are read in parallel by the model's engine: the training pipeline's `tf.data` path
(`cxr_age.io.reader`), or its NumPy and OpenCV twin for the ONNX engine (`cxr_age.io.plain_images`).
Optionally the age a DICOM header records is set beside the prediction, with the gap. Only the path the user
gave identifies an image in the results."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxr_age.age_model import AgeModel
from cxr_age.errors import CxrAgeError
from cxr_age.io.dicom import header_age, is_dicom, read_header

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


@dataclass
class Batch:
    """Predictions for the readable files of one batch, and the regressor's inputs (for saliency)."""

    rows: list[dict]
    images: np.ndarray
    skipped: list[tuple[str, str]]


@dataclass(frozen=True)
class Reading:
    """How files are read: DICOM of any kind or chest radiographs only, whether the age a DICOM header
    records is reported beside the prediction, and how many threads decode (None: all cores)."""

    any_dicom: bool = False
    age_from_header: bool = False
    threads: int | None = None


@dataclass(frozen=True)
class Predicting:
    """How a folder of studies is predicted: images per batch, the coverage of the intervals and sets
    (None: the run's), how files are read, whether a progress bar shows, where saliency overlays go
    (None: no overlays), whether the networks run as compiled graphs (None: when there is more than one
    batch; a long-lived caller such as the web service compiles always, once), and the number of views of the
    regressor's test-time spread (None: none; `AgeModel.spread`)."""

    batch_size: int = 16
    coverage: float | None = None
    reading: Reading = Reading()
    progress: bool = True
    overlay_dir: Path | None = None
    compiled: bool | None = None
    tta: int | None = None


def _with_header_ages(rows: list[dict], files: Sequence[Path]) -> None:
    """Each row gets `header_age` (the age its DICOM header records, blank for other files) and, where there
    is one, `age_gap` (predicted - recorded) and whether the recorded age lies in the row's interval."""
    for row, path in zip(rows, files):
        age = header_age(read_header(path)) if is_dicom(path) else None
        row["header_age"] = age
        row["age_gap"] = row["predicted_age"] - age if age is not None else None
        if "interval_low" in row:
            row["header_age_in_interval"] = (row["interval_low"] <= age <= row["interval_high"]
                                             if age is not None else None)


def _classifier_inputs(kept: list[Path], images: np.ndarray, regressor: AgeModel, classifier: AgeModel,
                       reading: Reading) -> np.ndarray:
    """The classifier's inputs: the regressor's batch, or the same files read again at the classifier's size."""
    if classifier.image_size == regressor.image_size:
        return images
    again = list(classifier.read_batches(kept, len(kept), reading.any_dicom, reading.threads))
    if any(batch.skipped for batch in again):
        index, reason = next(skip for batch in again for skip in batch.skipped)
        raise CxrAgeError(f"{kept[index]}: changed while being read: {reason}")
    return np.concatenate([batch.images for batch in again])


def _rows(kept: list[Path], images: np.ndarray, models: tuple[AgeModel, AgeModel | None], how: Predicting,
          compiled: bool) -> list[dict]:
    regressor, classifier = models
    reading = how.reading
    decoded = regressor.columns(regressor.outputs(images, compiled), how.coverage)
    if how.tta is not None:
        decoded = pd.concat([decoded, regressor.spread(images, how.tta, compiled)], axis=1)
    rows = [{"file": str(path), **row} for path, row in zip(kept, decoded.to_dict(orient="records"))]
    if classifier is not None:
        inputs = _classifier_inputs(kept, images, regressor, classifier, reading)
        extras = classifier.columns(classifier.outputs(inputs, compiled), how.coverage).to_dict(orient="records")
        for row, extra in zip(rows, extras):
            row.update(extra)
    if reading.age_from_header:
        _with_header_ages(rows, kept)
    return rows


def predict_batches(files: Sequence[Path], regressor: AgeModel, classifier: AgeModel | None = None,
                    how: Predicting = Predicting()) -> Iterator[Batch]:
    """Per batch of files: the predicted age (and the classifier's groups and probabilities) of each
    readable file; unreadable files are skipped with their reason. Files are read in parallel, a batch
    ahead (`cxr_age.io.reader`); more than one batch runs the networks as compiled graphs, a single batch
    eagerly (a graph's trace would cost more than it saves)."""
    compiled = len(files) > how.batch_size if how.compiled is None else how.compiled
    reading = how.reading
    with tqdm(total=len(files), desc="predicting", unit="img", disable=None if how.progress else True) as bar:
        for read in regressor.read_batches(files, how.batch_size, reading.any_dicom, reading.threads):
            kept = [files[i] for i in read.indices]
            rows = _rows(kept, read.images, (regressor, classifier), how, compiled) if kept else []
            bar.update(len(read.indices) + len(read.skipped))
            yield Batch(rows, read.images, [(str(files[i]), reason) for i, reason in read.skipped])


@dataclass
class Predictions:
    """What predicting named files and folders gave: a row per predicted file, and the unreadable files and
    the folders' non-image files, each with its reason."""

    rows: list[dict]
    skipped: list[tuple[str, str]]
    ignored: list[tuple[str, str]]
    already: int = 0

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped + self.ignored, columns=["file", "reason"])


def predict_paths(names: Sequence[str], regressor: AgeModel, classifier: AgeModel | None = None,
                  how: Predicting = Predicting(), done: frozenset[str] = frozenset(),
                  on_batch: Callable[[Batch], None] | None = None) -> Predictions:
    """Predict every image file named or found in the named folders (see `gather_inputs`) except those in
    `done` (already predicted by an interrupted run), batch by batch, calling `on_batch` with each batch as it
    comes; with `how.overlay_dir`, a saliency overlay PNG per image is written there (never over an existing
    file). A CxrAgeError if there were files to read and none could be."""
    inputs = gather_inputs(names)
    todo = [path for path in inputs.files if str(path) not in done]
    overlays = None
    if how.overlay_dir is not None:
        if regressor.engine.name != "keras":
            raise CxrAgeError("saliency overlays need the keras engine (tf-keras-vis differentiates the Keras "
                              "network)")
        from cxr_age.saliency.overlay import StudyOverlays  # tf-keras-vis is loaded only for overlays

        overlays = StudyOverlays(regressor.network, how.overlay_dir, regressor.demo)
    rows: list[dict] = []
    skipped: list[tuple[str, str]] = []
    for batch in predict_batches(todo, regressor, classifier, how):
        if overlays is not None and batch.rows:
            overlays.add(batch.rows, batch.images)
        rows.extend(batch.rows)
        skipped.extend(batch.skipped)
        if on_batch is not None:
            on_batch(batch)
    if todo and not rows:
        first = f"{skipped[0][0]}: {skipped[0][1]}"
        raise CxrAgeError(first if len(skipped) == 1 else
                          f"none of the {len(skipped)} image files could be read (first: {first})")
    return Predictions(rows, skipped, inputs.ignored, len(inputs.files) - len(todo))


def predictions_frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as a table with a fixed column order: file, predicted age, then the classifier's columns."""
    frame = pd.DataFrame(rows)
    first = [c for c in ("file", "predicted_age", "predicted_group") if c in frame]
    return frame[first + [c for c in frame.columns if c not in first]]
